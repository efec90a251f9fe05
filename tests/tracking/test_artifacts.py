"""Artifacts read as untrusted data: limits, no pickles, no aliases, no interpolations."""

from __future__ import annotations

import zipfile
from types import SimpleNamespace

import numpy as np
import pytest

from backprop_lab.tracking import artifacts
from backprop_lab.tracking.artifacts import UnreadableArtifact, read_config, read_npz, read_yaml


def test_an_npz_whose_header_claims_terabytes_is_refused_before_reading(tmp_path):
    path = tmp_path / "grid.npz"
    with zipfile.ZipFile(path, "w") as archive, archive.open("loss.npy", "w") as member:
        header = {"descr": "<f8", "fortran_order": False, "shape": (10**12,)}
        np.lib.format.write_array_header_1_0(member, header)
    with pytest.raises(UnreadableArtifact, match="unpacks to more than 256 MB"):
        read_npz(path, "grid.npz")


def test_object_arrays_and_other_members_are_refused(tmp_path):
    path = tmp_path / "grid.npz"
    np.savez(path, loss=np.array([{"a": 1}], dtype=object))
    with pytest.raises(UnreadableArtifact, match="non-numeric array"):
        read_npz(path, "grid.npz")
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("notes.txt", "hello")
    with pytest.raises(UnreadableArtifact, match="something other than arrays"):
        read_npz(path, "grid.npz")


def test_yaml_aliases_and_interpolations_are_refused(tmp_path, monkeypatch):
    bomb = tmp_path / "aliases.yaml"
    bomb.write_text("a: &a [1, 1]\nb: &b [*a, *a]\nc: [*b, *b]\n")
    with pytest.raises(UnreadableArtifact, match="uses YAML aliases"):
        read_yaml(bomb, "config.yaml")
    monkeypatch.setenv("BPLAB_TEST_SECRET", "s3cret")
    leaky = tmp_path / "config.yaml"
    leaky.write_text("description: ${oc.env:BPLAB_TEST_SECRET}\n")
    with pytest.raises(UnreadableArtifact, match="holds an interpolation") as error:
        read_config(leaky)
    assert "s3cret" not in str(error.value)


def test_an_artifact_over_the_size_limit_is_not_downloaded(tmp_path, monkeypatch):
    monkeypatch.setattr(artifacts, "MAX_ARTIFACT_BYTES", 1000)
    downloads = []
    client = SimpleNamespace(
        list_artifacts=lambda run_id: [
            SimpleNamespace(path="grid.npz", file_size=1001, is_dir=False)
        ],
        download_artifacts=lambda *args: downloads.append(args),
    )
    run = SimpleNamespace(info=SimpleNamespace(run_id="../../escape", artifact_uri="s3://bucket/x"))
    found = artifacts.RunArtifacts(client, run, tmp_path)
    assert found.path("history.csv") is None
    with pytest.raises(UnreadableArtifact, match="larger than"):
        found.path("grid.npz")
    assert downloads == []
    # The download folder is not named after the (untrusted) run id.
    assert [path.parent for path in tmp_path.iterdir()] == [tmp_path]
