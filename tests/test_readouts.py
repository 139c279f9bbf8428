"""air.readouts: the tasks' definitions and the readouts' pieces against plain numpy."""
import autograd
import numpy as np
import pytest
from autograd.test_util import check_grads

import air
from air import readouts
from air.data import Scenes
from air.nn import mlp


def scenes_of(labels, boxes):
    labels, boxes = np.asarray(labels), np.asarray(boxes, dtype=float)
    counts = (labels >= 0).sum(axis=1)
    return Scenes(images=np.zeros((len(labels), 8, 8), np.float32), counts=counts, boxes=boxes, labels=labels)


def test_the_tasks_targets_follow_their_definitions():
    far, left, right = [np.nan] * 4, [0, 0, 4, 4], [10, 0, 14, 4]
    sums = scenes_of([[3, 4], [7, -1], [-1, -1]], [[left, right], [left, far], [far, far]])
    assert readouts.task_targets("sum", sums)[0].tolist() == [7, 7, 0]
    assert readouts.task_targets("sum", sums)[1] == 19
    # Left and right by the boxes' centres, whatever order the scene lists its digits in; a tie is not ascending.
    pairs = scenes_of([[2, 5], [2, 5], [5, 5]], [[left, right], [right, left], [left, right]])
    assert readouts.task_targets("order", pairs) == (pytest.approx([1, 0, 0]), 2)
    assert readouts.task_targets("digit", scenes_of([[6, -1]], [[left, far]]))[0].tolist() == [6]
    assert readouts.task_targets("sum2", pairs) == (pytest.approx([7, 7, 10]), 19)  # the paper's: two digits
    with pytest.raises(ValueError, match="sum2 task needs two-digit"):
        readouts.task_targets("sum2", sums)
    with pytest.raises(ValueError, match="two-digit"):
        readouts.task_targets("order", sums)
    with pytest.raises(ValueError, match="one-digit"):
        readouts.task_targets("digit", pairs)


def test_sum_matrix_convolves_two_distributions():
    rng = np.random.default_rng(0)
    p, q = rng.dirichlet(np.ones(10)), rng.dirichlet(np.ones(7))
    np.testing.assert_allclose(np.outer(p, q).reshape(-1) @ readouts.sum_matrix(10, 7), np.convolve(p, q), atol=1e-7)


def features(rng, n, t, d, present):
    """AIR-like features of n scenes: count one-hot, then t slots of (flag, z_where, z_what)."""
    slots = rng.standard_normal((n, t, 1 + 3 + d)).astype(np.float32)
    slots[..., 0] = present
    slots *= slots[..., :1]
    count = np.eye(t + 1, dtype=np.float32)[np.asarray(present).sum(axis=1).astype(int)]
    return np.concatenate([count, slots.reshape(n, -1)], axis=1)


def test_the_object_readout_gives_each_task_a_distribution_from_the_slots():
    rng = np.random.default_rng(1)
    present = np.array([[1, 1, 0], [1, 0, 0], [0, 0, 0]], np.float32)
    x = features(rng, 3, 3, 5, present)
    params = readouts.init_classifier(rng, "objects", "sum", 3 + 5, 10)
    slots = x[:, 4:].reshape(3, 3, -1)
    z = mlp(params["digit"], slots[..., 1:])
    p = np.exp(z - z.max(axis=2, keepdims=True))
    p /= p.sum(axis=2, keepdims=True)
    sums = np.exp(readouts.object_log_probs(params, x, "sum", 3))
    assert sums.shape == (3, 28)  # three slots sum to 0..27
    np.testing.assert_allclose(sums[0, :19], np.convolve(p[0, 0], p[0, 1]), atol=1e-5)  # two present slots
    np.testing.assert_allclose(sums[:, 19:], 0, atol=1e-5)
    np.testing.assert_allclose(sums[1, :10], p[1, 0], atol=1e-5)  # absent slots add the digit 0
    assert sums[2, 0] == pytest.approx(1.0, abs=1e-5)  # an empty scene sums to 0
    order = np.exp(readouts.object_log_probs(params, x, "order", 3))
    ascending = sum(p[:, 0, a] * p[:, 1, b] for a in range(10) for b in range(a + 1, 10))
    np.testing.assert_allclose(order[:, 1], ascending, atol=1e-5)
    np.testing.assert_allclose(order.sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(np.exp(readouts.object_log_probs(params, x, "digit", 3)), p[:, 0], atol=1e-5)


def test_decoded_features_hold_each_slots_decoded_window_in_the_object_order():
    out = {"z_pres": np.array([[1, 1, 0]]), "z_where": np.array([[[-1, 0.5, 0], [-1, -0.5, 0], [-1, -0.9, 0]]]),
           "windows": np.arange(3 * 2 * 2, dtype=np.float32).reshape(1, 3, 2, 2) + 1}
    slots = readouts.decoded_features(out).reshape(3, 5)
    np.testing.assert_array_equal(slots[0], [1, 5, 6, 7, 8])  # step 1 is left of step 0
    np.testing.assert_array_equal(slots[1], [1, 1, 2, 3, 4])
    np.testing.assert_array_equal(slots[2], 0)  # absent: no flag, no window


def test_the_decoded_readout_combines_a_shared_cnns_digit_distributions_by_the_tasks_rule():
    """decoded_log_probs is slot_log_probs of one CNN's digit logits, slot by slot; its gradient checks out."""
    rng = np.random.default_rng(6)
    flags = np.array([[1, 1, 0], [1, 0, 0]], np.float64)
    windows = rng.uniform(size=(2, 3, 8, 8)) * flags[..., None, None]
    x = np.concatenate([flags[..., None], windows.reshape(2, 3, -1)], axis=2).reshape(2, -1)
    params = readouts.init_classifier(rng, "decoded", "sum2", None, 19, 8, hidden=16)
    params = autograd.builtins.dict({k: [{n: v.astype(np.float64) for n, v in layer.items()} for layer in layers]
                                     for k, layers in params.items()})
    stats = [(np.zeros(c), np.ones(c)) for c in readouts.CHANNELS]
    logits = mlp(params["mlp"], readouts.cnn_features(params, windows.reshape(6, 8, 8), "digit", stats))
    expected = readouts.slot_log_probs(logits.reshape(2, 3, 10), flags[..., None], "sum2")
    np.testing.assert_allclose(readouts.decoded_log_probs(params, x, "sum2", 3, stats), expected, rtol=1e-10)
    check_grads(lambda p: readouts.cross_entropy(p, x, np.array([7, 3]), "decoded", "sum2", 3), modes=["rev"],
                order=1)(params)


def test_max_pool2_takes_each_2x2_blocks_maximum_and_pads_an_odd_edge_with_zeros():
    x = np.random.default_rng(2).standard_normal((2, 5, 6, 3))
    padded = np.concatenate([x, np.zeros((2, 1, 6, 3))], axis=1)
    expected = padded.reshape(2, 3, 2, 3, 2, 3).max(axis=(2, 4))
    np.testing.assert_allclose(readouts.max_pool2(x), expected, atol=1e-12)


def test_batch_norm_standardises_each_channel_and_records_the_batchs_statistics():
    rng = np.random.default_rng(5)
    h = rng.normal(3.0, 2.0, (4, 5, 5, 2))
    block = {"gamma": np.array([1.0, 2.0]), "beta": np.array([0.0, -1.0])}
    record = []
    out = readouts.batch_norm(block, h, record=record)
    np.testing.assert_allclose(out.mean(axis=(0, 1, 2)), [0.0, -1.0], atol=1e-9)
    np.testing.assert_allclose(out.std(axis=(0, 1, 2)), [1.0, 2.0], rtol=1e-5)
    (mean, var), = record
    np.testing.assert_allclose(mean, h.mean(axis=(0, 1, 2)), rtol=1e-12)
    np.testing.assert_allclose(var, h.var(axis=(0, 1, 2)), rtol=1e-12)
    # Given statistics are used as they are: the running averages when a trained CNN scores.
    np.testing.assert_allclose(readouts.batch_norm(block, h, stats=(mean, var)), out, rtol=1e-12, atol=1e-12)


def test_air_features_put_present_steps_left_to_right_and_absent_ones_last(monkeypatch):
    z_where = np.array([[[-1, 0.5, 0], [-1, -0.5, 0], [-1, -0.9, 0]]], np.float32)  # step 2 absent, leftmost
    out = {"z_pres": np.array([[1, 1, 0]]), "count": np.array([2]), "z_where": z_where,
           "z_what": np.arange(3 * 2, dtype=np.float32).reshape(1, 3, 2)}
    post = {"where_logsd": np.log([[[0.1, 0.2, 0.3], [0.4, 0.5, 0.6], [1, 1, 1]]]),
            "what_logvar": 2 * np.log([[[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]])}
    monkeypatch.setattr(readouts, "infer", lambda params, config, images, batch_size: out)
    monkeypatch.setattr(readouts, "guide", lambda params, config, images: post)
    config = air.preset("paper")
    x, spread = readouts.air_features(None, config, np.zeros((1, 50, 50), np.float32))
    count, slots = x[0, :4], x[0, 4:].reshape(3, 6)
    assert count.tolist() == [0, 0, 1, 0]
    np.testing.assert_array_equal(slots[0], [1, -1, -0.5, 0, 2, 3])  # step 1 is left of step 0
    np.testing.assert_array_equal(slots[1], [1, -1, 0.5, 0, 0, 1])
    np.testing.assert_array_equal(slots[2], 0)
    # The posterior's standard deviations sit beside the means they belong to; none for counts, flags, absences.
    np.testing.assert_array_equal(spread[0, :4], 0)
    np.testing.assert_allclose(spread[0, 4:].reshape(3, 6), [[0, 0.4, 0.5, 0.6, 3, 4], [0, 0.1, 0.2, 0.3, 1, 2],
                                                            [0] * 6], rtol=1e-6)
    # A slot may give z_what alone, or z_what's posterior standard deviation beside it (read, never drawn).
    x, spread = readouts.air_features(None, config, np.zeros((1, 50, 50), np.float32), reads=("what",))
    np.testing.assert_array_equal(x[0, 4:].reshape(3, 3), [[1, 2, 3], [1, 0, 1], [0, 0, 0]])
    np.testing.assert_allclose(spread[0, 4:].reshape(3, 3), [[0, 3, 4], [0, 1, 2], [0] * 3], rtol=1e-6)
    x, spread = readouts.air_features(None, config, np.zeros((1, 50, 50), np.float32), reads=("what_sd", "what"))
    np.testing.assert_allclose(x[0, 4:].reshape(3, 5), [[1, 2, 3, 3, 4], [1, 0, 1, 1, 2], [0] * 5], rtol=1e-6)
    np.testing.assert_allclose(spread[0, 4:].reshape(3, 5), [[0, 3, 4, 0, 0], [0, 1, 2, 0, 0], [0] * 5], rtol=1e-6)
    with pytest.raises(ValueError, match="reads: expected some of where, what, what_sd, got size"):
        readouts.air_features(None, config, np.zeros((1, 50, 50), np.float32), reads=("size",))


@pytest.mark.parametrize("readout", ["air", "cnn"])
def test_a_readout_learns_a_problem_it_can_solve(readout):
    """Images whose class is which half holds a bright square: both the MLP and the CNN reach it in 150 steps."""
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 200)
    images = rng.uniform(0, 0.2, (200, 12, 12)).astype(np.float32)
    for i, label in enumerate(y):
        row = rng.integers(0, 8)
        images[i, row:row + 4, 1 + 6 * label:5 + 6 * label] += 0.8
    x = images.reshape(200, -1) if readout == "air" else images
    model = readouts.fit("mlp" if readout == "air" else "cnn", "order", x[:150], y[:150], 2, 0, 150, 3)
    assert readouts.accuracy(model, x[150:], y[150:]) >= 0.95
    assert 1 <= model.steps <= 150


def test_the_readouts_gradient_matches_finite_differences():
    rng = np.random.default_rng(4)
    x = rng.uniform(size=(3, 8, 8))
    for task, y in (("sum", [0, 2, 1]), ("order", [0, 1, 1])):
        params = readouts.init_classifier(rng, "cnn", task, None, 3, 8)
        params = autograd.builtins.dict({k: [{n: v.astype(np.float64) for n, v in layer.items()} for layer in layers]
                                         for k, layers in params.items()})
        check_grads(lambda p: readouts.cross_entropy(p, x, np.array(y), "cnn", task, 3), modes=["rev"], order=1)(params)


def test_early_stopping_keeps_the_step_that_scored_best_on_the_held_out_tenth(monkeypatch):
    """A classifier whose held-out accuracy peaks at one check keeps that check's parameters."""
    x, y = np.zeros((50, 4), np.float32), np.zeros(50, np.int64)
    scored = iter([0.2, 0.9, 0.5] + [0.1] * 30)
    checks = []
    monkeypatch.setattr(readouts, "held_out_score",
                        lambda model, xv, yv: checks.append(model.steps) or (next(scored), 0.0))
    model = readouts.fit("mlp", "digit", x, y, 10, 0, 100, 3)
    assert model.steps == 10  # checks every 100 // 20 = 5 steps: the second check scored 0.9
    assert checks == [5, 10, 15, 20, 25, 30, 35]  # and five checks without a gain end training
    assert readouts.held_out(19) == 0 and readouts.held_out(20) == 2 and readouts.held_out(1000) == 100


def test_fit_trains_on_draws_around_the_inputs_when_given_their_spread():
    """Two classes at x = -1 and +1: read from the means they separate; drawn with a spread of 100 they are noise."""
    y = np.arange(200) % 2
    x = (2.0 * y - 1.0)[:, None].astype(np.float32)
    sharp = readouts.fit("mlp", "order", x, y, 2, 0, 100, 3)
    blurred = readouts.fit("mlp", "order", x, y, 2, 0, 100, 3, spread=np.full_like(x, 100.0))
    assert readouts.accuracy(sharp, x, y) == 1.0
    assert readouts.accuracy(blurred, x, y) < 0.9


def test_n_steps_is_passes_clipped_to_at_least_100_and_at_most_max():
    assert readouts.n_steps(10, 20, 2000) == 100
    assert readouts.n_steps(1000, 20, 2000) == 20 * 1000 // 64
    assert readouts.n_steps(10000, 20, 2000) == 2000
