"""Training against the worked example, a NumPy trainer and what the article predicts.

Comparisons with :mod:`reference_numpy` run in float64 (``jax.enable_x64``) so they can be tight;
the rest runs in the engine's default float32.
"""

import itertools
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import reference_numpy as ref

from backprop_lab.core.data import homework, logic_gate, playground
from backprop_lab.core.model import (
    Architecture,
    forward,
    init_params,
    layer_activations,
    params_from_lists,
)
from backprop_lab.core.train import (
    Data,
    TrainSpec,
    make_train,
    single_network_spec,
    to_device_data,
    train_network,
)
from backprop_lab.errors import BackpropLabError

WORKED = Architecture((2, 2, 2), "sigmoid", "sigmoid")
WORKED_WEIGHTS = [[[0.1, -0.2], [0.3, 0.55]], [[0.37, 0.9], [-0.22, -0.12]]]
WORKED_BIASES = [[0.01, -0.02], [0.31, 0.27]]
KEY = jax.random.PRNGKey(0)


@pytest.fixture
def x64():
    with jax.enable_x64(True):
        yield


def _flat(params) -> list[np.ndarray]:
    return [np.asarray(leaf) for leaf in jax.tree_util.tree_leaves(params)]


def _assert_same_bits(a, b):
    for left, right in zip(_flat(a), _flat(b), strict=True):
        np.testing.assert_array_equal(left, right)


def _assert_params_match_reference(params, weights, biases, rtol=1e-9):
    for layer, expected_w, expected_b in zip(params, weights, biases, strict=True):
        np.testing.assert_allclose(np.asarray(layer.weights), expected_w, rtol=rtol, atol=1e-12)
        if expected_b is None:
            assert layer.biases is None
        else:
            np.testing.assert_allclose(np.asarray(layer.biases), expected_b, rtol=rtol, atol=1e-12)


def _engine_params(architecture, weights, biases):
    return params_from_lists(
        architecture,
        [np.asarray(w).tolist() for w in weights],
        None if biases[0] is None else [np.asarray(b).tolist() for b in biases],
        dtype=jnp.float64,
    )


# ---------------------------------------------------------------- the worked example


def test_one_online_step_reproduces_the_worked_example():
    """SEED-NOTES §5: one SGD step on the first sample with η = 1.2."""
    spec = TrainSpec(WORKED, loss="half_sse", optimizer="sgd", epochs=1, batching="online")
    params = params_from_lists(WORKED, WORKED_WEIGHTS, WORKED_BIASES)
    first = Data(jnp.asarray([[0.5, -0.5]]), jnp.asarray([[0.9, 0.1]]))
    result = jax.jit(make_train(spec))(params, 1.2, KEY, first)

    assert float(result.params[1].weights[0, 0]) == pytest.approx(0.3941, abs=1e-4)  # w(h1→o1)
    assert float(result.params[0].weights[0, 0]) == pytest.approx(0.1055, abs=1e-4)  # w(x1→h1)
    # E = ½[(0.9 − 0.7164)² + (0.1 − 0.5238)²] before the step, with the article's outputs.
    article_loss = 0.5 * ((0.9 - 0.7164) ** 2 + (0.1 - 0.5238) ** 2)
    assert float(result.initial_loss) == pytest.approx(article_loss, abs=1e-4)
    assert result.history.loss.shape == (1,)  # one entry per epoch
    assert float(result.history.loss[0]) < float(result.initial_loss)
    assert int(result.diverged_epoch) == 0


def test_homework_training_matches_numpy_and_loss_falls(x64):
    """SEED-NOTES §6: online SGD over the three samples, η = 1.2, 25 epochs."""
    dataset = homework()
    x, y = dataset.x_train.astype(np.float64), dataset.y_train.astype(np.float64)
    spec = TrainSpec(WORKED, loss="half_sse", optimizer="sgd", epochs=25, batching="online")
    weights = [np.asarray(w) for w in WORKED_WEIGHTS]
    biases = [np.asarray(b) for b in WORKED_BIASES]
    result = train_network(
        spec,
        _engine_params(WORKED, weights, biases),
        1.2,
        KEY,
        Data(jnp.asarray(x), jnp.asarray(y)),
    )
    expected_w, expected_b, expected_losses = ref.train(
        weights,
        biases,
        x,
        y,
        activations=["sigmoid", "sigmoid"],
        loss="half_sse",
        optimizer=ref.Optimizer("sgd", 1.2),
        epochs=[ref.online_batches(3)] * 25,
    )
    _assert_params_match_reference(result.params, expected_w, expected_b)
    np.testing.assert_allclose(np.asarray(result.history.loss), expected_losses, rtol=1e-9)
    assert float(result.initial_loss) == pytest.approx(
        ref.evaluate_loss(weights, biases, x, y, ["sigmoid"] * 2, "half_sse"), rel=1e-12
    )
    losses = np.concatenate([[float(result.initial_loss)], np.asarray(result.history.loss)])
    assert np.all(np.diff(losses) < 0), "the loss should fall epoch by epoch"


# ---------------------------------------------------------------- batching modes vs NumPy

REFERENCE_CASES = [
    # (layer sizes, hidden, output, loss, learning rate, samples, epochs)
    ((2, 2, 2), "sigmoid", "sigmoid", "half_sse", 1.2, 3, 8),
    ((3, 4, 2), "tanh", "sigmoid", "bce", 0.5, 6, 6),
    ((2, 5, 3, 1), "relu", "linear", "mse", 0.05, 7, 6),
    ((2, 1), "sigmoid", "linear", "half_sse", 0.1, 5, 6),
]


def _problem(sizes, loss, samples, seed, *, use_bias=True):
    rng = np.random.default_rng(seed)
    weights, biases = ref.random_network(rng, sizes, use_bias=use_bias, scale=0.8)
    x = rng.normal(size=(samples, sizes[0]))
    y = rng.uniform(0.0, 1.0, size=(samples, sizes[-1]))
    if loss == "bce":
        y = np.round(y)
    return weights, biases, x, y


@pytest.mark.parametrize("batching", ["online", "full"])
@pytest.mark.parametrize("case", REFERENCE_CASES, ids=lambda case: "-".join(map(str, case[:4])))
def test_online_and_full_batch_match_numpy_trainer(case, batching, x64):
    sizes, hidden, output, loss, learning_rate, samples, epochs = case
    weights, biases, x, y = _problem(sizes, loss, samples, seed=len(sizes) * 10 + samples)
    architecture = Architecture(sizes, hidden, output)
    spec = TrainSpec(architecture, loss=loss, epochs=epochs, batching=batching)
    result = train_network(
        spec,
        _engine_params(architecture, weights, biases),
        learning_rate,
        KEY,
        Data(jnp.asarray(x), jnp.asarray(y)),
    )
    batches = ref.online_batches(samples) if batching == "online" else ref.full_batches(samples)
    expected_w, expected_b, expected_losses = ref.train(
        weights,
        biases,
        x,
        y,
        activations=ref.layer_activation_names(hidden, output, len(sizes) - 1),
        loss=loss,
        optimizer=ref.Optimizer("sgd", learning_rate),
        epochs=[batches] * epochs,
    )
    _assert_params_match_reference(result.params, expected_w, expected_b)
    np.testing.assert_allclose(np.asarray(result.history.loss), expected_losses, rtol=1e-9)
    assert int(result.diverged_epoch) == 0


def test_online_training_without_biases_matches_numpy_trainer(x64):
    weights, biases, x, y = _problem((3, 4, 1), "half_sse", 5, seed=1, use_bias=False)
    architecture = Architecture((3, 4, 1), "tanh", "sigmoid", use_bias=False)
    spec = TrainSpec(architecture, epochs=4)
    result = train_network(
        spec,
        _engine_params(architecture, weights, biases),
        0.7,
        KEY,
        Data(jnp.asarray(x), jnp.asarray(y)),
    )
    expected_w, expected_b, _ = ref.train(
        weights,
        biases,
        x,
        y,
        activations=["tanh", "sigmoid"],
        loss="half_sse",
        optimizer=ref.Optimizer("sgd", 0.7),
        epochs=[ref.online_batches(5)] * 4,
    )
    _assert_params_match_reference(result.params, expected_w, expected_b)


def _matching_orders(
    result, weights, biases, x, y, *, batch_size, epochs, activations, loss, learning_rate
):
    """Every choice of one sample order per epoch whose NumPy run gives the engine's result."""
    matches = []
    for orders in itertools.product(ref.all_orders(len(x)), repeat=epochs):
        expected_w, expected_b, _ = ref.train(
            weights,
            biases,
            x,
            y,
            activations=activations,
            loss=loss,
            optimizer=ref.Optimizer("sgd", learning_rate),
            epochs=[ref.padded_minibatches(order, batch_size) for order in orders],
        )
        reference = [*expected_w, *expected_b]
        engine = [np.asarray(layer.weights) for layer in result.params]
        engine += [np.asarray(layer.biases) for layer in result.params]
        if all(
            np.allclose(a, b, rtol=1e-9, atol=1e-12) for a, b in zip(engine, reference, strict=True)
        ):
            matches.append(orders)
    return matches


@pytest.mark.parametrize(
    "batching, batch_size", [("shuffled", 1), ("minibatch", 3), ("minibatch", 2)]
)
def test_shuffled_and_minibatch_match_numpy_trainer_for_some_order(batching, batch_size, x64):
    """Whatever order the key picks, each epoch must be exactly one pass over a permutation.

    With 4 samples and batches of 3 the last batch is padded: its filler samples must count for
    nothing (the NumPy trainer gives them weight 0).
    """
    weights, biases, x, y = _problem((2, 3, 1), "half_sse", 4, seed=5)
    architecture = Architecture((2, 3, 1), "sigmoid", "sigmoid")
    spec = TrainSpec(architecture, epochs=2, batching=batching, batch_size=batch_size)
    result = train_network(
        spec,
        _engine_params(architecture, weights, biases),
        1.5,
        jax.random.PRNGKey(3),
        Data(jnp.asarray(x), jnp.asarray(y)),
    )
    matches = _matching_orders(
        result,
        weights,
        biases,
        x,
        y,
        batch_size=batch_size,
        epochs=2,
        activations=["sigmoid", "sigmoid"],
        loss="half_sse",
        learning_rate=1.5,
    )
    assert matches, "no sample order reproduces the engine's shuffled run"


def test_padding_would_be_visible_if_it_counted(x64):
    """The padded test above can fail: giving the filler full weight changes the result."""
    weights, biases, x, y = _problem((2, 3, 1), "half_sse", 4, seed=5)
    kwargs = dict(activations=["sigmoid", "sigmoid"], loss="half_sse")
    order = (0, 1, 2, 3)
    padded = [ref.padded_minibatches(order, 3)]
    counted = [[(indices, np.ones(3)) for indices, _ in padded[0]]]
    with_mask, _, _ = ref.train(
        weights, biases, x, y, optimizer=ref.Optimizer("sgd", 1.5), epochs=padded, **kwargs
    )
    without, _, _ = ref.train(
        weights, biases, x, y, optimizer=ref.Optimizer("sgd", 1.5), epochs=counted, **kwargs
    )
    assert not np.allclose(with_mask[0], without[0])


@pytest.mark.parametrize("batch_size", [4, 10])
def test_minibatch_of_the_whole_set_equals_full_batch(batch_size, x64):
    weights, biases, x, y = _problem((2, 3, 2), "mse", 4, seed=2)
    architecture = Architecture((2, 3, 2), "tanh", "sigmoid")
    data = Data(jnp.asarray(x), jnp.asarray(y))
    params = _engine_params(architecture, weights, biases)
    full = train_network(
        TrainSpec(architecture, loss="mse", epochs=20, batching="full"), params, 0.8, KEY, data
    )
    mini = train_network(
        TrainSpec(architecture, loss="mse", epochs=20, batching="minibatch", batch_size=batch_size),
        params,
        0.8,
        jax.random.PRNGKey(9),
        data,
    )
    # The same gradient, summed in a shuffled order.
    for a, b in zip(_flat(full.params), _flat(mini.params), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(
        np.asarray(full.history.loss), np.asarray(mini.history.loss), rtol=1e-12
    )


def test_shuffled_is_deterministic_per_key_and_differs_across_keys():
    dataset = to_device_data(logic_gate("xor"))
    architecture = Architecture((2, 2, 1))
    params = init_params(KEY, architecture, "normal")
    spec = TrainSpec(architecture, epochs=5, batching="shuffled")
    first = train_network(spec, params, 0.5, jax.random.PRNGKey(1), dataset)
    again = train_network(spec, params, 0.5, jax.random.PRNGKey(1), dataset)
    _assert_same_bits(first.params, again.params)
    for other_key in (2, 3):
        other = train_network(spec, params, 0.5, jax.random.PRNGKey(other_key), dataset)
        assert not np.array_equal(_flat(first.params)[0], _flat(other.params)[0])
    # Online training keeps the data set's order, so it ignores the key.
    online = TrainSpec(architecture, epochs=5, batching="online")
    _assert_same_bits(
        train_network(online, params, 0.5, jax.random.PRNGKey(1), dataset).params,
        train_network(online, params, 0.5, jax.random.PRNGKey(2), dataset).params,
    )


# ---------------------------------------------------------------- optimizers and learning rates


@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "adam"])
def test_optimizers_match_numpy_update_rules(optimizer, x64):
    weights, biases, x, y = _problem((3, 4, 2), "half_sse", 5, seed=4)
    architecture = Architecture((3, 4, 2), "tanh", "sigmoid")
    learning_rate = 0.05 if optimizer == "adam" else 0.3
    spec = TrainSpec(
        architecture, optimizer=optimizer, momentum=0.8, beta1=0.85, beta2=0.99, epochs=5
    )
    result = train_network(
        spec,
        _engine_params(architecture, weights, biases),
        learning_rate,
        KEY,
        Data(jnp.asarray(x), jnp.asarray(y)),
    )
    reference_optimizer = ref.Optimizer(
        optimizer, learning_rate, momentum=0.8, beta1=0.85, beta2=0.99, eps=1e-8
    )
    expected_w, expected_b, expected_losses = ref.train(
        weights,
        biases,
        x,
        y,
        activations=["tanh", "sigmoid"],
        loss="half_sse",
        optimizer=reference_optimizer,
        epochs=[ref.online_batches(5)] * 5,
    )
    _assert_params_match_reference(result.params, expected_w, expected_b, rtol=1e-8)
    np.testing.assert_allclose(np.asarray(result.history.loss), expected_losses, rtol=1e-8)


# The optimizers without a NumPy reference above, at rates that train the homework set well
# within 200 epochs.
WORKING_RATES = {"nesterov": 0.5, "rmsprop": 0.05, "adagrad": 1.2}


@pytest.mark.parametrize("optimizer", sorted(WORKING_RATES))
def test_other_optimizers_train_homework(optimizer):
    architecture = Architecture((2, 2, 2))
    spec = TrainSpec(architecture, optimizer=optimizer, epochs=200)
    params = params_from_lists(architecture, WORKED_WEIGHTS, WORKED_BIASES)
    result = train_network(spec, params, WORKING_RATES[optimizer], KEY, to_device_data(homework()))
    assert int(result.diverged_epoch) == 0
    assert float(result.history.loss[-1]) < 0.6 * float(result.initial_loss)


def test_learning_rate_is_traced_and_vmaps():
    dataset = to_device_data(homework())
    params = params_from_lists(WORKED, WORKED_WEIGHTS, WORKED_BIASES)
    spec = TrainSpec(WORKED, epochs=25)
    train = make_train(spec)

    traces = []

    def counted(params, learning_rate, key, data):
        traces.append(learning_rate)
        return train(params, learning_rate, key, data)

    jitted = jax.jit(counted)
    jitted(params, 0.1, KEY, dataset)
    jitted(params, 1.2, KEY, dataset)
    assert len(traces) == 1, "a new learning rate must not recompile"

    learning_rates = jnp.asarray([0.1, 0.5, 1.2, 3.0])
    swept = jax.jit(jax.vmap(train, in_axes=(None, 0, None, None)))(
        params, learning_rates, KEY, dataset
    )
    assert swept.history.loss.shape == (4, 25)
    for index, learning_rate in enumerate([0.1, 0.5, 1.2, 3.0]):
        single = train_network(spec, params, learning_rate, KEY, dataset)
        for a, b in zip(_flat(single.params), _flat(swept.params), strict=True):
            np.testing.assert_allclose(b[index], a, rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(
            np.asarray(swept.history.loss[index]), np.asarray(single.history.loss), rtol=1e-6
        )
    # A larger rate learns faster here, so the sweep really used different rates.
    final = np.asarray(swept.history.loss[:, -1])
    assert np.all(np.diff(final) < 0)


# ---------------------------------------------------------------- what the article predicts


def test_sigmoid_mlp_learns_xor():
    """A 2-2-1 sigmoid network learns XOR: seed 0, normal(σ = 1) init, η = 2.0, 5000 online epochs."""
    architecture = Architecture((2, 2, 1), "sigmoid", "sigmoid")
    params = init_params(jax.random.PRNGKey(0), architecture, "normal", 1.0)
    spec = TrainSpec(architecture, loss="half_sse", optimizer="sgd", epochs=5000, batching="online")
    dataset = logic_gate("xor")
    result = train_network(spec, params, 2.0, jax.random.PRNGKey(0), to_device_data(dataset))
    assert float(result.history.loss[-1]) < 0.01
    assert float(result.history.accuracy[-1]) == 1.0
    predictions = np.asarray(
        forward(result.params, jnp.asarray(dataset.x_train), layer_activations(architecture))
    )
    np.testing.assert_array_equal(np.round(predictions), dataset.y_train)


PERCEPTRON = Architecture((2, 1), output_activation="threshold", theta=0.0)
PERCEPTRON_SPEC = TrainSpec(PERCEPTRON, method="perceptron", epochs=20, batching="online")


@pytest.mark.parametrize("gate", ["and", "or", "nand"])
def test_perceptron_rule_learns_linearly_separable_gates(gate, x64):
    dataset = logic_gate(gate)
    x, y = dataset.x_train.astype(np.float64), dataset.y_train.astype(np.float64)
    rng = np.random.default_rng(len(gate))
    weights, bias = rng.normal(size=(1, 2)), rng.normal(size=1)
    params = params_from_lists(PERCEPTRON, [weights.tolist()], [bias.tolist()], dtype=jnp.float64)
    result = train_network(PERCEPTRON_SPEC, params, 0.5, KEY, Data(jnp.asarray(x), jnp.asarray(y)))
    assert float(result.history.accuracy[-1]) == 1.0
    expected_w, expected_b, expected_accuracy = ref.perceptron(
        weights, bias, x, y, learning_rate=0.5, epochs=20
    )
    np.testing.assert_allclose(np.asarray(result.params[0].weights), expected_w, rtol=1e-12)
    np.testing.assert_allclose(np.asarray(result.params[0].biases), expected_b, rtol=1e-12)
    np.testing.assert_array_equal(np.asarray(result.history.accuracy), expected_accuracy)


def test_perceptron_never_learns_xor():
    """One line cannot separate XOR: over 64 seeds and 4 rates, no epoch reaches accuracy 1."""
    dataset = to_device_data(logic_gate("xor"))
    spec = PERCEPTRON_SPEC._replace(epochs=100)
    keys = jax.random.split(jax.random.PRNGKey(42), 64)
    stacked = jax.vmap(lambda k: init_params(k, PERCEPTRON, "normal", 1.0))(keys)
    learning_rates = jnp.asarray([0.01, 0.1, 1.0, 10.0])
    over_rates = jax.vmap(make_train(spec), in_axes=(None, 0, None, None))
    over_seeds = jax.vmap(over_rates, in_axes=(0, None, 0, None))
    program = jax.jit(over_seeds)
    result = program(stacked, learning_rates, keys, dataset)
    accuracy = np.asarray(result.history.accuracy)
    assert accuracy.shape == (64, 4, 100)
    assert np.all(np.isfinite(accuracy))
    assert accuracy.max() <= 0.75
    # The same program does learn AND (at the rates that are not too small for 100 epochs from
    # this init), so XOR's failure is the data, not the setup.
    learned = program(stacked, learning_rates, keys, to_device_data(logic_gate("and")))
    assert np.all(np.asarray(learned.history.accuracy)[:, 1:, -1] == 1.0)


def test_backprop_cannot_train_threshold_units_but_ste_can():
    architecture = Architecture((2, 3, 1), "threshold", "sigmoid")
    params = init_params(jax.random.PRNGKey(1), architecture, "normal", 1.0)
    dataset = to_device_data(logic_gate("xor"))
    plain = train_network(
        TrainSpec(architecture, method="backprop", epochs=20), params, 1.0, KEY, dataset
    )
    _assert_same_bits(plain.params[0], params[0])  # zero gradient: the hidden layer never moves
    assert not np.array_equal(np.asarray(plain.params[1].weights), np.asarray(params[1].weights))
    ste = train_network(TrainSpec(architecture, method="ste", epochs=20), params, 1.0, KEY, dataset)
    assert not np.array_equal(np.asarray(ste.params[0].weights), np.asarray(params[0].weights))


# ---------------------------------------------------------------- reproducibility


def _determinism_setup():
    architecture = Architecture((2, 4, 1), "tanh", "sigmoid")
    spec = TrainSpec(architecture, optimizer="momentum", epochs=200, batching="shuffled")
    dataset = to_device_data(logic_gate("xor"))
    params = init_params(jax.random.PRNGKey(7), architecture, "glorot_normal")
    return spec, params, dataset


def test_same_spec_and_seed_give_identical_bits():
    spec, params, dataset = _determinism_setup()
    # make_train is cached; __wrapped__ builds a fresh function, so this jit compiles anew.
    first = jax.jit(make_train.__wrapped__(single_network_spec(spec)))(
        params, 0.05, jax.random.PRNGKey(7), dataset
    )
    second = train_network(spec, params, 0.05, jax.random.PRNGKey(7), dataset)
    _assert_same_bits(first.params, second.params)
    _assert_same_bits(first.history, second.history)


_SUBPROCESS_RUN = textwrap.dedent(
    """
    import jax, numpy as np
    from backprop_lab.core.data import logic_gate
    from backprop_lab.core.model import Architecture, init_params
    from backprop_lab.core.train import TrainSpec, to_device_data, train_network
    architecture = Architecture((2, 4, 1), "tanh", "sigmoid")
    spec = TrainSpec(architecture, optimizer="momentum", epochs=200, batching="shuffled")
    params = init_params(jax.random.PRNGKey(7), architecture, "glorot_normal")
    result = train_network(spec, params, 0.05, jax.random.PRNGKey(7), to_device_data(logic_gate("xor")))
    print(np.concatenate([np.ravel(leaf) for leaf in jax.tree_util.tree_leaves(result.params)]).tobytes().hex())
    """
)


@pytest.mark.slow
def test_same_spec_and_seed_give_identical_bits_across_processes():
    outputs = [
        subprocess.run(
            [sys.executable, "-c", _SUBPROCESS_RUN], capture_output=True, text=True, check=True
        ).stdout
        for _ in range(2)
    ]
    spec, params, dataset = _determinism_setup()
    here = train_network(spec, params, 0.05, jax.random.PRNGKey(7), dataset)
    in_process = np.concatenate([leaf.ravel() for leaf in _flat(here.params)]).tobytes().hex()
    assert outputs[0].strip() == outputs[1].strip() == in_process


# ---------------------------------------------------------------- history and divergence


def test_history_reports_each_epoch_and_the_test_split():
    """Long runs reduce metrics inside the loop; short runs after it. Both must agree."""
    # 20 training and 80 test points: 2700 epochs store more predictions than the engine keeps
    # (2^18), so the long run takes the in-loop path, with few updates.
    dataset = playground("moons", num_samples=100, noise=0.1, test_fraction=0.8, seed=0)
    data = to_device_data(dataset)
    architecture = Architecture((2, 4, 1), "tanh", "sigmoid")
    params = init_params(jax.random.PRNGKey(0), architecture, "glorot_uniform")
    long_run = train_network(
        TrainSpec(architecture, loss="bce", epochs=2700), params, 0.1, KEY, data
    )
    short_run = train_network(
        TrainSpec(architecture, loss="bce", epochs=10), params, 0.1, KEY, data
    )
    assert long_run.history.loss.shape == long_run.history.test_accuracy.shape == (2700,)
    for long_metric, short_metric in zip(long_run.history, short_run.history, strict=True):
        np.testing.assert_allclose(
            np.asarray(long_metric[:10]), np.asarray(short_metric), rtol=1e-5
        )

    weights = [np.asarray(layer.weights, np.float64) for layer in long_run.params]
    biases = [np.asarray(layer.biases, np.float64) for layer in long_run.params]
    names = ["tanh", "sigmoid"]
    x_test, y_test = dataset.x_test.astype(np.float64), dataset.y_test.astype(np.float64)
    expected_test_loss = ref.evaluate_loss(weights, biases, x_test, y_test, names, "bce")
    assert float(long_run.history.test_loss[-1]) == pytest.approx(expected_test_loss, rel=1e-4)
    _, layer_outputs = ref.forward(weights, biases, x_test, names)
    expected_accuracy = np.mean(np.abs(y_test - layer_outputs[-1]) < 0.5)
    assert float(long_run.history.test_accuracy[-1]) == pytest.approx(expected_accuracy)
    assert float(long_run.history.accuracy[-1]) > 0.8  # moons with a hidden layer of 4

    without_test = train_network(
        TrainSpec(architecture, epochs=3), params, 0.1, KEY, to_device_data(logic_gate("xor"))
    )
    assert np.all(np.isnan(np.asarray(without_test.history.test_loss)))


def test_too_large_a_learning_rate_diverges_at_the_predicted_rate():
    """Full-batch gradient descent on a linear unit: the error grows by (1 − ηλ)² per epoch.

    λ is the largest eigenvalue of the loss's Hessian, ``mean(x̃ x̃ᵀ)`` with ``x̃ = (x, 1)``; a rate
    above 2/λ overshoots more each epoch (SEED-NOTES §3, the learning-rate figure).
    """
    architecture = Architecture((1, 1), "linear", "linear")
    params = params_from_lists(architecture, [[[0.0]]], [[0.0]])
    data = Data(jnp.asarray([[1.0], [2.0]]), jnp.asarray([[1.0], [2.0]]))
    augmented = np.array([[1.0, 1.0], [2.0, 1.0]])
    largest = np.linalg.eigvalsh(augmented.T @ augmented / 2).max()
    spec = TrainSpec(architecture, loss="half_sse", epochs=60, batching="full")

    good = train_network(spec, params, 1.0 / largest, KEY, data)
    assert int(good.diverged_epoch) == 0 and float(good.history.loss[-1]) < 1e-3

    learning_rate = 3.0
    bad = train_network(spec, params, learning_rate, KEY, data)
    diverged = int(bad.diverged_epoch)
    assert diverged in range(2, 60), diverged  # diverged, and not at the very first epoch
    loss = np.asarray(bad.history.loss)
    assert np.all(np.isfinite(loss[: diverged - 1])) and np.all(np.isnan(loss[diverged - 1 :]))
    assert np.all(np.isnan(np.asarray(bad.history.accuracy)[diverged - 1 :]))
    growth = loss[5 : diverged - 2] / loss[4 : diverged - 3]
    np.testing.assert_allclose(growth, (1 - learning_rate * largest) ** 2, rtol=1e-3)
    assert not np.all(np.isfinite(np.asarray(bad.params[0].weights)))


def test_huge_learning_rate_with_relu_and_linear_output_is_flagged():
    architecture = Architecture((2, 3, 1), "relu", "linear")
    rng = np.random.default_rng(0)
    data = Data(
        jnp.asarray(rng.normal(size=(8, 2)), jnp.float32),
        jnp.asarray(rng.normal(size=(8, 1)), jnp.float32),
    )
    params = init_params(jax.random.PRNGKey(0), architecture, "normal", 1.0)
    result = train_network(TrainSpec(architecture, epochs=10), params, 1e6, KEY, data)
    assert int(result.diverged_epoch) >= 1
    assert np.all(np.isnan(np.asarray(result.history.loss)[int(result.diverged_epoch) - 1 :]))
    assert np.isfinite(float(result.initial_loss))


# ---------------------------------------------------------------- bad specs


@pytest.mark.parametrize(
    "spec, message",
    [
        (
            TrainSpec(Architecture((2, 0, 1))),
            r"layer size 0 at position 1 of \[2, 0, 1\] is invalid",
        ),
        (
            TrainSpec(Architecture((2, 2, 1), "sigmod")),
            r"model.hidden_activation='sigmod' is invalid: choose one of",
        ),
        (TrainSpec(Architecture((2, 1)), loss="hinge"), r"loss='hinge' is invalid: choose one of"),
        (
            TrainSpec(Architecture((2, 1)), optimizer="lbfgs"),
            r"optimizer='lbfgs' is invalid: choose one of sgd",
        ),
        (
            TrainSpec(Architecture((2, 1)), epochs=0),
            r"training.epochs=0 is invalid: must be at least 1",
        ),
        (
            TrainSpec(Architecture((2, 1)), batching="random"),
            r"training.batching='random' is invalid: choose one of",
        ),
        (
            TrainSpec(Architecture((2, 1)), batch_size=0),
            r"training.batch_size=0 is invalid: must be at least 1",
        ),
        (
            TrainSpec(Architecture((2, 1)), method="hebb"),
            r"training.method='hebb' is invalid: choose one of",
        ),
        (
            TrainSpec(Architecture((2, 2, 1), "threshold", "threshold"), method="perceptron"),
            r"perceptron trains a single layer of threshold units",
        ),
        (
            TrainSpec(Architecture((2, 1), output_activation="sigmoid"), method="perceptron"),
            r"model.output_activation=threshold",
        ),
    ],
)
def test_bad_specs_fail_before_training(spec, message):
    with pytest.raises(BackpropLabError, match=message):
        make_train(spec)
