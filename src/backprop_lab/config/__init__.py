"""Configs: the schema (``schema``), validation at the door (``validate``), derived values
(``build``). The names most callers need are re-exported here."""

from backprop_lab.config.build import (
    build_architecture,
    build_dataset,
    build_spec,
    config_hash_of,
    flatten,
    is_grid,
    success_rule,
    sweep_learning_rates,
    sweep_seeds,
    to_container,
)
from backprop_lab.config.schema import Config, ReportConfig, register_configs
from backprop_lab.config.validate import validate

__all__ = [
    "Config",
    "ReportConfig",
    "build_architecture",
    "build_dataset",
    "build_spec",
    "config_hash_of",
    "flatten",
    "is_grid",
    "register_configs",
    "success_rule",
    "sweep_learning_rates",
    "sweep_seeds",
    "to_container",
    "validate",
]
