"""The config tree and its schema: every preset composes, overrides reach the engine, bad
values fail at the door with one line naming the key.

Nothing here trains or touches MLflow; :func:`backprop_lab.pipeline.prepare` is the door.
"""

from __future__ import annotations

import re
from pathlib import Path

import jax
import numpy as np
import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf

from backprop_lab.config import config_hash_of, flatten, is_grid, to_container
from backprop_lab.errors import BackpropLabError
from backprop_lab.pipeline import prepare

CONF_DIR = Path(__file__).resolve().parents[2] / "conf"
PRESETS = sorted(path.stem for path in (CONF_DIR / "experiment").glob("*.yaml"))
# Groups the root config selects by default are overridden as ``group=option``; the others
# (such as a multirun's arms) are added with ``+group=option``.
ROOT_GROUPS = {
    next(iter(item))
    for item in OmegaConf.load(CONF_DIR / "train.yaml").defaults
    if not isinstance(item, str)
}
GROUP_OPTIONS = sorted(
    (path.parent.name, path.stem)
    for path in CONF_DIR.glob("*/*.yaml")
    if path.parent.name != "experiment"
)


def test_the_conf_tree_has_presets_and_groups():
    # Guards the parametrizations below against silently testing nothing.
    assert {"xor_mlp", "seed_example", "seed_homework"} <= set(PRESETS)
    groups = {group for group, _ in GROUP_OPTIONS}
    assert {"data", "loss", "model", "optimizer", "sweep", "tracking", "training"} <= groups
    assert ROOT_GROUPS - {"experiment"} <= groups


# ---------------------------------------------------------------------------------------------
# Composition


@pytest.mark.parametrize("preset", PRESETS)
def test_every_preset_composes_and_validates(compose, preset):
    cfg = compose([f"experiment={preset}"])
    assert cfg.name == preset
    # tracking.experiment_name defaults to the preset's name.
    assert cfg.tracking.experiment_name == preset
    job = prepare(cfg)
    assert job.spec.epochs == cfg.training.epochs >= 1
    assert job.architecture.layer_sizes[0] == job.dataset.num_features
    assert job.architecture.layer_sizes[-1] == job.dataset.num_targets


@pytest.mark.parametrize("preset", PRESETS)
def test_every_preset_names_the_command_that_runs_it(preset):
    header = (CONF_DIR / "experiment" / f"{preset}.yaml").read_text().splitlines()[:3]
    command = re.compile(rf"^# bplab-train( -m)? experiment={preset}( |$)")
    assert any(command.match(line) for line in header), header


@pytest.mark.parametrize("preset", PRESETS)
def test_every_job_of_a_preset_sweep_composes_and_validates(compose, preset):
    # A multirun preset lists its jobs under hydra.sweeper.params; each value must make a
    # valid config, or the multirun would fail part-way through.
    sweeper = compose([f"experiment={preset}"], return_hydra_config=True).hydra.sweeper
    params = OmegaConf.select(sweeper, "params") or {}
    parser = OverridesParser.create()
    for key, values in params.items():
        (override,) = parser.parse_overrides([f"{key}={values}"])
        choices = list(override.sweep_string_iterator())
        assert choices
        for choice in choices:
            prepare(compose([f"experiment={preset}", f"{override.get_key_element()}={choice}"]))


@pytest.mark.parametrize(("group", "option"), GROUP_OPTIONS)
def test_every_group_option_composes(compose, group, option):
    prefix = "" if group in ROOT_GROUPS else "+"
    # Categorical cross-entropy scores a softmax over classes, so it needs both.
    needs = {("loss", "cce"): ["model.output_activation=softmax", "data=iris"]}
    cfg = compose([f"{prefix}{group}={option}", *needs.get((group, option), [])])
    if group in ("data", "loss", "optimizer"):
        assert cfg[group].name == option
    if (group, option) == ("data", "csv"):
        # Needs a file; covered by the CSV tests below.
        return
    prepare(cfg)


def test_seed_example_preset_is_the_worked_example(compose):
    job = prepare(compose(["experiment=seed_example"]))
    assert job.architecture.layer_sizes == (2, 2, 2)
    assert job.architecture.hidden_activation == job.architecture.output_activation == "sigmoid"
    assert job.learning_rates == [1.2]
    assert job.spec.epochs == 1
    assert job.spec.loss == "half_sse"
    assert job.spec.batching == "online"
    # Only the first sample, x = (0.5, -0.5), y = (0.9, 0.1).
    np.testing.assert_array_equal(job.dataset.x_train, [[0.5, -0.5]])
    np.testing.assert_allclose(job.dataset.y_train, [[0.9, 0.1]])
    params = job.init_fn(None)
    np.testing.assert_allclose(np.asarray(params[0].weights), [[0.1, -0.2], [0.3, 0.55]])
    np.testing.assert_allclose(np.asarray(params[1].biases), [0.31, 0.27])


# ---------------------------------------------------------------------------------------------
# Overrides reach the engine


def test_hidden_sizes_reach_the_architecture(compose):
    job = prepare(compose(["experiment=xor_mlp", "model.hidden_sizes=[3,2]"]))
    assert job.architecture.layer_sizes == (2, 3, 2, 1)
    params = job.init_fn(jax.random.PRNGKey(0))
    assert [np.asarray(layer.weights).shape for layer in params] == [(3, 2), (2, 3), (1, 2)]


def test_input_and_output_sizes_come_from_the_data(compose):
    assert prepare(compose(["data=homework"])).architecture.layer_sizes == (2, 2, 2)
    assert prepare(compose(["data=xor", "model.hidden_sizes=[]"])).architecture.layer_sizes == (
        2,
        1,
    )


def test_scalar_overrides_reach_the_train_spec(compose):
    job = prepare(
        compose(
            [
                "experiment=xor_mlp",
                "optimizer.learning_rate=0.3",
                "training.batching=full",
                "training.epochs=7",
                "loss=bce",
                "model.hidden_activation=tanh",
                "seed=4",
            ]
        )
    )
    assert job.learning_rates == [0.3]
    assert job.seeds == [4]
    assert not job.grid
    assert job.spec.batching == "full"
    assert job.spec.epochs == 7
    assert job.spec.loss == "bce"
    assert job.spec.optimizer == "sgd"
    assert job.architecture.hidden_activation == "tanh"


def test_optimizer_group_reaches_the_train_spec(compose):
    job = prepare(compose(["optimizer=adam", "optimizer.beta2=0.99"]))
    assert job.spec.optimizer == "adam"
    assert job.learning_rates == [0.01]  # adam.yaml's rate
    assert job.spec.beta2 == 0.99
    # A group chosen on the command line wins over the preset's own choice.
    assert prepare(compose(["experiment=xor_mlp", "optimizer=adam"])).spec.optimizer == "adam"
    momentum = prepare(compose(["optimizer=momentum", "optimizer.momentum=0.5"]))
    assert (momentum.spec.optimizer, momentum.spec.momentum) == ("momentum", 0.5)


def test_grid_overrides_reach_the_job(compose):
    job = prepare(compose(["sweep.learning_rates=[0.5,2.0]", "sweep.seeds=2"]))
    assert job.grid
    assert job.learning_rates == [0.5, 2.0]
    assert job.seeds == [0, 1]
    assert prepare(compose(["sweep.seeds=[3,5]"])).seeds == [3, 5]

    preset = prepare(compose(["sweep=lr_seed_grid"]))
    np.testing.assert_allclose(preset.learning_rates, np.logspace(-2, 2, 8), rtol=1e-12)
    assert preset.seeds == list(range(16))
    assert not is_grid(compose([]))


def test_prepare_does_not_change_the_config(compose):
    cfg = compose(["experiment=xor_mlp", "sweep.seeds=2"])
    before = OmegaConf.to_yaml(cfg)
    prepare(cfg)
    assert OmegaConf.to_yaml(cfg) == before


# ---------------------------------------------------------------------------------------------
# Bad input fails at the door


BAD_VALUES = [
    ("optimizer.learning_rate=-0.5", "optimizer.learning_rate"),
    ("optimizer.learning_rate=0", "optimizer.learning_rate"),
    ("optimizer.learning_rate=nan", "optimizer.learning_rate"),
    ("optimizer.learning_rate=inf", "optimizer.learning_rate"),
    ("training.epochs=0", "training.epochs"),
    ("training.batching=sideways", "training.batching"),
    ("training.batch_size=0", "training.batch_size"),
    ("model.hidden_activation=relux", "model.hidden_activation"),
    ("model.output_activation=nope", "model.output_activation"),
    ("model.init=nope", "model.init"),
    ("model.hidden_sizes=[0]", "model.hidden_sizes[0]"),
    ("model.hidden_sizes=[2,-1]", "model.hidden_sizes[1]"),
    ("model.input_size=3", "model.input_size"),
    ("model.output_size=2", "model.output_size"),
    ("data.name=nope", "data.name"),
    ("data.test_fraction=1.0", "data.test_fraction"),
    ("optimizer.name=nope", "optimizer"),
    ("optimizer.momentum=1.0", "optimizer.momentum"),
    ("loss.name=nope", "loss"),
    ("sweep.seeds=0", "sweep.seeds"),
    ("sweep.learning_rates=[0.5,-1.0]", "sweep.learning_rates"),
    ("training.method=perceptron", "training.method=perceptron"),
    # Biases without weights, or without a bias to set, would be dropped unseen.
    ("model.initial_biases=[[1,2,3]]", "model.initial_biases"),
]


@pytest.mark.parametrize(("override", "key"), BAD_VALUES, ids=[item[0] for item in BAD_VALUES])
def test_a_bad_value_raises_one_line_naming_the_key(compose, override, key):
    cfg = compose(["experiment=xor_mlp", override])
    with pytest.raises(BackpropLabError) as raised:
        prepare(cfg)
    message = str(raised.value)
    assert key in message
    assert "\n" not in message


def test_a_bad_value_message_names_the_value_and_what_is_allowed(compose):
    with pytest.raises(BackpropLabError, match=r"model\.hidden_activation='relux'.*sigmoid"):
        prepare(compose(["model.hidden_activation=relux"]))
    with pytest.raises(BackpropLabError, match=r"data\.name='nope'.*moons"):
        prepare(compose(["data.name=nope"]))
    # The width mismatch says how to fix it.
    with pytest.raises(BackpropLabError, match=r"model\.input_size=2"):
        prepare(compose(["model.input_size=3"]))


def test_learning_rates_and_log_space_are_exclusive(compose):
    with pytest.raises(BackpropLabError, match="sweep.log_space"):
        prepare(compose(["sweep.learning_rates=[0.1]", "sweep.log_space=[0.1,1.0,3]"]))


@pytest.mark.parametrize(
    ("override", "full_key"),
    [
        ("model.nonexistent=3", "model.nonexistent"),
        ("optimizer.learning_rate=abc", "optimizer.learning_rate"),
        ("training.epochs=ten", "training.epochs"),
        ("model.hidden_sizes=[a]", "model.hidden_sizes"),
    ],
)
def test_unknown_keys_and_wrong_types_fail_at_composition(compose, override, full_key):
    with pytest.raises(ConfigCompositionException) as raised:
        compose(["experiment=xor_mlp", override])
    assert full_key in str(raised.value.__cause__ or raised.value)


@pytest.mark.parametrize("override", ["+foo=1", "+model.foo=1"])
def test_an_appended_unknown_key_is_rejected(compose, override):
    with pytest.raises((ConfigCompositionException, BackpropLabError), match="foo"):
        prepare(compose(["experiment=xor_mlp", override]))


# ---------------------------------------------------------------------------------------------
# CSV data


def _write_csv(path: Path, rows: list[str]) -> Path:
    path.write_text("\n".join(rows) + "\n")
    return path


def test_a_csv_data_set_sets_the_network_width(compose, tmp_path):
    table = _write_csv(tmp_path / "table.csv", ["a,b,c,y", "0,0,1,0", "1,0,0,1", "0,1,1,1"])
    job = prepare(
        compose(
            [
                "data=csv",
                f"data.path={table}",
                "data.feature_columns=[a,b,c]",
                "data.target_columns=[y]",
            ]
        )
    )
    assert job.architecture.layer_sizes == (3, 2, 1)
    np.testing.assert_array_equal(job.dataset.y_train[:, 0], [0, 1, 1])


def test_a_non_numeric_csv_cell_names_its_row_and_column(compose, tmp_path):
    table = _write_csv(tmp_path / "table.csv", ["a,b,y", "0,0,0", "1,oops,1"])
    cfg = compose(
        ["data=csv", f"data.path={table}", "data.feature_columns=[a,b]", "data.target_columns=[y]"]
    )
    with pytest.raises(BackpropLabError, match=r"row 3, column 'b'.*'oops' is not a number"):
        prepare(cfg)


def test_a_missing_csv_column_lists_the_columns(compose, tmp_path):
    table = _write_csv(tmp_path / "table.csv", ["a,b,y", "0,0,0"])
    cfg = compose(
        ["data=csv", f"data.path={table}", "data.feature_columns=[a,z]", "data.target_columns=[y]"]
    )
    with pytest.raises(BackpropLabError, match=r"no column 'z'.*a, b, y"):
        prepare(cfg)


def test_a_csv_data_set_without_a_path_names_data_path(compose):
    with pytest.raises(BackpropLabError, match="data.path"):
        prepare(compose(["data=csv", "data.feature_columns=[a]", "data.target_columns=[y]"]))


# ---------------------------------------------------------------------------------------------
# Derived values


def test_flatten_keeps_scalars_and_flat_lists():
    flat = flatten({"a": 1, "b": {"c": "x", "d": [1, 2], "e": [[1], [2]], "f": {"g": None}}})
    assert flat == {"a": 1, "b.c": "x", "b.d": [1, 2], "b.f.g": None}


def test_flattened_config_has_dotted_scalar_keys(compose):
    flat = flatten(to_container(compose(["experiment=xor_mlp"])))
    assert flat["optimizer.learning_rate"] == 2.0
    assert flat["model.hidden_activation"] == "sigmoid"
    assert flat["model.hidden_sizes"] == [2]
    assert flat["training.epochs"] == 5000
    assert "model.initial_weights" in flat  # None in this preset
    explicit = flatten(to_container(compose(["experiment=seed_example"])))
    assert "model.initial_weights" not in explicit  # nested lists are artifacts, not params


def test_config_hash_ignores_tracking_and_resume_only(compose):
    base = config_hash_of(to_container(compose(["experiment=xor_mlp"])))
    same = config_hash_of(
        to_container(
            compose(
                [
                    "experiment=xor_mlp",
                    "resume=true",
                    "tracking.experiment_name=other",
                    "tracking.plots=false",
                ]
            )
        )
    )
    assert same == base
    for override in ("optimizer.learning_rate=0.3", "seed=1", "training.epochs=10", "data=or"):
        assert config_hash_of(to_container(compose(["experiment=xor_mlp", override]))) != base


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        (["loss=bce", "model.output_activation=tanh"], "loss=bce needs probabilities"),
        (["sweep.seeds=[1,1]"], "each seed may appear once"),
        (["sweep.learning_rates=[0.1,0.1]"], "each rate may appear once"),
    ],
)
def test_inconsistent_choices_are_rejected(compose, overrides, fragment):
    from backprop_lab.config import validate

    with pytest.raises(BackpropLabError, match=fragment):
        validate(compose(["experiment=xor_mlp", *overrides]))
