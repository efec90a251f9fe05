"""Validation at the door: every key's type and range, checked before anything is created.

:data:`RULES` names every key of the schema with what it accepts. :func:`validate` checks a
composed config against it, then the rules that tie keys together, then the training spec's
own invariants (:func:`backprop_lab.core.train.validate_spec`, the one place for those). The
first bad value raises one line that names the key, the value and what would be accepted.

Real numbers must also survive the run's precision: ``optimizer.learning_rate=1e308`` is a
fine float64 but ``inf`` in float32, so it is refused unless ``training.precision=float64``.
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass
from typing import Any

import numpy as np
from omegaconf import DictConfig, ListConfig, OmegaConf

from backprop_lab.config.schema import Config
from backprop_lab.core.data import DATASET_NAMES, SCALINGS
from backprop_lab.core.model import INIT_SCHEMES, Architecture
from backprop_lab.core.optim import SCHEDULE_NAMES
from backprop_lab.errors import BackpropLabError, invalid

SEED_LIMIT = 2**32 - 1
PRECISIONS = ("float32", "float64")
HEADLINES = ("comparison", "regimes", "first")
# A preset's name becomes a folder (outputs/<name>/...): letters, digits, - _ . only.
_FOLDER_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}$")
_PRINTABLE = re.compile(r"^[^\x00-\x1f\x7f]*$")


def fail(key: str, value: Any, allowed: str) -> None:
    raise invalid(key, value, allowed)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_whole(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, float) and value.is_integer())


@dataclass(frozen=True)
class Integer:
    low: int
    high: int
    optional: bool = False

    def check(self, key: str, value: Any, precision: str) -> None:
        if value is None and self.optional:
            return
        if not _is_whole(value) or not self.low <= value <= self.high:
            fail(key, value, f"give a whole number from {self.low:,} to {self.high:,}"
                 + (" (or leave it unset)" if self.optional else ""))  # fmt: skip


@dataclass(frozen=True)
class Real:
    low: float = -math.inf
    high: float = math.inf
    low_open: bool = False
    high_open: bool = False

    def describe(self, precision: str) -> str:
        parts = []
        if self.low > -math.inf:
            parts.append(f"{'>' if self.low_open else '>='} {self.low:g}")
        if self.high < math.inf:
            parts.append(f"{'<' if self.high_open else '<='} {self.high:g}")
        where = " and ".join(parts)
        hint = " (training.precision=float64 holds more)" if precision == "float32" else ""
        return (
            f"must be a finite number{' ' + where if where else ''} that {precision} can hold{hint}"
        )

    def check(self, key: str, value: Any, precision: str) -> None:
        ok = _is_number(value) and math.isfinite(value)
        if ok:
            ok = (value > self.low if self.low_open else value >= self.low) and (
                value < self.high if self.high_open else value <= self.high
            )
        if ok:
            # It must stay the same kind of number in the run's precision: finite, and not
            # rounded to zero when it is not zero.
            with np.errstate(all="ignore"):
                stored = np.asarray(value, dtype=precision)
            ok = bool(np.isfinite(stored)) and (value == 0 or stored != 0)
        if not ok:
            fail(key, value, self.describe(precision))


@dataclass(frozen=True)
class Choice:
    choices: tuple[str, ...]

    def check(self, key: str, value: Any, precision: str) -> None:
        if value not in self.choices:
            fail(key, value, "choose one of " + ", ".join(self.choices))


@dataclass(frozen=True)
class Text:
    max_length: int
    pattern: re.Pattern | None = _PRINTABLE
    optional: bool = False
    what: str = "printable text"
    min_length: int = 1

    def check(self, key: str, value: Any, precision: str) -> None:
        if value is None and self.optional:
            return
        if not isinstance(value, str) or not self.min_length <= len(value) <= self.max_length:
            fail(
                key, value, f"give {self.what} of {self.min_length} to {self.max_length} characters"
            )
        if self.pattern is not None and not self.pattern.match(value):
            fail(key, value, f"give {self.what}")


@dataclass(frozen=True)
class Flag:
    def check(self, key: str, value: Any, precision: str) -> None:
        if not isinstance(value, bool):
            fail(key, value, "give true or false")


@dataclass(frozen=True)
class ListOf:
    """A list whose every item passes ``item``; ``unique`` forbids repeats."""

    item: Any
    max_items: int = 10_000
    min_items: int = 0
    unique: bool = False
    optional: bool = False
    noun: str = "value"

    def check(self, key: str, value: Any, precision: str) -> None:
        if value is None and self.optional:
            return
        items = _plain(value)
        if not isinstance(items, list) or not self.min_items <= len(items) <= self.max_items:
            fail(key, items, f"give a list of {self.min_items} to {self.max_items:,} values")
        for position, item in enumerate(items):
            self.item.check(f"{key}[{position}]", item, precision)
        if self.unique and len({repr(item) for item in items}) != len(items):
            fail(key, items, f"each {self.noun} may appear once")


@dataclass(frozen=True)
class Numbers:
    """Explicit weights (``depth=3``: layers of rows) or biases (``depth=2``): finite numbers
    in nested lists of even rows."""

    depth: int

    def check(self, key: str, value: Any, precision: str) -> None:
        if value is None:
            return
        layers = _plain(value)
        shape = "[[[w, ...], ...], ...] (a matrix per layer)" if self.depth == 3 else (
            "[[b, ...], ...] (a list per layer)"
        )  # fmt: skip
        if not isinstance(layers, list) or not layers:
            fail(key, layers, f"give {shape}")
        for index, layer in enumerate(layers):
            try:
                array = np.asarray(layer, dtype=np.float64)
            except (TypeError, ValueError):
                fail(f"{key}[{index}]", layer, f"give numbers only, in even rows: {shape}")
            if array.ndim != self.depth - 1 or array.size == 0:
                fail(f"{key}[{index}]", layer, f"give {shape}")
            with np.errstate(all="ignore"):
                stored = array.astype(precision)
            if not np.isfinite(stored).all():
                fail(f"{key}[{index}]", layer, f"every value must be finite in {precision}")


@dataclass(frozen=True)
class Seeds:
    """``sweep.seeds``: a count N (seeds 0..N-1) or a list of distinct seeds."""

    def check(self, key: str, value: Any, precision: str) -> None:
        if value is None:
            return
        if _is_whole(value):
            Integer(1, 100_000).check(key, value, precision)
            return
        seeds = ListOf(Integer(0, SEED_LIMIT), 100_000, min_items=1, unique=True, noun="seed")
        seeds.check(key, value, precision)


@dataclass(frozen=True)
class LogSpace:
    """``sweep.log_space``: ``[start, stop, num]``, two rates and a whole count."""

    def check(self, key: str, value: Any, precision: str) -> None:
        if value is None:
            return
        items = _plain(value)
        if not isinstance(items, list) or len(items) != 3:
            fail(key, items, "give [start, stop, num]: two learning rates and a count")
        rate = Real(0, low_open=True)
        rate.check(f"{key}[0]", items[0], precision)
        rate.check(f"{key}[1]", items[1], precision)
        Integer(1, 10_000).check(f"{key}[2]", items[2], precision)


def _plain(value: Any) -> Any:
    return OmegaConf.to_container(value) if isinstance(value, ListConfig | DictConfig) else value


_RATE = Real(0, low_open=True)
_UNIT_INTERVAL_OPEN = Real(0, 1, high_open=True)

# Every key of the schema and what it accepts. Names of activations, losses, optimizers,
# batching modes and methods are the core's (validate_spec checks them).
RULES: dict[str, Any] = {
    "name": Text(100, _FOLDER_NAME, what="a name of letters, digits, '-', '_' and '.'"),
    "description": Text(5000, min_length=0),
    "seed": Integer(0, SEED_LIMIT),
    "resume": Flag(),
    "model.hidden_sizes": ListOf(Integer(1, 10_000_000), max_items=64),
    "model.use_bias": Flag(),
    "model.theta": Real(),
    "model.input_size": Integer(1, 10_000_000, optional=True),
    "model.output_size": Integer(1, 10_000_000, optional=True),
    "model.init": Choice(INIT_SCHEMES),
    "model.init_scale": Real(0, low_open=True),
    "model.initial_weights": Numbers(3),
    "model.initial_biases": Numbers(2),
    "data.name": Choice(DATASET_NAMES),
    "data.num_samples": Integer(2, 10_000_000),
    "data.noise": Real(0, 1e6),
    "data.test_fraction": _UNIT_INTERVAL_OPEN,
    "data.seed": Integer(0, SEED_LIMIT),
    "data.first_samples": Integer(1, 1_000_000_000, optional=True),
    "data.path": Text(4096, optional=True, what="a file path"),
    "data.feature_columns": ListOf(Text(1000), unique=True, noun="column"),
    "data.target_columns": ListOf(Text(1000), unique=True, noun="column"),
    "data.class_column": Text(1000, optional=True, what="a column name"),
    "data.num_classes": Integer(2, 100_000, optional=True),
    "data.scale": Choice(SCALINGS),
    "optimizer.learning_rate": _RATE,
    "optimizer.momentum": _UNIT_INTERVAL_OPEN,
    "optimizer.beta1": _UNIT_INTERVAL_OPEN,
    "optimizer.beta2": _UNIT_INTERVAL_OPEN,
    "optimizer.eps": Real(0, low_open=True),
    "schedule.name": Choice(SCHEDULE_NAMES),
    "schedule.decay_rate": Real(0, 1, low_open=True),
    "schedule.transition_epochs": Integer(1, 1_000_000_000),
    "schedule.warmup_epochs": Integer(0, 1_000_000_000),
    "schedule.initial_fraction": Real(0, 1),
    "schedule.final_fraction": Real(0, 1),
    "training.epochs": Integer(1, 1_000_000_000),
    "training.batch_size": Integer(1, 10_000_000),
    "training.precision": Choice(PRECISIONS),
    "training.unroll": Integer(1, 64),
    "training.success_accuracy": Real(0, 1),
    "training.target_loss": Real(0),
    "training.success_requires_target_loss": Flag(),
    "tracking.uri": Text(4096, optional=True, what="a store URI"),
    "tracking.experiment_name": Text(200, optional=True),
    "tracking.run_name": Text(250, optional=True),
    "tracking.max_curve_points": Integer(2, 1_000_000),
    "tracking.max_logged_epochs": Integer(2, 10_000_000),
    "tracking.plots": Flag(),
    "tracking.seed_curves": Flag(),
    "tracking.progress": Flag(),
    "tracking.snapshots": Integer(0, 10_000),
    "tracking.max_snapshot_bytes": Integer(0, 2**40),
    "sweep.learning_rates": ListOf(_RATE, min_items=1, unique=True, optional=True, noun="rate"),
    "sweep.log_space": LogSpace(),
    "sweep.seeds": Seeds(),
    "report.job_noun": Text(50),
    "report.headline": Choice(HEADLINES),
    "report.order": Integer(-1_000_000, 1_000_000),
}


def _unknown_keys(node: DictConfig, schema: type, prefix: str = "") -> list[str]:
    """Keys of ``node`` that ``schema`` does not define (Hydra's ``+key=`` can add them)."""
    fields = {item.name: item for item in dataclasses.fields(schema)}
    unknown = []
    for key in node:
        if key not in fields:
            unknown.append(f"{prefix}{key}")
            continue
        nested = fields[key].default_factory
        if dataclasses.is_dataclass(nested) and isinstance(node[key], DictConfig):
            unknown += _unknown_keys(node[key], nested, f"{prefix}{key}.")
    return unknown


def _check_combinations(cfg: DictConfig) -> None:
    """Rules that tie keys together."""
    model, data, sweep = cfg.model, cfg.data, cfg.sweep
    if sweep.learning_rates is not None and sweep.log_space is not None:
        fail("sweep.log_space", _plain(sweep.log_space),
             "give either sweep.learning_rates or sweep.log_space, not both")  # fmt: skip
    overlap = set(data.feature_columns) & set(data.target_columns)
    if overlap:
        fail("data.target_columns", _plain(data.target_columns),
             f"{sorted(overlap)[0]!r} is also a feature column; a target cannot be an input")  # fmt: skip
    if model.initial_biases is not None and model.initial_weights is None:
        # Random initial weights start with zero biases: these would be dropped unseen.
        fail("model.initial_biases", _plain(model.initial_biases),
             "biases are used only with model.initial_weights; give both, or neither")  # fmt: skip
    if model.initial_biases is not None and not model.use_bias:
        fail("model.initial_biases", _plain(model.initial_biases),
             "model.use_bias=false has no biases; leave model.initial_biases out")  # fmt: skip
    if data.name == "csv" and not data.path:
        raise BackpropLabError("data=csv needs a file: set data.path=FILE.csv")
    if data.class_column and data.target_columns:
        fail("data.class_column", data.class_column,
             "give either data.target_columns (numbers) or data.class_column (one column of "
             "class labels), not both")  # fmt: skip
    if data.class_column and data.class_column in data.feature_columns:
        fail("data.class_column", data.class_column,
             "it is also a feature column; a target cannot be an input")  # fmt: skip
    if cfg.loss.name == "bce" and model.output_activation not in ("sigmoid", "hard_sigmoid"):
        fail("model.output_activation", model.output_activation,
             "loss=bce needs probabilities: use a sigmoid (or hard_sigmoid) output, or another loss")  # fmt: skip


def _check_spec(cfg: DictConfig) -> None:
    """The training spec's own invariants, on the layer sizes known before the data."""
    from backprop_lab.config.build import build_spec
    from backprop_lab.core.train import validate_spec

    # Sizes the data will give are not known yet: stand-ins that any activation accepts (a
    # softmax needs two outputs; the data's own width is checked once it is built).
    outputs = cfg.model.output_size or (2 if cfg.model.output_activation == "softmax" else 1)
    sizes = (cfg.model.input_size or 1, *cfg.model.hidden_sizes, outputs)
    architecture = Architecture(
        tuple(int(size) for size in sizes),
        cfg.model.hidden_activation,
        cfg.model.output_activation,
        bool(cfg.model.use_bias),
        float(cfg.model.theta),
    )
    validate_spec(build_spec(cfg, architecture))


def validate(cfg: DictConfig) -> None:
    """Check every value of a composed config; raise one line naming the first bad one."""
    unknown = _unknown_keys(cfg, Config)
    if unknown:
        raise BackpropLabError(
            f"unknown config key {unknown[0]!r}; see conf/ for the keys each group accepts "
            "(bplab-train --cfg job prints the whole config)"
        )
    precision = cfg.training.precision
    Choice(PRECISIONS).check("training.precision", precision, "float64")
    for key, rule in RULES.items():
        rule.check(key, OmegaConf.select(cfg, key), precision)
    _check_combinations(cfg)
    _check_spec(cfg)


# Data sets that are never split into train and test, and their row counts.
_UNSPLIT_ROWS = {"and": 4, "or": 4, "nand": 4, "xor": 4, "homework": 3}

# Keys a grid makes meaningless: each of its cells takes its rate and seed from the grid.
_SET_BY_A_GRID = {
    "optimizer.learning_rate": ("learning rates", "sweep.learning_rates=[{value}]"),
    "seed": ("seeds", "sweep.seeds=[{value}]"),
}


def check_explicit_overrides(cfg: DictConfig, keys: set[str]) -> None:
    """An explicit override that the config would silently ignore is an error instead."""
    sweep = cfg.sweep
    sets = {
        "optimizer.learning_rate": "sweep.learning_rates"
        if sweep.learning_rates is not None
        else ("sweep.log_space" if sweep.log_space is not None else None),
        "seed": "sweep.seeds" if sweep.seeds is not None else None,
    }
    rows = _UNSPLIT_ROWS.get(cfg.data.name)
    if "data.test_fraction" in keys and rows is not None and cfg.data.test_fraction != 0:
        raise BackpropLabError(
            f"data.test_fraction={cfg.data.test_fraction} would be ignored: data={cfg.data.name} "
            f"trains on all of its {rows} rows and has no test split (only the playground sets "
            "and CSV files are split)"
        )
    for key, (noun, instead) in _SET_BY_A_GRID.items():
        grid_key = sets[key]
        if key in keys and grid_key is not None:
            value = OmegaConf.select(cfg, key)
            raise BackpropLabError(
                f"{key}={value} would be ignored: this config is a grid whose {noun} come from "
                f"{grid_key}={_plain(OmegaConf.select(cfg, grid_key))}; give "
                f"{instead.format(value=value)} instead, or sweep=none for a single run"
            )
