"""The recurrent (AIR) and residual (DAIR) inference networks."""
import dataclasses
import zlib

import autograd
import numpy as np
import pytest
from autograd.test_util import check_grads

import air
from air.guide import guide
from air.nn import lstm_step
from air.schedules import fixed
from tests import reference_sampler


def numpy_lstm(w, b, x, h, c):
    """A plain-numpy LSTM step, written from the equations: gates i, f, o and candidate g."""
    z = np.concatenate([x, h], axis=1) @ w + b
    n = h.shape[1]
    sig = lambda v: 1 / (1 + np.exp(-v))
    i, f, o, g = sig(z[:, :n]), sig(z[:, n:2 * n]), sig(z[:, 2 * n:3 * n]), np.tanh(z[:, 3 * n:])
    c_new = f * c + i * g
    return o * np.tanh(c_new), c_new


def test_lstm_step_equals_a_plain_numpy_lstm():
    rng = np.random.default_rng(0)
    n_in, hidden = 5, 4
    params = {"w": rng.normal(size=(n_in + hidden, 4 * hidden)), "b": rng.normal(size=4 * hidden)}
    x, h, c = rng.normal(size=(3, n_in)), rng.normal(size=(3, hidden)), rng.normal(size=(3, hidden))
    got = lstm_step(params, np.concatenate([x, h], axis=1), c)
    want = numpy_lstm(params["w"], params["b"], x, h, c)
    assert np.allclose(got[0], want[0], atol=1e-14) and np.allclose(got[1], want[1], atol=1e-14)


def small_config(**changes):
    return dataclasses.replace(air.preset("seed"), dtype="float64", rnn_hidden=8, encoder_hidden=(16,),
                               decoder_hidden=12, what_dim=4, **changes)


def problem(config, seed=3, batch=3):
    rng = np.random.default_rng(seed)
    params = air.init_params(rng, config)
    images = rng.random((batch, config.canvas_size, config.canvas_size))
    return params, images, air.sample_noise(rng, config, batch)


@pytest.mark.parametrize("inference", ["recurrent", "residual"])
@pytest.mark.parametrize("estimator", ["relaxed", "enumerate"])
def test_sequential_loss_passes_the_gradient_check(inference, estimator, seeded_global_random):
    config = small_config(inference=inference, pres_estimator=estimator)
    params, images, noise = problem(config)
    check_grads(lambda p: air.loss(p, images, noise, config, fixed(config, 0.6)), modes=["rev"], order=1)(params)


def reference_steps(params, config, images, eps):
    """The sequential inference network and renderer written out in plain numpy, with the gather sampler."""
    b, d, p, size = len(images), config.what_dim, config.window_size, config.canvas_size
    x = images.reshape(b, -1)
    h = c = np.zeros((b, config.rnn_hidden))
    previous, explained = np.zeros((b, 3 + d)), np.zeros_like(x)
    relu = lambda v: np.maximum(v, 0)
    logits, canvases = [], []
    for t in range(config.max_steps):
        features = x - explained if config.inference == "residual" else x
        for layer in params["encoder"]:
            features = relu(features @ layer["w"] + layer["b"])
        h, c = numpy_lstm(params["lstm"]["w"], params["lstm"]["b"], np.concatenate([features, previous], 1), h, c)
        head = h @ params["heads"]["w"] + params["heads"]["b"]
        log_scale = np.clip(head[:, 1], *config.log_scale_range)
        shift, mean = head[:, 2:4], head[:, 4:4 + d]
        z_what = mean + np.exp(0.5 * np.clip(head[:, 4 + d:], *config.what_logvar_range)) * eps[:, t]
        hidden = relu(z_what @ params["decoder"][0]["w"] + params["decoder"][0]["b"])
        window = 1 / (1 + np.exp(-(hidden @ params["decoder"][1]["w"] + params["decoder"][1]["b"])))
        canvas = reference_sampler.window_to_image(window.reshape(b, p, p), log_scale, shift, size)
        explained = explained + canvas.reshape(b, -1)
        previous = np.concatenate([log_scale[:, None], shift, z_what], axis=1)
        logits.append(head[:, 0])
        canvases.append(canvas)
    return np.stack(logits, 1), np.stack(canvases, 1)


@pytest.mark.parametrize("inference", ["recurrent", "residual"])
def test_sequential_guide_equals_a_plain_numpy_reference(inference):
    config = small_config(inference=inference)
    params, images, noise = problem(config)
    steps = guide(params, config, images, {"what": noise["what"]})
    logits, canvases = reference_steps(params, config, images, noise["what"])
    assert np.allclose(steps["pres_logit"], logits, rtol=1e-12, atol=1e-12)
    assert np.allclose(steps["canvases"], canvases, rtol=1e-12, atol=1e-12)


def test_residual_and_recurrent_differ_after_the_first_step():
    recurrent, residual = small_config(inference="recurrent"), small_config(inference="residual")
    params, images, noise = problem(recurrent)
    a = guide(params, recurrent, images, {"what": noise["what"]})
    b = guide(params, residual, images, {"what": noise["what"]})
    assert np.allclose(a["pres_logit"][:, 0], b["pres_logit"][:, 0])
    assert not np.allclose(a["pres_logit"][:, 1], b["pres_logit"][:, 1])


def test_a_memoryless_residual_step_sees_only_what_is_left():
    """Without memory, step t of a scene is step 0 of the scene minus the first t steps' canvases."""
    config = small_config(inference="residual", step_memory="none")
    params, images, noise = problem(config)
    assert params["lstm"]["w"].shape[0] == config.encoder_hidden[-1]  # reads the encoded residual, nothing else
    steps = guide(params, config, images, {"what": noise["what"]})
    for t in range(1, config.max_steps):
        left = images - steps["canvases"][:, :t].sum(axis=1)
        again = guide(params, config, left, {"what": np.roll(noise["what"], -t, axis=1)})
        assert np.allclose(again["pres_logit"][:, 0], steps["pres_logit"][:, t], rtol=1e-12, atol=1e-12)
        assert np.allclose(again["canvases"][:, 0], steps["canvases"][:, t], rtol=1e-12, atol=1e-12)
    remembering = small_config(inference="residual")
    with_memory = guide(air.init_params(np.random.default_rng(3), remembering), remembering, images,
                        {"what": noise["what"]})
    left = images - with_memory["canvases"][:, 0]
    again = guide(air.init_params(np.random.default_rng(3), remembering), remembering, left,
                  {"what": np.roll(noise["what"], -1, axis=1)})
    assert not np.allclose(again["pres_logit"][:, 0], with_memory["pres_logit"][:, 1])  # the LSTM carries state


def test_memory_off_needs_the_residual_network():
    with pytest.raises(air.ConfigError, match="step_memory: 'none' needs inference='residual'"):
        small_config(inference="recurrent", step_memory="none")


@pytest.mark.parametrize("inference", ["recurrent", "residual"])
def test_infer_on_sequential_networks(inference):
    config = small_config(inference=inference)
    params, images, _ = problem(config, batch=5)
    out = air.infer(params, config, images)
    steps = guide(params, config, images)
    assert np.array_equal(out["z_pres"], np.cumprod(steps["pres_logit"] > 0, axis=1))
    assert np.allclose(out["canvases"], steps["canvases"])
    assert out["boxes"].shape == (5, config.max_steps, 4)


def test_infer_composes_the_present_canvases_by_config_composition():
    """infer's recon is the pixelwise maximum of the present steps' canvases with composition="max" (how the seed's
    scenes paste digits), which differs from their sum where windows overlap, and the sum with "sum"."""
    from air.guide import head_width
    config = small_config(composition="max")
    params, images, _ = problem(config, batch=4)
    # Presence logits pinned to (8, 8, -8): the first two steps present, the third absent, in every scene.
    logit_columns = np.arange(config.max_steps) * head_width(config)
    params["heads"]["w"][:, logit_columns] = 0.0
    params["heads"]["b"][logit_columns] = [8.0, 8.0, -8.0]
    out = air.infer(params, config, images)
    assert np.array_equal(out["count"], [2, 2, 2, 2])
    first, second = out["canvases"][:, 0], out["canvases"][:, 1]
    np.testing.assert_array_equal(out["recon"], np.maximum(first, second))
    both = (first > 0.01) & (second > 0.01)  # the windows start near the centre, so they overlap
    assert both.sum() > 100
    assert np.all(out["recon"][both] < (first + second)[both] - 0.01), "max composition should not add the canvases"
    summed = air.infer(params, small_config(composition="sum"), images)
    np.testing.assert_allclose(summed["recon"], first + second, rtol=1e-12, atol=1e-15)


def assert_leafwise_finite_differences(f, params, rel=1e-6, eps=1e-6):
    """Central differences of f along a random unit direction per parameter leaf against autograd's gradient.

    Per leaf and normalised, so the step stays far smaller than the distance to the sampler's pixel-grid and
    ReLU kinks (a direction over all leaves at once moves the point by eps * sqrt(#parameters)).
    """
    from air.tree import Layout
    layout = Layout(params)
    flat, grad = layout.flatten(params), layout.flatten(autograd.grad(f)(params))
    rng, start = np.random.default_rng(0), 0
    for path, shape in zip(layout.paths, layout.shapes):
        size = int(np.prod(shape))
        direction = np.zeros_like(flat)
        direction[start:start + size] = rng.normal(size=size)
        direction /= np.linalg.norm(direction)
        start += size
        step = eps * direction
        numeric = (f(layout.unflatten(flat + step)) - f(layout.unflatten(flat - step))) / (2 * eps)
        assert numeric == pytest.approx(grad @ direction, rel=rel, abs=1e-7), path


@pytest.mark.parametrize("inference", ["global", "residual"])
def test_glimpse_encoder_gradient_matches_finite_differences(inference):
    config = small_config(inference=inference, object_encoder="glimpse", glimpse_hidden=6, pres_estimator="enumerate")
    params, images, noise = problem(config)
    assert params["heads"]["w"].shape[1] == 4 * (config.max_steps if inference == "global" else 1)
    assert_leafwise_finite_differences(lambda p: air.loss(p, images, noise, config, fixed(config, 0.6)), params)


def test_glimpse_posterior_reads_the_crop_at_z_where():
    """z_what's posterior of step 0 from a plain-numpy MLP on the gather sampler's crop at step 0's z_where."""
    config = small_config(inference="recurrent", object_encoder="glimpse", glimpse_hidden=6)
    params, images, noise = problem(config)
    steps = guide(params, config, images, {"what": noise["what"]})
    crop = reference_sampler.image_to_window(images, steps["log_scale"][:, 0], steps["shift"][:, 0], config.window_size)
    hidden = np.maximum(crop.reshape(len(images), -1) @ params["glimpse_encoder"][0]["w"]
                        + params["glimpse_encoder"][0]["b"], 0)
    out = hidden @ params["glimpse_encoder"][1]["w"] + params["glimpse_encoder"][1]["b"]
    assert np.allclose(steps["what_mean"][:, 0], out[:, :config.what_dim], rtol=1e-12, atol=1e-12)


def test_where_kl_equals_the_gaussian_kl():
    from air.density import where_kl
    config = small_config(z_where="stochastic")
    rng = np.random.default_rng(2)
    location, logsd = rng.normal(size=(4, 3, 3)), rng.normal(-1, 0.3, size=(4, 3, 3))
    m, s = np.array(config.where_prior_mean), np.array(config.where_prior_sd)
    sd = np.exp(logsd)
    direct = np.sum(np.log(s / sd) + (sd ** 2 + (location - m) ** 2) / (2 * s ** 2) - 0.5, axis=-1)
    assert np.allclose(where_kl(location, logsd, config), direct, rtol=1e-12)


@pytest.mark.parametrize("inference, estimator", [("global", "relaxed"), ("residual", "enumerate"),
                                                  ("recurrent", "reinforce")])
def test_stochastic_where_gradient_matches_finite_differences(inference, estimator):
    config = small_config(inference=inference, pres_estimator=estimator, z_where="stochastic", baseline_hidden=4)
    params, images, noise = problem(config)
    assert noise["where"].shape == (3, config.max_steps, 3)
    terms = air.elbo_terms(params, images, noise, config, fixed(config, 0.6))
    assert terms["kl_where"] > 0
    if estimator == "reinforce":  # its loss holds a surrogate; the where path is checked through the ELBO
        f = lambda p: air.objective.combine(air.elbo_terms(p, images, noise, config, fixed(config, 0.6)), config)
    else:
        f = lambda p: air.loss(p, images, noise, config, fixed(config, 0.6))
    assert_leafwise_finite_differences(f, params)


def _stream(seed, name):
    """The generator air.streams.named(default_rng(seed)) gives for `name`, derived here from its documented
    definition: one integer drawn from the run's generator, and the name's CRC-32 as SeedSequence's spawn key."""
    entropy = int(np.random.default_rng(seed).integers(2 ** 63))
    return np.random.default_rng(np.random.SeedSequence(entropy, spawn_key=(zlib.crc32(name.encode()),)))


@pytest.mark.parametrize("changes", [{}, {"pres_estimator": "enumerate"},
                                     {"pres_estimator": "reinforce", "z_where": "stochastic", "dtype": "float64"}])
def test_noise_comes_from_one_named_stream_per_kind(changes):
    """sample_noise's values, drawn again here from their documented streams (air.objective.sample_noise):
    "noise/what" (B, T, D) standard normals; "noise/pres", uniforms (B, T) in [1e-6, 1 - 1e-6], as logistic noise
    log(u / (1 - u)) for the relaxed estimator and as they are for REINFORCE; "noise/where" (B, T, 3) standard
    normals for a stochastic z_where. The run's generator gives one number and nothing else, so a draw added
    anywhere changes nothing here, and a changed derivation fails."""
    config = dataclasses.replace(air.preset("seed"), **changes)
    b, t, d, dtype = 4, config.max_steps, config.what_dim, np.dtype(config.dtype)
    rng = np.random.default_rng(0)
    noise = air.sample_noise(rng, config, b)
    expected = {"what": _stream(0, "noise/what").standard_normal((b, t, d))}
    uniforms = _stream(0, "noise/pres").uniform(1e-6, 1 - 1e-6, size=(b, t))
    if config.pres_estimator == "relaxed":
        expected["gumbel"] = np.log(uniforms / (1 - uniforms))
    if config.pres_estimator == "reinforce":
        expected["pres"] = uniforms
    if config.z_where == "stochastic":
        expected["where"] = _stream(0, "noise/where").standard_normal((b, t, 3))
    assert set(noise) == set(expected)
    for name, values in expected.items():
        assert noise[name].dtype == dtype and noise[name].shape == values.shape, name
        np.testing.assert_allclose(noise[name], values, rtol=1e-6, atol=1e-6, err_msg=name)
    mirror = np.random.default_rng(0)
    mirror.integers(2 ** 63)
    assert rng.bit_generator.state == mirror.bit_generator.state, "sample_noise took more than one number from rng"


def test_a_switch_that_adds_a_part_leaves_every_other_parts_draws():
    """Named streams (air.streams): switching on the glimpse encoder, a stochastic z_where or REINFORCE adds
    parameters and noise and changes none that were there, and the heads' shared columns keep their values."""
    from air.guide import head_columns
    from air.tree import leaves
    base = air.preset("seed")
    params = dict(leaves(air.init_params(np.random.default_rng(3), base)))
    noise = air.sample_noise(np.random.default_rng(3), base, 5)
    for changes in ({"object_encoder": "glimpse"}, {"z_where": "stochastic"}, {"pres_estimator": "reinforce"},
                    {"z_where": "stochastic", "pres_estimator": "enumerate", "object_encoder": "glimpse"}):
        config = dataclasses.replace(base, **changes)
        other = dict(leaves(air.init_params(np.random.default_rng(3), config)))
        for path in ("encoder/0/w", "encoder/1/w", "decoder/0/w", "decoder/1/w", "decoder/1/b"):
            np.testing.assert_array_equal(other[path], params[path], err_msg=f"{changes}: {path}")
        for column in ("pres_logit", "log_scale", "shift"):  # every step's shared head columns
            mine, theirs = head_columns(base)[column], head_columns(config)[column]
            for t in range(base.max_steps):
                width, other_width = (params["heads/w"].shape[1] // base.max_steps,
                                      other["heads/w"].shape[1] // base.max_steps)
                np.testing.assert_array_equal(other["heads/w"][:, t * other_width + theirs.start:
                                                               t * other_width + theirs.stop],
                                              params["heads/w"][:, t * width + mine.start:t * width + mine.stop],
                                              err_msg=f"{changes}: {column} of step {t}")
        other_noise = air.sample_noise(np.random.default_rng(3), config, 5)
        np.testing.assert_array_equal(other_noise["what"], noise["what"])


def test_tanh_scale_bound_keeps_a_gradient_where_the_clip_has_none():
    from air.guide import bounded_log_scale
    clip = dataclasses.replace(air.preset("paper"))
    tanh = dataclasses.replace(clip, scale_bound="tanh")
    low, high = clip.log_scale_range
    raw = np.linspace(low - 2.0, high + 2.0, 41)
    squashed = bounded_log_scale(raw, tanh)
    assert np.all((squashed > low) & (squashed < high)) and np.all(np.diff(squashed) > 0)
    inside = np.abs(raw - (low + high) / 2) < (high - low) / 8  # near the centre: raw itself, to 1% of the range
    assert inside.any() and np.all(np.abs(squashed[inside] - raw[inside]) < 0.01 * (high - low))
    np.testing.assert_array_equal(bounded_log_scale(raw, clip), np.clip(raw, low, high))
    beyond = float(low - 0.5)  # a location pushed past the lower bound: the clip's gradient is 0, the tanh's not
    assert autograd.grad(lambda r: bounded_log_scale(r, clip))(beyond) == 0.0
    assert autograd.grad(lambda r: bounded_log_scale(r, tanh))(beyond) > 1e-3
    # The guide uses it: a recurrent paper-sized model's windows lie inside the range, not on its bounds.
    config = dataclasses.replace(tanh, canvas_size=20, window_size=8, rnn_hidden=8, encoder_hidden=(6,),
                                 glimpse_hidden=5, decoder_hidden=5, what_dim=3, where_log_scale_init=low - 1.0)
    params = air.init_params(np.random.default_rng(0), config)
    post = guide(params, config, np.random.default_rng(1).random((4, 20, 20)).astype(np.float32))
    assert np.all(post["log_scale"] > low) and np.all(post["where_location"][..., 0] > low)
