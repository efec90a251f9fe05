"""A run's artifacts, read as untrusted data.

Anyone who can write to the store can log a run, so the report treats what it downloads as
data that may be malformed or crafted. It reads only the artifacts it knows by name, never a
path named inside one, never unpickles, refuses what is too large, and turns anything else it
cannot use into an :class:`UnreadableArtifact` whose message becomes a note in the report.
"""

from __future__ import annotations

import json
import tempfile
import warnings
import zipfile
from pathlib import Path
from urllib.parse import unquote, urlparse

import numpy as np

from backprop_lab.errors import BackpropLabError

# The largest artifact the report downloads, and the most an .npz may unpack to. The demo's
# largest grid is a few MB; this leaves room for big sweeps and none for a memory bomb.
MAX_ARTIFACT_BYTES = 256 * 2**20
# Booleans, integers and floats: everything else (objects, strings) is not a training record.
NUMERIC_KINDS = "biuf"


# Keys that older versions wrote into config.yaml and this one no longer has: dropped when an
# old run's config is read, so its runs can still be reported and rerun.
RETIRED_KEYS = ("tracking.offline_dir",)


class UnreadableArtifact(Exception):
    """An artifact that exists but cannot be used; the message completes "Run X: ..."."""


class RunArtifacts:
    """A run's top-level artifacts, downloaded by name into a private folder on demand."""

    def __init__(self, mlflow_client, run, folder: Path):
        self._client = mlflow_client
        self._run_id = run.info.run_id
        self._sizes = {
            item.path: item.file_size
            for item in mlflow_client.list_artifacts(self._run_id)
            if not item.is_dir
        }
        self._local_root = _local_folder(run.info.artifact_uri or "")
        # Not named after the run id: a crafted store could give a run the id "../../x".
        self._folder = Path(tempfile.mkdtemp(prefix="run-", dir=folder))

    def path(self, name: str) -> Path | None:
        """The downloaded artifact ``name``; None when the run has none."""
        if name not in self._sizes:
            return None
        size = self._sizes[name]
        if size is not None and size > MAX_ARTIFACT_BYTES:
            raise UnreadableArtifact(f"its {name} is larger than {_megabytes()}")
        if self._local_root is not None and (self._local_root / name).is_symlink():
            # A link in a shared artifact folder could point at any file of this machine.
            raise UnreadableArtifact(f"its {name} is a symbolic link")
        try:
            path = Path(self._client.download_artifacts(self._run_id, name, str(self._folder)))
        except Exception as error:
            raise UnreadableArtifact(
                f"{name} could not be downloaded ({type(error).__name__})"
            ) from None
        if not path.is_file() or path.stat().st_size > MAX_ARTIFACT_BYTES:
            raise UnreadableArtifact(f"its {name} is not a file of at most {_megabytes()}")
        return path


def _megabytes() -> str:
    return f"{MAX_ARTIFACT_BYTES // 2**20} MB"


def _local_folder(artifact_uri: str) -> Path | None:
    """The folder of a run's artifacts when it is on this machine (``file:`` or a plain path),
    decoded as MLflow decodes it (``%20`` is a space): the symlink check must look at the
    file MLflow reads."""
    parsed = urlparse(artifact_uri)
    if parsed.scheme == "file":
        return Path(unquote(parsed.path))
    return Path(artifact_uri) if artifact_uri and not parsed.scheme else None


def read_text(path: Path, name: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise UnreadableArtifact(f"its {name} is not UTF-8 text") from None


def read_json(path: Path, name: str):
    try:
        return json.loads(read_text(path, name))
    except (ValueError, RecursionError):
        raise UnreadableArtifact(f"its {name} is not valid JSON") from None


def read_yaml(path: Path, name: str):
    """The YAML document as OmegaConf reads it; no aliases (a few lines of them can expand to
    gigabytes) and no interpolations (``${oc.env:...}`` would read this machine's environment)."""
    import yaml
    from omegaconf import OmegaConf

    text = read_text(path, name)
    try:
        if any(isinstance(event, yaml.AliasEvent) for event in yaml.parse(text, yaml.SafeLoader)):
            raise UnreadableArtifact(f"its {name} uses YAML aliases")
        document = OmegaConf.create(text)
    except UnreadableArtifact:
        raise
    except Exception as error:  # yaml.YAMLError or OmegaConf's errors
        raise UnreadableArtifact(f"its {name} is not valid YAML ({type(error).__name__})") from None
    if _has_interpolation(OmegaConf.to_container(document, resolve=False)):
        raise UnreadableArtifact(f"its {name} holds an interpolation (${{...}})")
    return document


def _has_interpolation(value) -> bool:
    if isinstance(value, dict):
        return any(_has_interpolation(item) for item in value.values())
    if isinstance(value, list):
        return any(_has_interpolation(item) for item in value)
    return isinstance(value, str) and "${" in value


def read_config(path: Path):
    """``config.yaml`` merged onto the schema, so an old run gets the defaults of new keys."""
    from omegaconf import DictConfig, OmegaConf

    from backprop_lab.config import Config

    document = read_yaml(path, "config.yaml")
    if not isinstance(document, DictConfig):
        raise UnreadableArtifact("its config.yaml is not a mapping")
    for key in RETIRED_KEYS:
        group, _, name = key.rpartition(".")
        node = OmegaConf.select(document, group) if group else document
        if isinstance(node, DictConfig) and name in node:
            del node[name]
    try:
        return OmegaConf.merge(OmegaConf.structured(Config), document)
    except Exception as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else ""
        raise UnreadableArtifact(
            f"its config.yaml does not fit this version's schema ({type(error).__name__}: {first})"
        ) from None


def _npz_member_bytes(archive: zipfile.ZipFile, member: str, name: str) -> int:
    """The size of one array of an .npz from its header, before anything is allocated."""
    with archive.open(member) as handle:
        version = np.lib.format.read_magic(handle)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(handle)
        elif version == (2, 0):
            shape, _, dtype = np.lib.format.read_array_header_2_0(handle)
        else:
            raise UnreadableArtifact(f"its {name} uses an unknown .npy format {version}")
    if dtype.hasobject or dtype.kind not in NUMERIC_KINDS:
        raise UnreadableArtifact(f"its {name} holds a non-numeric array ({dtype.str})")
    return int(np.prod(shape, dtype=np.float64)) * dtype.itemsize


def check_npz(path: Path, name: str) -> None:
    """Raise unless ``path`` is an .npz of numeric arrays that unpack to a sane size."""
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.namelist()
            if not members or not all(member.endswith(".npy") for member in members):
                raise UnreadableArtifact(f"its {name} holds something other than arrays")
            total = sum(_npz_member_bytes(archive, member, name) for member in members)
    except UnreadableArtifact:
        raise
    except Exception as error:  # zipfile.BadZipFile, a damaged header, ...
        raise UnreadableArtifact(
            f"its {name} is not a valid .npz file ({type(error).__name__})"
        ) from None
    if total > MAX_ARTIFACT_BYTES:
        raise UnreadableArtifact(f"its {name} unpacks to more than {_megabytes()}")


def read_npz(path: Path, name: str) -> dict[str, np.ndarray]:
    """The arrays of an .npz, checked by :func:`check_npz` and read without pickles."""
    check_npz(path, name)
    try:
        with np.load(path, allow_pickle=False) as arrays:
            return {key: arrays[key] for key in arrays.files}
    except Exception as error:  # a truncated member, a bad CRC, ...
        raise UnreadableArtifact(
            f"its {name} is not a valid .npz file ({type(error).__name__})"
        ) from None


def read_dataset(path: Path, name: str):
    """The data set a run trained on (``dataset.npz``), finite numbers only."""
    from backprop_lab.core.data import DATASET_ARTIFACT, load_dataset

    check_npz(path, DATASET_ARTIFACT)
    try:
        dataset = load_dataset(path, name)
    except BackpropLabError as error:
        raise UnreadableArtifact(f"its {error}") from None
    except Exception as error:
        raise UnreadableArtifact(
            f"its {DATASET_ARTIFACT} is not a valid .npz file ({type(error).__name__})"
        ) from None
    splits = [dataset.x_train, dataset.y_train, dataset.x_test, dataset.y_test]
    if len(dataset.x_train) == 0 or len(dataset.x_train) != len(dataset.y_train):
        raise UnreadableArtifact(f"its {DATASET_ARTIFACT} has mismatched or empty x_train/y_train")
    if not all(np.isfinite(split).all() for split in splits if split is not None):
        raise UnreadableArtifact(f"its {DATASET_ARTIFACT} holds values that are not finite")
    return dataset


def read_history(path: Path) -> dict[str, np.ndarray]:
    """``history.csv``: one row per epoch, a header naming the columns (epoch, loss, ...)."""
    header = read_text(path, "history.csv").split("\n", 1)[0].strip().split(",")
    if "loss" not in header or "accuracy" not in header:
        raise UnreadableArtifact("its history.csv has no loss and accuracy columns")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "input contained no data": checked below
            values = np.loadtxt(path, delimiter=",", skiprows=1, ndmin=2)
    except ValueError:
        raise UnreadableArtifact("its history.csv holds a cell that is not a number") from None
    if values.shape[0] == 0 or values.shape[1] != len(header):
        raise UnreadableArtifact("its history.csv has no rows, or rows that do not fit its header")
    return {name: values[:, index] for index, name in enumerate(header) if name != "epoch"}


def read_history_npz(path: Path) -> dict[str, np.ndarray]:
    """``history.npz`` (a stopped run's long history): equal-length 1-D columns, loss and
    accuracy among them."""
    arrays = read_npz(path, "history.npz")
    if "loss" not in arrays or "accuracy" not in arrays:
        raise UnreadableArtifact("its history.npz has no loss and accuracy columns")
    lengths = {np.shape(values) for values in arrays.values()}
    if len(lengths) != 1 or len(next(iter(lengths))) != 1 or not next(iter(lengths))[0]:
        raise UnreadableArtifact("its history.npz columns are not equal-length, non-empty rows")
    return {name: np.asarray(values, dtype=np.float64) for name, values in arrays.items()}


def get_run(mlflow_client, run_id: str, uri: str):
    """The run called ``run_id``, or a one-line error naming the store."""
    try:
        return mlflow_client.get_run(run_id)
    except Exception:
        raise BackpropLabError(f"no run {run_id!r} in the tracking store {uri}") from None


def finished_training_run(mlflow_client, run_id: str, uri: str, purpose: str, child_hint: str):
    """``(run, kind)`` of a FINISHED single or grid run (the runs that trained something).

    ``purpose`` ends the sentence for a run that did not finish ("has final weights to
    reproduce"); ``child_hint`` says what to use instead of a grid's per-rate child.
    """
    from backprop_lab.tracking.provenance import TAG_PREFIX

    run = get_run(mlflow_client, run_id, uri)
    kind = run.data.tags.get(TAG_PREFIX + "kind", "single")
    if kind not in ("single", "grid"):
        hint = child_hint if kind == "grid_row" else "one of its child runs"
        raise BackpropLabError(
            f"run {run_id} is a {kind} run, which trained nothing itself; use {hint} instead"
        )
    if run.info.status != "FINISHED":
        reason = run.data.tags.get(TAG_PREFIX + "error", "")
        raise BackpropLabError(
            f"run {run_id} is {run.info.status}"
            + (f" ({reason[:200]})" if reason else "")
            + f"; only a FINISHED run {purpose}"
        )
    return run, kind
