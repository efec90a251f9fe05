"""How ``bplab-explain`` words a step: blocks for the terminal and Markdown, or JSON.

The walk-through is built once as blocks (:mod:`backprop_lab.report.blocks`: headings,
paragraphs, tables), which :mod:`backprop_lab.cli.explain` prints with rich and
:func:`markdown` renders as Markdown, so the two always say the same. The numbers come from
:mod:`backprop_lab.core.explain`; this module only words them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

from backprop_lab.core.article import ARTICLE_ARCHITECTURE, ARTICLE_SAMPLE, HarvardNeuron
from backprop_lab.core.explain import DeltaStep, StepExplanation, WeightStep, unit_names
from backprop_lab.report.blocks import (
    Block,
    Bullets,
    Heading,
    Paragraph,
    Table,
    render_markdown,
)

# A batch shows its first samples one by one; --json lists every one.
MAX_SAMPLES_SHOWN = 4


class Context(NamedTuple):
    """What a step was computed from, as the walk-through says it.

    ``sample_numbers`` are the data set's numbers (from 1) of the batch's samples, in order;
    ``notes`` say where the parameters and the optimizer state came from and how the step
    compares with a recorded run; ``settings`` are the optimizer's hyperparameters;
    ``fresh_state`` says the optimizer starts afresh (its first step); ``source`` goes into
    the JSON as it is.
    """

    sample_label: str = "the sample"
    sample_numbers: tuple[int, ...] = (1,)
    notes: tuple[str, ...] = ()
    harvard: HarvardNeuron | None = None
    settings: tuple[tuple[str, float], ...] = ()
    fresh_state: bool = True
    source: tuple[tuple[str, object], ...] = ()


# ---------------------------------------------------------------------------------------------
# Numbers


def number(value: float | None, decimals: int = 4) -> str:
    """Fixed decimals with a true minus sign; tiny non-zero values in scientific notation, so
    a vanishing gradient never reads as 0."""
    if value is None:
        return "—"
    if not math.isfinite(value):
        return str(value)
    if value != 0 and abs(value) < 10 ** -(decimals - 1) and decimals > 0:
        text = f"{value:.{max(decimals - 2, 1)}e}"
    else:
        text = f"{value:.{decimals}f}"
    if not text.startswith("-"):
        return text
    # A tiny negative number rounds to "-0.0000": show zero. Otherwise use a true minus sign.
    return text[1:] if float(text) == 0 else "−" + text[1:]


def vector(values: Sequence[float], decimals: int) -> str:
    return "(" + ", ".join(number(v, decimals) for v in values) + ")"


def signed(value: float, decimals: int) -> str:
    """A factor inside a product: negative numbers in parentheses."""
    text = number(value, decimals)
    return f"({text})" if text.startswith("−") else text


def significant(value, digits: int = 7):
    """Floats to ``digits`` significant digits (7 is float32's precision: 0.1 prints as 0.1,
    not 0.10000000149011612)."""
    if isinstance(value, float):
        return float(f"{value:.{digits}g}") if math.isfinite(value) else str(value)
    if isinstance(value, dict):
        return {key: significant(item, digits) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [significant(item, digits) for item in value]
    return value


def json_payload(explanation: StepExplanation, context: Context) -> dict:
    """The explanation, where it came from and (for the article) the Harvard neuron as JSON."""
    payload = {**dict(context.source), **explanation.to_dict()}
    payload["sample_numbers"] = list(context.sample_numbers)
    payload["notes"] = list(context.notes)
    if context.harvard is not None:
        payload["harvard"] = context.harvard.to_dict()
    return significant(payload, 17 if explanation.precision == "float64" else 7)


# ---------------------------------------------------------------------------------------------
# Sentences

# Why ∂E/∂ŷ has the form it has, for each loss the project knows.
LOSS_SENTENCES = {
    "half_sse": "E = ½ Σₖ (yₖ − ŷₖ)², summed over the outputs. The ½ cancels the 2 of the square, "
    "so ∂E/∂ŷₖ = −(yₖ − ŷₖ).",
    "mse": "E = (1/K) Σₖ (yₖ − ŷₖ)² over the K outputs, so ∂E/∂ŷₖ = −2(yₖ − ŷₖ)/K.",
    "bce": "E = −(1/K) Σₖ [yₖ log ŷₖ + (1 − yₖ) log(1 − ŷₖ)], so ∂E/∂ŷₖ = (ŷₖ − yₖ) / (K ŷₖ(1 − ŷₖ)).",
    "cce": "E = −Σₖ yₖ log ŷₖ over the classes, with ŷ = softmax(z), so ∂E/∂ŷₖ = −yₖ/ŷₖ. Each ŷₖ "
    "depends on every zⱼ of its layer, ∂ŷₖ/∂zⱼ = ŷₖ(1[k = j] − ŷⱼ), so a softmax unit has no "
    "∂out/∂net of its own; the two multiply out to ∂E/∂zₖ = ŷₖ − yₖ (for a one-hot y), which is "
    "taken whole as each output unit's δ.",
}

# The output units' δ when it is not ∂E/∂out · ∂out/∂net (a softmax output).
SOFTMAX_DELTA = "ŷ − y (softmax with cross-entropy)"

ACTIVATION_SENTENCES = {
    "sigmoid": "σ(z) = 1 / (1 + e^(−z)), and its slope is σ'(z) = σ(z)(1 − σ(z)), "
    "so ∂out/∂net = out·(1 − out).",
    "tanh": "tanh'(z) = 1 − tanh²(z), so ∂out/∂net = 1 − out².",
    "linear": "The unit outputs its net input, so ∂out/∂net = 1.",
    "relu": "relu(z) = max(0, z), so ∂out/∂net is 1 for z > 0 and 0 below: a unit with z < 0 "
    "passes no error back.",
    "threshold": "The threshold unit outputs 1 when z > θ and 0 otherwise.",
    "softmax": "The softmax turns the output layer's net inputs into class probabilities, "
    "ŷₖ = e^(zₖ) / Σⱼ e^(zⱼ), which add up to 1; the predicted class is the largest.",
}


def _softmax(explanation: StepExplanation) -> bool:
    return explanation.architecture.output_activation == "softmax"


_OPTIMIZER_RULES = {
    "momentum": "SGD with momentum (optax.sgd with momentum μ = {momentum:g}) keeps a velocity "
    "v ← ∂E/∂w + μ·v and steps w ← w − η·v. So its step is not η·∂E/∂w: it also carries μ "
    "times the velocity built up by the steps before.",
    "nesterov": "Nesterov momentum (optax.sgd with nesterov=True, μ = {momentum:g}) keeps a "
    "velocity v ← ∂E/∂w + μ·v and steps w ← w − η·(∂E/∂w + μ·v). So its step is not η·∂E/∂w: "
    "it looks ahead along the velocity built up by the steps before.",
    "adam": "Adam (optax.adam, β₁ = {beta1:g}, β₂ = {beta2:g}, ε = {eps:g}) keeps running means "
    "of the gradient, m ← β₁m + (1 − β₁)g, and of its square, v ← β₂v + (1 − β₂)g², and steps "
    "w ← w − η·m̂/(√v̂ + ε) with m̂ = m/(1 − β₁ᵗ), v̂ = v/(1 − β₂ᵗ). So its step is not η·∂E/∂w: "
    "each weight's gradient is divided by its own recent size.",
    "rmsprop": "RMSProp (optax.rmsprop, decay ρ = {beta2:g}) keeps a running mean of the squared "
    "gradient, ν ← ρν + (1 − ρ)g², and steps w ← w − η·g/√(ν + ε). So its step is not η·∂E/∂w: "
    "each gradient is divided by its own recent size.",
    "adagrad": "Adagrad (optax.adagrad) adds up every squared gradient so far, G ← G + g², and "
    "steps w ← w − η·g/√G. So its step is not η·∂E/∂w: it shrinks as gradients accumulate.",
}

_FRESH_STATE = {
    "momentum": "This step starts from a fresh optimizer state (v = 0), so here it equals "
    "−η·∂E/∂w; from the second step on the two differ.",
    "nesterov": "This step starts from a fresh optimizer state (v = 0), so here it is "
    "−η·(1 + μ)·∂E/∂w.",
    "adam": "This step starts from a fresh optimizer state (t = 1), where m̂ = g and v̂ = g²: "
    "every weight whose gradient is not tiny moves by about η, whatever the gradient's size.",
    "rmsprop": "This step starts from a fresh optimizer state (ν = 0), so every weight whose "
    "gradient is not tiny moves by about η/√(1 − ρ), whatever the gradient's size.",
    "adagrad": "This step starts from a fresh optimizer state (G = 0.1 for every weight).",
}


def optimizer_sentences(explanation: StepExplanation, context: Context) -> list[str]:
    """How the weights move: w − η·g for SGD; the optimizer's rule, and why it is not η·g."""
    eta = f"{explanation.learning_rate:g}"
    if explanation.optimizer == "sgd":
        return [
            f"Every weight then steps downhill, w ← w − η·∂E/∂w with η = {eta}; "
            "all gradients use the weights from before the step."
        ]
    settings = {
        "momentum": 0.9,
        "beta1": 0.9,
        "beta2": 0.999,
        "eps": 1e-8,
        **dict(context.settings),
    }
    rule = _OPTIMIZER_RULES[explanation.optimizer].format(**settings)
    state = (
        _FRESH_STATE[explanation.optimizer]
        if context.fresh_state
        else "Its state before this step comes from replaying the run's earlier steps."
    )
    return [
        rule + f" η = {eta}; the column −η·∂E/∂w shows what plain SGD would do instead.",
        state,
    ]


def threshold_sentences(explanation: StepExplanation, decimals: int) -> list[str]:
    """Threshold units: why backprop stalls there, and what a straight-through estimator uses."""
    ste = [d for d in explanation.deltas if d.straight_through_slope is not None]
    if not ste:
        return []
    slopes = ", ".join(
        f"{d.name} {number(d.straight_through_slope, decimals)}"
        for d in ste
        if d.sample == ste[0].sample
    )
    if explanation.straight_through:
        return [
            "This run trains its threshold units with a straight-through estimator "
            "(training.method=ste): the forward pass keeps the step, and the backward pass uses "
            f"σ'(z − θ) as ∂out/∂net ({slopes}) instead of the step's derivative, 0."
        ]
    return [
        "A threshold unit's output jumps from 0 to 1 at z = θ and is flat everywhere else, so "
        "∂out/∂net = 0 almost everywhere (and undefined at θ). Every chain-rule product through "
        "it is 0 and no error reaches the weights below: backprop cannot train threshold units.",
        "A straight-through estimator (training.method=ste) keeps the step in the forward pass "
        f"but uses σ'(z − θ) as ∂out/∂net in the backward pass; here that would be {slopes}. "
        "Add training.method=ste to see the whole step with it.",
    ]


# ---------------------------------------------------------------------------------------------
# Blocks


def _harvard_blocks(harvard: HarvardNeuron, decimals: int) -> list[Block]:
    fmt = lambda value: number(value, decimals)  # noqa: E731
    rows = [
        [f"x{i}", fmt(x), fmt(w), fmt(x * w)]
        for i, (x, w) in enumerate(zip(harvard.inputs, harvard.weights, strict=True), start=1)
    ]
    relation = "above" if harvard.output == 1.0 else "not above"
    return [
        Table(["input", "x", "w", "x·w"], rows, "Harvard finals neuron", numeric=(1, 2, 3)),
        Paragraph(
            f"z = Σ xᵢ·wᵢ = {fmt(harvard.net_input)}, which is {relation} the threshold "
            f"θ = {harvard.theta:g}, so the threshold unit outputs {harvard.output:g}: "
            f"{harvard.verdict}."
        ),
        Heading(2, "One step of backprop"),
    ]


def _samples(explanation: StepExplanation) -> list[tuple[tuple[float, ...], tuple[float, ...]]]:
    """``(x, y)`` of every sample of the step."""
    if explanation.batch_size == 1:
        return [(explanation.inputs, explanation.targets)]
    return list(zip(explanation.inputs, explanation.targets, strict=True))


def _header_blocks(explanation: StepExplanation, context: Context, decimals: int) -> list[Block]:
    arch = explanation.architecture
    sizes = "-".join(str(size) for size in arch.layer_sizes)
    hidden = f"{arch.hidden_activation} hidden units, " if len(arch.layer_sizes) > 2 else ""
    theta = (
        f" (θ = {arch.theta:g})"
        if "threshold" in (arch.hidden_activation, arch.output_activation)
        else ""
    )
    blocks: list[Block] = [
        Paragraph(
            f"Network {sizes}: {hidden}{arch.output_activation} outputs{theta}"
            f"{', one bias per unit' if arch.use_bias else ', no biases'}; loss "
            f"{explanation.loss_name}, optimizer {explanation.optimizer}, {explanation.precision}."
        ),
        *(Paragraph(note) for note in context.notes),
    ]
    eta = f"learning rate η = {explanation.learning_rate:g}"
    samples = _samples(explanation)
    if len(samples) == 1:
        x, y = samples[0]
        blocks.append(
            Paragraph(
                f"{context.sample_label[:1].upper() + context.sample_label[1:]}: "
                f"x = {vector(x, decimals)}, target y = {vector(y, decimals)}; {eta}."
            )
        )
        return blocks
    blocks.append(
        Paragraph(
            f"{context.sample_label[:1].upper() + context.sample_label[1:]} "
            f"({len(samples)} samples); {eta}. E is the mean of the samples' losses, so each "
            f"sample's ∂E/∂out carries a factor 1/{len(samples)} and ∂E/∂w is the sum of one "
            "chain-rule product per sample."
        )
    )
    rows = [
        [str(number_), vector(x, decimals), vector(y, decimals)]
        for number_, (x, y) in zip(context.sample_numbers, samples, strict=False)
    ]
    blocks.append(Table(["sample", "x", "target y"], rows, "The batch", numeric=()))
    return blocks


def _shown(explanation: StepExplanation) -> int:
    return min(explanation.batch_size, MAX_SAMPLES_SHOWN)


def _forward_blocks(explanation: StepExplanation, context: Context, decimals: int) -> list[Block]:
    fmt = lambda value: number(value, decimals)  # noqa: E731
    arch = explanation.architecture
    batch = explanation.batch_size > 1
    units = [unit for unit in explanation.forward if unit.sample <= _shown(explanation)]
    if batch:
        headers = ["sample", "unit", "net input z", "output"]
        rows = [
            [str(context.sample_numbers[u.sample - 1]), u.name, fmt(u.net_input), fmt(u.output)]
            for u in units
        ]
    else:
        headers = ["unit", "net input z", "output"]
        rows = [[u.name, fmt(u.net_input), fmt(u.output)] for u in units]
    numeric = tuple(range(len(headers) - 2, len(headers)))
    blocks: list[Block] = [Table(headers, rows, "Forward pass", numeric=numeric)]
    if batch and explanation.batch_size > MAX_SAMPLES_SHOWN:
        blocks.append(_more_samples(explanation))
    bias_text = " + b" if arch.use_bias else ""
    blocks.append(
        Paragraph(
            f"Each unit adds up its weighted inputs, z = Σ w·input{bias_text}, and outputs "
            "activation(z)."
        )
    )
    for activation in dict.fromkeys((arch.hidden_activation, arch.output_activation)):
        if activation in ACTIVATION_SENTENCES and (
            len(arch.layer_sizes) > 2 or activation == arch.output_activation
        ):
            blocks.append(Paragraph(ACTIVATION_SENTENCES[activation]))
    if arch == ARTICLE_ARCHITECTURE and explanation.inputs == ARTICLE_SAMPLE.inputs:
        blocks.append(
            Paragraph(
                "These figures are not rounded along the way. The article rounds each "
                "intermediate value to four decimals, so its last digit can be one off: it "
                "prints z = 0.9271 and 0.7164 for o1."
            )
        )
    if not batch:
        last = len(arch.layer_sizes) - 1
        prediction = [unit.output for unit in explanation.forward if unit.layer == last]
        blocks.append(
            Paragraph(
                f"Prediction ŷ = {vector(prediction, decimals)}; loss E = {fmt(explanation.loss)}."
            )
        )
    else:
        blocks.append(Paragraph(f"Loss E (mean over the batch) = {fmt(explanation.loss)}."))
    return blocks


def _more_samples(explanation: StepExplanation) -> Paragraph:
    return Paragraph(
        f"Samples {MAX_SAMPLES_SHOWN + 1} to {explanation.batch_size} of the batch are computed "
        "the same way; --json lists every one."
    )


def _delta_terms(delta: DeltaStep, decimals: int) -> str:
    """``δo1·w(h1→o1) + … = (−0.0373)·0.3700 + …`` for a hidden unit."""
    if not delta.terms:
        return SOFTMAX_DELTA if delta.dE_dout is None else "∂E/∂ŷ (the loss)"
    symbols = " + ".join(f"δ{term.unit}·w({delta.name}→{term.unit})" for term in delta.terms)
    numbers = " + ".join(
        f"{signed(term.delta, decimals)}·{signed(term.weight, decimals)}" for term in delta.terms
    )
    return f"{symbols} = {numbers}"


def _delta_blocks(explanation: StepExplanation, context: Context, decimals: int) -> list[Block]:
    """The δ recursion, δⱼ = f'(zⱼ)·Σₖ δₖ·wₖⱼ, one table per sample shown."""
    fmt = lambda value: number(value, decimals)  # noqa: E731
    threshold = any(d.straight_through_slope is not None for d in explanation.deltas)
    headers = ["unit", "∂E/∂out = Σₖ δₖ·w(unit→k)", "∂E/∂out", "∂out/∂net", "δ"]
    headers += ["STE's ∂out/∂net"] if threshold and not explanation.straight_through else []
    blocks: list[Block] = []
    for sample in range(1, _shown(explanation) + 1):
        rows = []
        for delta in (d for d in explanation.deltas if d.sample == sample):
            row = [delta.name, _delta_terms(delta, decimals), fmt(delta.dE_dout)]
            row += [fmt(delta.dout_dnet), fmt(delta.delta)]
            if len(headers) == 6:
                row.append(fmt(delta.straight_through_slope))
            rows.append(row)
        caption = "δ recursion, output layer first"
        if explanation.batch_size > 1:
            caption += f": sample {context.sample_numbers[sample - 1]}"
        blocks.append(Table(headers, rows, caption, numeric=tuple(range(2, len(headers)))))
    if len(explanation.architecture.layer_sizes) > 2:
        blocks.append(
            Paragraph(
                "δ = ∂E/∂net = ∂E/∂out · ∂out/∂net. A hidden unit j feeds every unit k of the "
                "next layer, so ∂E/∂outⱼ = Σₖ δₖ·w(j→k) and δⱼ = f'(zⱼ)·Σₖ δₖ·wₖⱼ."
            )
        )
    return blocks


def _backward_blocks(explanation: StepExplanation, context: Context, decimals: int) -> list[Block]:
    """The chain rule of every weight; plain SGD's update beside it, another optimizer's in a
    table of its own."""
    fmt = lambda value: number(value, decimals)  # noqa: E731
    sgd = explanation.optimizer == "sgd"
    batch = explanation.batch_size > 1
    # Into a softmax output the chain is δ · ∂net/∂w, so every row shows it that way.
    softmax = _softmax(explanation)
    factors = ["δ = ∂E/∂net", "∂net/∂w"] if softmax else ["∂E/∂out", "∂out/∂net", "∂net/∂w"]
    factors = [] if batch else factors
    headers = ["weight", "w", *factors, "Σ products" if batch else "product", "jax.grad", ""]
    headers += ["new w"] if sgd else []
    rows = []
    for step in explanation.backward:
        row = [step.name, fmt(step.value)]
        if not batch and softmax:
            row += [fmt(step.delta), fmt(step.dnet_dw)]
        elif not batch:
            row += [fmt(step.dE_dout), fmt(step.dout_dnet), fmt(step.dnet_dw)]
        row += [fmt(step.chain_rule), fmt(step.gradient), "✓" if step.agrees else "✗"]
        rows.append(row + ([fmt(step.updated)] if sgd else []))
    numeric = tuple(i for i in range(1, len(headers)) if headers[i])
    blocks: list[Block] = [Table(headers, rows, "Backward pass", numeric=numeric)]
    if batch:
        blocks += _per_sample_blocks(explanation, context, decimals)
    if not sgd:
        blocks.append(_update_table(explanation, decimals))
    return blocks


def _update_table(explanation: StepExplanation, decimals: int) -> Table:
    """Another optimizer's step beside the −η·∂E/∂w plain SGD would take."""
    fmt = lambda value: number(value, decimals)  # noqa: E731
    rows = [
        [
            step.name,
            fmt(step.value),
            fmt(step.gradient),
            fmt(-explanation.learning_rate * step.gradient),
            fmt(step.step),
            fmt(step.updated),
        ]
        for step in explanation.backward
    ]
    name = explanation.optimizer
    headers = ["weight", "w", "∂E/∂w", "−η·∂E/∂w", f"{name} step", "new w"]
    caption = f"Update: the {name} step (optax), not −η·∂E/∂w"
    return Table(headers, rows, caption, numeric=(1, 2, 3, 4, 5))


def _per_sample_blocks(
    explanation: StepExplanation, context: Context, decimals: int
) -> list[Block]:
    """A batch's chain rule, one table per sample shown."""
    fmt = lambda value: number(value, decimals)  # noqa: E731
    softmax = _softmax(explanation)
    headers = ["weight", *(["δ"] if softmax else ["∂E/∂out", "∂out/∂net"]), "∂net/∂w", "product"]
    blocks: list[Block] = []
    for sample in range(1, _shown(explanation) + 1):
        rows = [
            [
                step.name,
                *([fmt(term.delta)] if softmax else [fmt(term.dE_dout), fmt(term.dout_dnet)]),
                fmt(term.dnet_dw),
                fmt(term.product),
            ]
            for step in explanation.backward
            for term in step.terms
            if term.sample == sample
        ]
        blocks.append(
            Table(
                headers,
                rows,
                f"Chain rule, sample {context.sample_numbers[sample - 1]}",
                numeric=tuple(range(1, len(headers))),
            )
        )
    if explanation.batch_size > MAX_SAMPLES_SHOWN:
        blocks.append(_more_samples(explanation))
    return blocks


def _rule_blocks(explanation: StepExplanation, context: Context, decimals: int) -> list[Block]:
    sentences = [
        "Chain rule: ∂E/∂w = ∂E/∂out · ∂out/∂net · ∂net/∂w, for the unit the weight feeds.",
        LOSS_SENTENCES.get(explanation.loss_name, "∂E/∂ŷ is the loss's derivative."),
    ]
    if _softmax(explanation):
        sentences[0] = (
            "Chain rule: ∂E/∂w = δ · ∂net/∂w for the unit the weight feeds, where δ = ∂E/∂net "
            "is ∂E/∂out · ∂out/∂net for an elementwise unit, and ŷ − y for a softmax output unit."
        )
    if len(explanation.architecture.layer_sizes) > 2:
        sentences.append(
            "A hidden unit feeds every unit k of the next layer, so ∂E/∂out = Σₖ δₖ·w(unit→k), "
            "where δₖ = ∂E/∂outₖ · ∂outₖ/∂netₖ."
        )
    sentences.append("∂net/∂w is the input that the weight multiplies: 1 for a bias.")
    sentences += threshold_sentences(explanation, decimals)
    sentences += optimizer_sentences(explanation, context)
    if explanation.agrees:
        sentences.append("✓: the chain-rule product equals JAX's autodiff gradient (jax.grad).")
    else:
        sentences.append("✗: the chain-rule product differs from JAX's autodiff gradient.")
    return [Paragraph(sentence) for sentence in sentences]


def _worked_blocks(explanation: StepExplanation, decimals: int) -> list[Block]:
    """Spell out the arithmetic for the first weight of the output layer and of the layer below."""
    if explanation.batch_size > 1:
        return []
    fmt = lambda value: number(value, decimals)  # noqa: E731
    last_layer = len(explanation.architecture.layer_sizes) - 1
    units = {unit.name: unit for unit in explanation.forward}
    by_layer: dict[int, list[WeightStep]] = {}
    for step in explanation.backward:
        by_layer.setdefault(step.layer, []).append(step)

    lines = []
    # The first weight of each layer whose input is not 0 (so its product is not trivially 0).
    first = lambda steps: next((s for s in steps if s.dnet_dw), steps[0])  # noqa: E731
    output_step = first(by_layer[last_layer])
    if _softmax(explanation):
        k = unit_names(explanation.architecture)[-1].index(output_step.unit)
        lines.append(
            f"δ{output_step.unit} = ∂E/∂z = ŷ{k + 1} − y{k + 1} = "
            f"{fmt(units[output_step.unit].output)} − {fmt(explanation.targets[k])} = "
            f"{fmt(output_step.delta)}"
        )
    elif explanation.loss_name == "half_sse":
        k = unit_names(explanation.architecture)[-1].index(output_step.unit)
        lines.append(
            f"∂E/∂{output_step.unit} = −(y{k + 1} − {output_step.unit}) = "
            f"−({fmt(explanation.targets[k])} − {fmt(units[output_step.unit].output)}) = "
            f"{fmt(output_step.dE_dout)}"
        )
    lines += _product_lines(output_step, explanation, decimals)
    if last_layer > 1:
        hidden_step = first(by_layer[last_layer - 1])
        delta = next(d for d in explanation.deltas if d.name == hidden_step.unit)
        lines.append(
            f"∂E/∂{hidden_step.unit} = {_delta_terms(delta, decimals)} = {fmt(hidden_step.dE_dout)}"
        )
        lines += _product_lines(hidden_step, explanation, decimals)
    return [Heading(2, "Worked through"), Bullets(lines)]


def _product_lines(step: WeightStep, explanation: StepExplanation, decimals: int) -> list[str]:
    fmt = lambda value: number(value, decimals)  # noqa: E731
    factors = (
        [step.delta, step.dnet_dw]
        if step.dE_dout is None
        else [step.dE_dout, step.dout_dnet, step.dnet_dw]
    )
    product = " × ".join(signed(factor, decimals) for factor in factors)
    lines = [f"∂E/∂{step.name} = {product} = {fmt(step.chain_rule)}"]
    if explanation.optimizer == "sgd":
        lines.append(
            f"new {step.name} = {fmt(step.value)} − {explanation.learning_rate:g}·"
            f"{signed(step.gradient, decimals)} = {fmt(step.updated)}"
        )
    else:
        lines.append(
            f"new {step.name} = {fmt(step.value)} + ({explanation.optimizer} step "
            f"{fmt(step.step)}) = {fmt(step.updated)}, where plain SGD would step "
            f"−{explanation.learning_rate:g}·{signed(step.gradient, decimals)} = "
            f"{fmt(-explanation.learning_rate * step.gradient)}"
        )
    return lines


def explanation_blocks(
    explanation: StepExplanation, context: Context | None = None, *, decimals: int = 4
) -> list[Block]:
    """The whole walk-through: header, forward pass, δ recursion, backward pass, the rules."""
    context = context or Context()
    blocks: list[Block] = []
    if context.harvard is not None:
        blocks += _harvard_blocks(context.harvard, decimals)
    blocks += _header_blocks(explanation, context, decimals)
    blocks += _forward_blocks(explanation, context, decimals)
    blocks += _delta_blocks(explanation, context, decimals)
    blocks += _backward_blocks(explanation, context, decimals)
    blocks += _rule_blocks(explanation, context, decimals)
    blocks += _worked_blocks(explanation, decimals)
    return blocks


# ---------------------------------------------------------------------------------------------
# Output


def markdown(
    explanation: StepExplanation, context: Context | None = None, *, decimals: int = 4
) -> str:
    """The walk-through as Markdown, for notes and reports."""
    return render_markdown(
        [
            Heading(1, "One step of backprop, explained"),
            *explanation_blocks(explanation, context, decimals=decimals),
        ]
    )
