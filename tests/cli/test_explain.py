"""``bplab-explain`` as a user runs it: the article's example, any config, the three outputs.

Recorded runs (``--run``) are in ``test_explain_run.py``. Every test calls the command's
``run(argv)`` in-process, as the console script does, and reads what it printed.
"""

from __future__ import annotations

import json
from io import StringIO
from pathlib import Path

import jax
import pytest
from rich.console import Console

from backprop_lab.cli import explain as cli
from backprop_lab.core import explain
from backprop_lab.explain.sources import compose_config

# The article rounds intermediates to four decimals, so its figures agree to about 1e-4.
TOL = 1e-4

# The backward table bplab-explain printed for the article before it took configs and runs:
# weight, w, ∂E/∂out, ∂out/∂net, ∂net/∂w, ∂E/∂w, new w. The same numbers must still be there.
ARTICLE_BACKWARD_ROWS = [
    "w(h1→o1) 0.3700 −0.1835 0.2031 0.5399 −0.0201 0.3941",
    "w(h2→o1) 0.9000 −0.1835 0.2031 0.4638 −0.0173 0.9207",
    "b(o1) 0.3100 −0.1835 0.2031 1.0000 −0.0373 0.3547",
    "w(h1→o2) −0.2200 0.4239 0.2494 0.5399 0.0571 −0.2885",
    "w(h2→o2) −0.1200 0.4239 0.2494 0.4638 0.0490 −0.1788",
    "b(o2) 0.2700 0.4239 0.2494 1.0000 0.1057 0.1431",
    "w(x1→h1) 0.1000 −0.0371 0.2484 0.5000 −0.0046 0.1055",
    "w(x2→h1) −0.2000 −0.0371 0.2484 −0.5000 0.0046 −0.2055",
    "b(h1) 0.0100 −0.0371 0.2484 1.0000 −0.0092 0.0210",
    "w(x1→h2) 0.3000 −0.0462 0.2487 0.5000 −0.0057 0.3069",
    "w(x2→h2) 0.5500 −0.0462 0.2487 −0.5000 0.0057 0.5431",
    "b(h2) −0.0200 −0.0462 0.2487 1.0000 −0.0115 −0.0062",
]
ARTICLE_FORWARD_ROWS = [
    "h1 0.1600 0.5399",
    "h2 −0.1450 0.4638",
    "o1 0.9272 0.7165",
    "o2 0.0956 0.5239",
]


@pytest.fixture(autouse=True)
def _float32_afterwards():
    """A float64 config switches x64 on for the process; later tests expect float32."""
    yield
    jax.config.update("jax_enable_x64", False)


def _json(argv: list[str], capsys) -> dict:
    assert cli.run([*argv, "--json"]) == 0, capsys.readouterr().err
    return json.loads(capsys.readouterr().out)


def _weights(payload: dict) -> dict:
    return {w["name"]: w for w in payload["backward"]}


# ---------------------------------------------------------------------------------------------
# The article's example: no arguments


def test_no_arguments_prints_the_article_figures_it_always_printed(capsys):
    assert cli.run([]) == 0
    lines = [" ".join(line.split()) for line in capsys.readouterr().out.splitlines()]
    for row in ARTICLE_FORWARD_ROWS:
        assert row in lines, row
    for row in ARTICLE_BACKWARD_ROWS:
        name, value, dE_dout, dout_dnet, dnet_dw, gradient, updated = row.split()
        # Now with the product before jax.grad, and the check mark before the new weight.
        expected = (
            f"{name} {value} {dE_dout} {dout_dnet} {dnet_dw} {gradient} {gradient} ✓ {updated}"
        )
        assert expected in lines, expected
    assert any("loss E = 0.1067" in line for line in lines)


def test_json_output_has_the_same_numbers(capsys):
    article_step = explain.explain_article_step()
    payload = _json([], capsys)
    assert payload["sample"] == 1
    assert payload["source"] == "article"
    assert payload["learning_rate"] == 1.2
    assert payload["loss"] == pytest.approx(article_step.loss)
    units = {u["name"]: u for u in payload["forward"]}
    assert units["h2"]["net_input"] == pytest.approx(-0.145, abs=TOL)
    assert units["o2"]["output"] == pytest.approx(0.5238, abs=TOL)
    weights = _weights(payload)
    assert weights["w(h1→o1)"]["updated"] == pytest.approx(0.3941, abs=TOL)
    assert weights["w(x1→h1)"]["updated"] == pytest.approx(0.1055, abs=TOL)
    # JSON carries 7 significant digits (float32's precision), so 0.1 prints as 0.1.
    for key in ("forward", "backward"):
        expected = json.loads(json.dumps(article_step.to_dict()[key]))
        assert len(payload[key]) == len(expected)
        for got, want in zip(payload[key], expected, strict=True):
            assert got.keys() == want.keys()
            for field, value in want.items():
                if isinstance(value, float):
                    assert got[field] == pytest.approx(value, rel=1e-6, abs=1e-12), (key, field)
                else:
                    assert got[field] == value
    assert units["h1"]["net_input"] == 0.16
    assert payload["agrees"] is True
    assert payload["harvard"]["net_input"] == pytest.approx(2.291, abs=1e-6)
    assert payload["harvard"]["verdict"] == "pass"
    deltas = {d["name"]: d for d in payload["deltas"]}
    assert deltas["h1"]["dE_dout"] == pytest.approx(-0.0370, abs=TOL)
    assert [t["unit"] for t in deltas["h1"]["terms"]] == ["o1", "o2"]
    for w in payload["backward"]:
        assert all(
            isinstance(w[key], float) for key in ("dE_dout", "dout_dnet", "dnet_dw", "gradient")
        )


def test_json_sample_and_learning_rate_options(capsys):
    payload = _json(["--sample", "3", "--learning-rate", "0.5"], capsys)
    assert payload["inputs"] == [0.7, 0.9]
    assert payload["targets"] == [0.1, 0.1]
    for w in payload["backward"]:
        assert w["updated"] == pytest.approx(w["value"] - 0.5 * w["gradient"])


def test_human_output_reads_well(capsys):
    assert cli.run(["--decimals", "3"]) == 0
    out = capsys.readouterr().out
    for title in ("Harvard finals neuron", "Forward pass", "δ recursion", "Backward pass"):
        assert title in out
    assert "w(h1→o1)" in out and "b(o2)" in out and "✓" in out
    assert "0.394" in out and "0.106" in out  # new w(h1→o1), w(x1→h1) to 3 decimals
    assert "σ'(z) = σ(z)(1 − σ(z))" in out
    assert "−(yₖ − ŷₖ)" in out
    assert "δⱼ = f'(zⱼ)·Σₖ δₖ·wₖⱼ" in out
    assert "−0.05" not in out and "e^(0.16)" not in out  # the article's typos


def test_markdown_output_is_tables_and_text(capsys):
    assert cli.run(["--markdown"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("# One step of backprop, explained\n")
    assert "| weight | w | ∂E/∂out | ∂out/∂net | ∂net/∂w | product | jax.grad |  | new w |" in out
    assert (
        "| w(h1→o1) | 0.3700 | −0.1835 | 0.2031 | 0.5399 | −0.0201 | −0.0201 | ✓ | 0.3941 |" in out
    )
    assert "┃" not in out and "─" not in out  # no terminal box drawing


def test_render_keeps_square_brackets_of_formulas():
    x, y = explain.ARTICLE_SAMPLE
    step = explain.explain_step(
        explain.ARTICLE_ARCHITECTURE, explain.article_params(), x, y, 1.2, loss="bce"
    )
    buffer = StringIO()
    cli.render(step, console=Console(file=buffer, width=200))
    assert "[yₖ log ŷₖ + (1 − yₖ) log(1 − ŷₖ)]" in buffer.getvalue()


def test_disagreement_is_flagged(monkeypatch, capsys):
    def doubled(loss_of_params, params):
        return jax.tree_util.tree_map(lambda g: 2 * g, jax.grad(loss_of_params)(params))

    monkeypatch.setattr(explain, "_autodiff_gradients", doubled)
    step = explain.explain_article_step()
    assert not step.agrees
    assert not any(w.agrees for w in step.backward)
    assert cli.run(["--json"]) == 1
    assert "disagree" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------
# Any config: a preset and Hydra overrides, as bplab-train takes them


def test_a_2_3_1_tanh_network_from_overrides(capsys):
    from backprop_lab.core.runner import seed_keys
    from backprop_lab.jobs import prepare

    overrides = ["experiment=xor_mlp", "model.hidden_sizes=[3]", "model.hidden_activation=tanh"]
    payload = _json(overrides, capsys)
    assert payload["source"] == "config" and payload["overrides"] == overrides
    assert payload["architecture"]["layer_sizes"] == [2, 3, 1]
    assert payload["architecture"]["hidden_activation"] == "tanh"
    assert payload["agrees"] is True
    assert payload["inputs"] == [0.0, 0.0] and payload["sample_numbers"] == [1]
    assert payload["learning_rate"] == 2.0  # the preset's rate
    # The weights bplab-train would start from: initial_params_fn with the seed's init key.
    job = prepare(compose_config(overrides))
    params = job.init_fn(seed_keys(0)[0])
    weights = _weights(payload)
    assert weights["w(x2→h3)"]["value"] == pytest.approx(float(params[0].weights[2, 1]), rel=1e-6)
    assert weights["w(h2→o1)"]["value"] == pytest.approx(float(params[1].weights[0, 1]), rel=1e-6)
    deltas = {d["name"]: d for d in payload["deltas"]}
    assert deltas["h2"]["dout_dnet"] == pytest.approx(1 - deltas["h2"]["net_input"] ** 2, abs=1e-3)


def test_explicit_initial_weights_are_honoured(capsys):
    """seed_example sets the article's weights in model.initial_weights: the same step."""
    payload = _json(["experiment=seed_example"], capsys)
    article = explain.explain_article_step()
    weights = _weights(payload)
    for step in article.backward:
        assert weights[step.name]["value"] == pytest.approx(step.value, rel=1e-6)
        assert weights[step.name]["gradient"] == pytest.approx(step.gradient, rel=1e-5, abs=1e-7)
        assert weights[step.name]["updated"] == pytest.approx(step.updated, rel=1e-6)


def test_a_full_batch_is_explained_as_a_sum_over_its_samples(capsys):
    payload = _json(["experiment=xor_mlp", "training.batching=full"], capsys)
    assert payload["batch_size"] == 4 and payload["sample_numbers"] == [1, 2, 3, 4]
    for w in payload["backward"]:
        assert w["dE_dout"] is None and len(w["terms"]) == 4
        assert sum(t["product"] for t in w["terms"]) == pytest.approx(w["gradient"], abs=1e-6)
    assert cli.run(["experiment=xor_mlp", "training.batching=full"]) == 0
    out = capsys.readouterr().out
    assert "Chain rule, sample 4" in out and "Σ products" in out


def test_adam_shows_its_own_step_and_says_it_is_not_eta_g(capsys):
    overrides = ["experiment=xor_mlp", "optimizer=adam", "optimizer.learning_rate=0.05"]
    payload = _json([*overrides, "--sample", "2"], capsys)
    assert payload["optimizer"] == "adam"
    for w in payload["backward"]:
        assert w["updated"] == pytest.approx(w["value"] + w["step"], abs=1e-6)
    # A fresh Adam moves every weight with a clear gradient by about η, whatever its size.
    moved = [w for w in payload["backward"] if abs(w["gradient"]) > 1e-4]
    assert moved and all(abs(abs(w["step"]) - 0.05) < 1e-3 for w in moved)
    assert cli.run([*overrides, "--sample", "2"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "So its step is not η·∂E/∂w" in out
    assert "fresh optimizer state" in out


def test_threshold_units_are_explained_with_the_straight_through_alternative(capsys):
    overrides = ["experiment=threshold_vs_sigmoid", "+arm=threshold_backprop"]
    assert cli.run([*overrides, "--sample", "2"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "backprop cannot train threshold units" in out
    assert "straight-through estimator" in out and "STE's ∂out/∂net" in out
    payload = _json(
        ["experiment=threshold_vs_sigmoid", "+arm=threshold_ste", "--sample", "2"], capsys
    )
    assert payload["straight_through"] is True
    assert any(w["gradient"] != 0 for w in payload["backward"])


def test_a_grid_config_explains_the_chosen_cell(capsys):
    overrides = ["experiment=xor_mlp", "sweep.learning_rates=[0.5,4]", "sweep.seeds=3"]
    first = _json(overrides, capsys)
    chosen = _json([*overrides, "--cell", "4,2"], capsys)
    assert first["learning_rate"] == 0.5 and chosen["learning_rate"] == 4.0
    assert any("seed 2" in note for note in chosen["notes"])
    assert _weights(first)["w(x1→h1)"]["value"] != _weights(chosen)["w(x1→h1)"]["value"]


def test_a_float64_config_explains_in_float64(capsys):
    payload = _json(["experiment=xor_mlp", "training.precision=float64"], capsys)
    assert payload["precision"] == "float64"
    assert all(abs(w["chain_rule"] - w["gradient"]) <= 1e-12 for w in payload["backward"])


# ---------------------------------------------------------------------------------------------
# Bad input: one line, exit 2


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["--sample", "7"], "samples 1 to 3"),
        (["--sample", "0"], "samples 1 to 3"),
        (["--sample", "two"], "invalid int value"),
        (["--learning-rate", "-1"], "must be a positive number"),
        (["--decimals", "40"], "between 0 and 12"),
        (["--no-such-option"], "unrecognized arguments"),
        (["--epoch", "3"], "--epoch needs --run"),
        (["--cell", "0.5,1"], "--cell needs a grid"),
        (["--json", "--markdown"], "not allowed with"),
        (["--run", "abc", "experiment=xor_mlp"], "keeps its own config"),
        (["--run", "abc", "--learning-rate", "1"], "keeps its own learning rate"),
        (["experiment=xor_mlp", "model.no_such_key=1"], "model.no_such_key"),
        (["experiment=no_such_preset"], "no_such_preset"),
        (["experiment=xor_mlp", "optimizer.learning_rate=-1"], "optimizer.learning_rate"),
        (["experiment=xor_mlp", "--sample", "5"], "samples 1 to 4"),
        (["experiment=xor_mlp", "--cell", "0.5,0"], "not a grid"),
        (["experiment=xor_mlp", "sweep.seeds=2", "--cell", "0.5,7"], "not in the grid"),
        (["experiment=xor_mlp", "sweep.seeds=2", "--cell", "fast"], "is not LR,SEED"),
        (["experiment=perceptron_gates"], "Rosenblatt"),
    ],
)
def test_bad_input_gives_one_line_and_exit_code_2(argv, fragment, capsys):
    assert cli.run(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("bplab-explain: error:")
    assert fragment in lines[0]
    assert "Traceback" not in captured.err


def test_the_readme_example_prints_what_the_readme_shows(capsys):
    """The README's example beyond the article: its excerpt is what the command prints."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    command = next(
        line.split("#")[0].split()
        for line in readme.splitlines()
        if line.startswith("bplab-explain experiment=")
    )
    excerpt = readme.split("part of what it prints:\n\n```\n", 1)[1].split("```", 1)[0]
    assert cli.run(command[1:]) == 0
    printed = {" ".join(line.split()) for line in capsys.readouterr().out.splitlines()}
    for line in excerpt.splitlines():
        if line.strip() not in ("...", "") and not set(line) <= {"─"}:
            assert " ".join(line.split()) in printed, line
