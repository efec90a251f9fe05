"""The worked example: one gradient step recomputed from a single run's logged config.

When the run took exactly that one step, the recomputed weights are compared with the logged
``weights.json``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

from backprop_lab.report.blocks import Block, Heading, Paragraph, Table
from backprop_lab.report.formats import fmt_number, fmt_value
from backprop_lab.report.jobs import Job

if TYPE_CHECKING:
    from backprop_lab.core.explain import StepExplanation

_BACKWARD_HEADERS = [
    "weight",
    "value",
    "∂E/∂out",
    "∂out/∂net",
    "∂net/∂w",
    "gradient ∂E/∂w",
    "updated w − η·∂E/∂w",
]


class _FirstStep(NamedTuple):
    """The recomputed step and what it was computed from, as the report prints it."""

    step: StepExplanation
    rate: float
    sample: str
    targets: str


def has_worked_example(job: Job) -> bool:
    return (
        job.kind == "single"
        and job.cfg is not None
        and job.architecture is not None
        and job.dataset is not None
        and job.cfg.model.initial_weights is not None
    )


def update_steps(job: Job) -> int | None:
    """How many gradient steps a single run took (None when unknown)."""
    if job.cfg is None or job.dataset is None:
        return None
    training = job.cfg.training
    samples = len(job.dataset.x_train)
    per_epoch = {
        "online": samples,
        "shuffled": samples,
        "full": 1,
        "minibatch": -(-samples // max(int(training.batch_size), 1)),
    }
    return (
        None
        if training.batching not in per_epoch
        else int(training.epochs) * per_epoch[training.batching]
    )


def _first_step(job: Job) -> _FirstStep:
    """The first gradient step from the logged initial weights, learning rate and sample."""
    from omegaconf import OmegaConf

    from backprop_lab.core.explain import explain_step
    from backprop_lab.core.model import params_from_lists

    cfg = job.cfg
    params = params_from_lists(
        job.architecture,
        OmegaConf.to_container(cfg.model.initial_weights),
        None
        if cfg.model.initial_biases is None
        else OmegaConf.to_container(cfg.model.initial_biases),
    )
    x, y = job.dataset.x_train[0], job.dataset.y_train[0]
    rate = float(cfg.optimizer.learning_rate)
    step = explain_step(
        job.architecture, params, [float(v) for v in x], [float(v) for v in y], rate, cfg.loss.name
    )
    sample = "(" + ", ".join(fmt_value(v) for v in x) + ")"
    targets = "(" + ", ".join(fmt_value(v) for v in y) + ")"
    return _FirstStep(step, rate, sample, targets)


def _introduction(job: Job, first: _FirstStep) -> list[Block]:
    step = first.step
    return [
        Heading(2, "Worked example: the first gradient step", "worked-example"),
        Paragraph(
            f"Recomputed with the chain rule (backprop_lab.core.explain) from the run's logged initial weights, "
            f"learning rate η = {fmt_value(first.rate)}, loss {job.cfg.loss.name} and first training sample "
            f"x = {first.sample}, y = {first.targets}. Loss before the step: {fmt_number(step.loss)}."
        ),
        Table(
            ["unit", "net input z", "output"],
            [
                [unit.name, fmt_number(unit.net_input), fmt_number(unit.output)]
                for unit in step.forward
            ],
            "Forward pass",
            numeric=(1, 2),
        ),
    ]


def _logged_values(job: Job, step: StepExplanation) -> list[float]:
    """Each weight of ``step.backward`` as ``weights.json`` logged it after training."""
    from backprop_lab.core.explain import input_names, unit_names

    names = unit_names(job.architecture)
    sources = [input_names(job.architecture), *names[:-1]]
    layers = job.weights_json["layers"]
    values = []
    for weight in step.backward:
        layer = layers[weight.layer - 1]
        unit = names[weight.layer - 1].index(weight.unit)
        if weight.source == "1":
            values.append(float(layer["biases"][unit]))
        else:
            source = sources[weight.layer - 1].index(weight.source)
            values.append(float(layer["weights"][unit][source]))
    return values


def _backward_table(step: StepExplanation, logged: list[float] | None) -> Table:
    """The chain rule per weight and its update; beside it the logged weight, when compared."""
    headers = _BACKWARD_HEADERS + (
        ["logged (weights.json)", "difference"] if logged is not None else []
    )
    rows = []
    for index, weight in enumerate(step.backward):
        row = [
            weight.name,
            fmt_number(weight.value),
            fmt_number(weight.dE_dout),
            fmt_number(weight.dout_dnet),
            fmt_number(weight.dnet_dw),
            fmt_number(weight.gradient),
            fmt_number(weight.updated),
        ]
        if logged is not None:
            value = logged[index]
            row += [fmt_number(value), f"{value - weight.updated:.1e}"]
        rows.append(row)
    return Table(
        headers,
        rows,
        "Backward pass and update (output layer first)",
        numeric=tuple(range(1, len(headers))),
    )


def _findings(first: _FirstStep, logged: list[float] | None) -> list[str]:
    step = first.step
    output_weight = step.backward[0]
    hidden_weight = next((w for w in step.backward if w.layer == 1), None)
    changes = [
        f"{w.name} {fmt_number(w.value)} → {fmt_number(w.updated)}"
        for w in (output_weight, hidden_weight)
        if w is not None
    ]
    found = [
        f"first gradient step (η = {fmt_value(first.rate)}, x = {first.sample}, y = {first.targets}): "
        + " and ".join(dict.fromkeys(changes))
    ]
    agreeing = sum(w.agrees for w in step.backward)
    found.append(
        f"the chain-rule product agrees with autodiff for all {agreeing} parameters"
        if step.agrees
        else f"the chain-rule product agrees with autodiff for only {agreeing} of {len(step.backward)} parameters"
    )
    if logged is not None:
        differences = [
            abs(value - weight.updated) for value, weight in zip(logged, step.backward, strict=True)
        ]
        found.append(
            f"the recomputed update matches the logged weights.json for all {len(differences)} parameters "
            f"(largest difference {max(differences):.1e})"
        )
    return found


def worked_example(job: Job) -> tuple[list[Block], list[str]]:
    """The worked example's blocks and findings; nothing, with a note, when the logged initial
    weights cannot be used."""
    try:
        first = _first_step(job)
    except Exception as error:  # initial weights that do not fit the network, a bad loss name...
        job.problems.append(f"its initial weights give no worked example ({type(error).__name__})")
        return [], []
    steps = update_steps(job)
    compare = steps == 1 and job.weights_json is not None and job.cfg.optimizer.name == "sgd"
    logged = _logged_values(job, first.step) if compare else None
    blocks = [*_introduction(job, first), _backward_table(first.step, logged)]
    if not compare and steps is not None and steps != 1:
        blocks.append(
            Paragraph(
                f"The run took {steps} gradient steps, so its logged final weights are not compared with this first step."
            )
        )
    return blocks, _findings(first, logged)
