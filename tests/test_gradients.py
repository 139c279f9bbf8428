"""The gradient of air.loss: equal to a hand-derived backward pass, to autograd's own finite-difference check,
and to central finite differences leaf by leaf. Float64, at a point away from every kink of the loss."""
import dataclasses

import autograd
import numpy as np
import pytest
from autograd.test_util import check_grads

import air
from air.tree import leaves
from air.schedules import fixed
from tests import hand_gradient

BATCH = 4
KINK_MARGIN = 1e-4  # no ReLU pre-activation, tent-kernel source coordinate or clip bound closer than this


# --- the test problem ----------------------------------------------------------------------------------------------


def float64_config():
    return dataclasses.replace(air.preset("seed"), dtype="float64")


def blob_scenes(rng, n, size):
    """n scenes of 0-2 soft blobs with a grainy texture, values in [0, 1]: digit-like ink on a dark canvas."""
    rows, cols = np.mgrid[0:size, 0:size]
    scenes = np.zeros((n, size, size))
    for i in range(n):
        for _ in range(rng.integers(0, 3)):
            cy, cx = rng.uniform(4, size - 4, 2)
            sy, sx = rng.uniform(1.5, 4.0, 2)
            scenes[i] += np.exp(-0.5 * (((rows - cy) / sy) ** 2 + ((cols - cx) / sx) ** 2))
    scenes *= rng.uniform(0.6, 1.0, scenes.shape)
    return np.clip(scenes, 0.0, 1.0)


def spread_params(rng, config, images, noise):
    """air.init_params moved to a generic point for these images: windows of varied scale and position (some
    partly off the canvas), and log-scales and log-variances on both sides of their clip bounds, so every
    branch of the backward pass carries gradient (or is masked) somewhere."""
    params = air.init_params(rng, config)
    t, d = config.max_steps, config.what_dim
    # Views of the heads layer per step: columns 1:4 are z_where, 4 + d: the z_what log-variance.
    head_w = params["heads"]["w"].reshape(-1, t, 4 + 2 * d)
    head_b = params["heads"]["b"].reshape(t, 4 + 2 * d)
    for columns in (slice(1, 4), slice(4 + d, None)):
        head_w[..., columns] = 0.05 * rng.standard_normal(head_w[..., columns].shape)
    head_b[:, 1:4] = np.array([-0.6, 0.0, 0.0]) + rng.uniform(-0.5, 0.5, (t, 3))
    params["decoder"][-1]["b"][:] = rng.normal(-1.0, 1.0, params["decoder"][-1]["b"].shape)
    # Centre the batch's last-step log s on the upper clip bound and two log-variances per step on the bounds
    # of what_logvar_range (half the batch clipped, half not); one more log-variance is always clipped.
    _, cache = hand_gradient.forward(params, images, noise, config, 1.0)
    where_b = head_b[:, 1:4]
    where_b[-1, 0] += config.log_scale_range[1] - np.median(cache["log_scale_raw"][:, -1])
    logvar_b = head_b[:, 4 + d:]
    low, high = config.what_logvar_range
    logvar_b[:, 0] += high - np.median(cache["logvar_raw"][:, :, 0], axis=0)
    logvar_b[:, 1] += low - np.median(cache["logvar_raw"][:, :, 1], axis=0)
    logvar_b[:, 2] = low - 3.0
    return params


def make_problem(seed):
    config = float64_config()
    rng = np.random.default_rng(seed)
    images = blob_scenes(rng, BATCH, config.canvas_size)
    noise = air.sample_noise(rng, config, BATCH)
    params = spread_params(rng, config, images, noise)
    return config, params, images, noise


@pytest.fixture(scope="module")
def problem():
    """The first seeded problem whose forward pass keeps KINK_MARGIN from every kink of the loss."""
    for seed in range(40):
        config, params, images, noise = make_problem(seed)
        _, cache = hand_gradient.forward(params, images, noise, config, 1.0)
        if min(hand_gradient.kink_distances(cache).values()) > KINK_MARGIN:
            return config, params, images, noise
    pytest.fail(f"no seed in 0..39 gives a problem at least {KINK_MARGIN} from every kink")


def replace_leaf(tree, path, value):
    """A copy of the tree's containers with the leaf at `path` replaced (the other arrays shared)."""
    head, _, rest = path.partition("/")
    key = int(head) if isinstance(tree, list) else head
    new = list(tree) if isinstance(tree, list) else dict(tree)
    new[key] = value if not rest else replace_leaf(tree[key], rest, value)
    return new


def relative_errors(tree, reference):
    """{path: max |tree - reference| / max |reference|} per leaf (the plain max |tree| where reference is 0)."""
    ref = dict(leaves(reference))
    return {path: float(np.max(np.abs(value - ref[path])) / (np.max(np.abs(ref[path])) or 1.0))
            for path, value in leaves(tree)}


LEAF_PATHS = [path for path, _ in leaves(air.init_params(np.random.default_rng(0), float64_config()))]


# --- the problem is what it claims to be ---------------------------------------------------------------------------


def test_problem_exercises_every_branch(problem):
    config, params, images, noise = problem
    _, cache = hand_gradient.forward(params, images, noise, config, 1.0)
    log_scale, logvar = cache["log_scale_raw"], cache["logvar_raw"]
    assert np.any(log_scale > config.log_scale_range[1]) and np.any(log_scale < config.log_scale_range[1])
    assert np.any(logvar > config.what_logvar_range[1]) and np.any(logvar < config.what_logvar_range[0])
    # Some windows smaller than the canvas hang over its edge: they cover [t - s, t + s], the canvas [-1, 1].
    s = np.exp(cache["log_scale"])
    reach = np.max(np.abs(cache["shift"]), axis=-1) + s
    assert np.any((reach > 1.0) & (s < 1.0)) and np.any(reach < 1.0)
    # Every ReLU layer has active and inactive units.
    for pre in cache["encoder_pre"] + cache["decoder_pre"][:-1]:
        assert np.any(pre > 0) and np.any(pre < 0)
    assert images.dtype == np.float64 and all(leaf.dtype == np.float64 for _, leaf in leaves(params))
    distances = hand_gradient.kink_distances(cache)
    assert all(distance > KINK_MARGIN for distance in distances.values()), distances


# --- (a) the hand-derived gradient ---------------------------------------------------------------------------------


@pytest.mark.parametrize("temperature, kl_scale", [(1.0, 1.0), (0.37, 0.5)])
def test_hand_gradient_equals_autograd(problem, temperature, kl_scale):
    config, params, images, noise = problem
    loss, cache = hand_gradient.forward(params, images, noise, config, temperature, kl_scale)
    distances = hand_gradient.kink_distances(cache)
    assert all(distance > KINK_MARGIN for distance in distances.values()), distances

    terms = air.elbo_terms(params, images, noise, config, fixed(config, temperature))
    for name, value in terms.items():
        assert cache["terms"][name] == pytest.approx(value, rel=1e-12, abs=0), name
    expected = air.loss(params, images, noise, config, fixed(config, temperature, kl_scale))
    assert loss == pytest.approx(expected, rel=1e-12, abs=0)

    grads = hand_gradient.backward(cache)
    auto = autograd.grad(air.loss)(params, images, noise, config, fixed(config, temperature, kl_scale))
    assert [path for path, _ in leaves(grads)] == [path for path, _ in leaves(auto)]
    errors = relative_errors(grads, auto)
    assert max(errors.values()) <= 1e-8, {path: e for path, e in errors.items() if e > 1e-8}
    # Every leaf receives gradient (a zero reference would make the relative error meaningless).
    assert all(np.max(np.abs(leaf)) > 0 for _, leaf in leaves(auto))


def test_hand_gradient_keeps_float32(problem):
    config, params, images, noise = problem
    config32 = dataclasses.replace(config, dtype="float32")
    cast = lambda tree: {k: cast(v) for k, v in tree.items()} if isinstance(tree, dict) else (
        [cast(v) for v in tree] if isinstance(tree, list) else np.asarray(tree, np.float32))
    loss32, grads32 = hand_gradient.loss_and_grad(cast(params), cast(images), cast(noise), config32, 0.37, 0.5)
    loss64, grads64 = hand_gradient.loss_and_grad(params, images, noise, config, 0.37, 0.5)
    assert loss32.dtype == np.float32
    assert all(leaf.dtype == np.float32 for _, leaf in leaves(grads32))
    assert loss32 == pytest.approx(loss64, rel=1e-5)
    errors = relative_errors(grads32, grads64)
    assert max(errors.values()) <= 1e-3, errors


def test_gate_backward_survives_vanishing_presence(problem):
    """A first z_pres that underflows to exactly zero: the cumulative-product backward must not divide by it."""
    config, params, images, noise = problem
    bias = params["heads"]["b"].copy().reshape(config.max_steps, -1)
    bias[:, 0] = [-200.0, 2.0, 2.0]  # the presence logits' biases
    params = dict(params, heads=dict(params["heads"], b=bias.reshape(-1)))
    loss, cache = hand_gradient.forward(params, images, noise, config, 0.2)
    assert np.all(cache["z_pres"][:, 0] == 0.0) and np.all(cache["z_pres"][:, 1:] > 0.0)
    grads = hand_gradient.backward(cache)
    assert np.isfinite(loss) and all(np.all(np.isfinite(leaf)) for _, leaf in leaves(grads))
    assert loss == pytest.approx(air.loss(params, images, noise, config, fixed(config, 0.2)), rel=1e-12, abs=0)
    errors = relative_errors(grads, autograd.grad(air.loss)(params, images, noise, config, fixed(config, 0.2)))
    assert max(errors.values()) <= 1e-8, errors
    # Nothing is drawn, so nothing that only shapes the drawing receives gradient.
    assert all(np.all(leaf == 0) for path, leaf in leaves(grads) if path.startswith("decoder"))


# --- (b) autograd's own finite-difference check --------------------------------------------------------------------


def test_check_grads_of_loss(problem, seeded_global_random):
    config, params, images, noise = problem
    check_grads(lambda p: air.loss(p, images, noise, config, fixed(config, 0.37, 0.5)), modes=["rev"], order=1)(params)


# --- (c) central finite differences, one leaf at a time ------------------------------------------------------------


@pytest.mark.parametrize("path", LEAF_PATHS)
def test_finite_differences_per_leaf(problem, path):
    config, params, images, noise = problem
    temperature, kl_scale, eps = 0.37, 0.5, 1e-5
    f = lambda p: air.loss(p, images, noise, config, fixed(config, temperature, kl_scale))
    leaf = dict(leaves(params))[path]
    gradient = dict(leaves(autograd.grad(f)(params)))[path]
    # A random unit direction plus the gradient's: random enough to see any wrong component, never orthogonal
    # to the gradient (which would leave the difference all round-off).
    direction = np.random.default_rng(LEAF_PATHS.index(path)).standard_normal(leaf.shape)
    direction = direction / np.linalg.norm(direction) + gradient / np.linalg.norm(gradient)
    direction /= np.linalg.norm(direction)

    def moved(step):
        return replace_leaf(params, path, leaf + step * direction)

    # Both ends of the difference lie on the same smooth piece of the loss as the centre.
    centre = hand_gradient.kink_pattern(hand_gradient.forward(params, images, noise, config, temperature)[1])
    for step in (eps, -eps):
        pattern = hand_gradient.kink_pattern(hand_gradient.forward(moved(step), images, noise, config, temperature)[1])
        assert all(np.array_equal(a, b) for a, b in zip(centre, pattern)), f"{path}: the step crosses a kink"

    numeric = (f(moved(eps)) - f(moved(-eps))) / (2 * eps)
    analytic = float(np.sum(gradient * direction))
    assert numeric == pytest.approx(analytic, rel=1e-6, abs=0), path
