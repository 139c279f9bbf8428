"""REINFORCE with an NVIL baseline: unbiased, its surrogate's gradient right, its baseline trained."""
import dataclasses

import autograd
import numpy as np
import pytest

import air
from air.guide import count_log_probs, guide
from air.nn import mlp
from air.schedules import fixed
from tests.test_inference import assert_leafwise_finite_differences


def config_for(estimator, **changes):
    return dataclasses.replace(air.preset("seed"), dtype="float64", encoder_hidden=(16,), decoder_hidden=12,
                               what_dim=4, baseline_hidden=8, pres_estimator=estimator, **changes)


# Centring by a constant is one more baseline; a floored posterior is sampled and scored with its floor.
@pytest.mark.parametrize("signal_stats, floor", [(None, 0.0), ((40.0, 1.0), 0.0), (None, 0.1)])
def test_reinforce_gradient_is_unbiased_against_exact_enumeration(signal_stats, floor):
    """Averaged over many binary samples (same z_what noise), the REINFORCE gradient of the heads' biases
    equals the gradient of the enumerated objective, whose count expectation is exact."""
    reinforce, enumerate_ = config_for("reinforce", pres_floor=floor), config_for("enumerate", pres_floor=floor)
    rng = np.random.default_rng(5)
    params = air.init_params(rng, reinforce)
    params["heads"]["b"].reshape(3, -1)[:, 0] = [1.0, 0.0, -0.5]  # presence probabilities 0.73, 0.5, 0.38
    images = rng.random((2, 32, 32))
    base_noise = air.sample_noise(rng, reinforce, 2)
    without_baseline = {k: v for k, v in params.items() if k != "baseline"}
    exact = autograd.grad(air.loss)(without_baseline, images, base_noise, enumerate_, fixed(enumerate_, 0.5))["heads"]["b"]
    # A baseline at the expected cost, as a trained one would be: any baseline leaves the estimate unbiased,
    # a good one shrinks its variance (and so the standard error this test can resolve).
    expected_cost = air.elbo_terms(without_baseline, images, base_noise, enumerate_, fixed(enumerate_, 0.5))["recon"]
    params["baseline"][1]["b"][:] = expected_cost

    replicas, chunks = 400, 10
    tiled = np.tile(images, (replicas, 1, 1))
    noise = {"what": np.tile(base_noise["what"], (replicas, 1, 1))}
    estimates = []
    for _ in range(chunks):
        noise["pres"] = rng.uniform(size=(2 * replicas, 3))
        # loss is a batch mean, so the replicas' mean gradient is each replica's estimate averaged; x2 images
        estimates.append(autograd.grad(air.loss)(params, tiled, noise, reinforce,
                                                 fixed(reinforce, 0.5, signal=signal_stats))["heads"]["b"])
    estimates = np.array(estimates)
    mean, standard_error = estimates.mean(axis=0), estimates.std(axis=0, ddof=1) / np.sqrt(chunks)
    assert np.all(np.abs(mean - exact) <= 4 * standard_error + 1e-6 * np.abs(exact).max())
    # and the test has power: the presence columns carry a clearly non-zero gradient
    assert np.abs(exact.reshape(3, -1)[:, 0]).max() > 5 * standard_error.reshape(3, -1)[:, 0].max()


def test_surrogate_gradient_with_the_samples_fixed():
    """autograd's gradient of the REINFORCE loss is the gradient of the surrogate whose learning signal and
    baseline target are held at their values: checked against central differences of that written-out function."""
    config = config_for("reinforce")
    rng = np.random.default_rng(6)
    params = air.init_params(rng, config)
    images = rng.random((3, 32, 32))
    noise = air.sample_noise(rng, config, 3)
    b = len(images)

    # The sample's count and cost at the point, then held fixed.
    terms = air.elbo_terms(params, images, noise, config, fixed(config, 0.5))
    logits = guide(params, config, images)["pres_logit"]
    q = 1 / (1 + np.exp(-logits))
    count = np.cumprod(noise["pres"] < q, axis=1).sum(axis=1)
    onehot = np.arange(4) == count[:, None]
    cost = _sample_costs(params, images, noise, config, count)
    baseline_at_point = mlp(params["baseline"], images.reshape(b, -1)).reshape(b)

    def surrogate(p):
        elbo = air.objective.combine(air.elbo_terms(p, images, noise, config, fixed(config, 0.5)), config)
        log_q = np.sum(count_log_probs(guide(p, config, images)["pres_logit"])[0] * onehot, axis=1)
        baseline = mlp(p["baseline"], images.reshape(b, -1)).reshape(b)
        return elbo + (np.sum((cost - baseline_at_point) * log_q) + np.sum((cost - baseline) ** 2)) / b

    assert terms["recon"] * config.recon_weight == pytest.approx(cost.mean())
    assert surrogate(params) != air.loss(params, images, noise, config, fixed(config, 0.5))  # the surrogate is not the ELBO ...
    grads = autograd.grad(air.loss)(params, images, noise, config, fixed(config, 0.5))
    from air.tree import Layout
    layout = Layout(params)
    assert np.allclose(layout.flatten(grads), layout.flatten(autograd.grad(surrogate)(params)), rtol=1e-9, atol=1e-9)
    # ... but has the same gradient (looser: the baseline term is ~1e5, so differences carry ~1e-5 round-off)
    assert_leafwise_finite_differences(surrogate, params, rel=1e-4)


def _sample_costs(params, images, noise, config, count):
    """Each scene's weighted reconstruction cost with its first `count` steps present, from infer-like pieces."""
    from air.generative import render
    post = guide(params, config, images)
    z_what = post["what_mean"] + np.exp(0.5 * post["what_logvar"]) * noise["what"]
    canvases = render(params, config, z_what, post["log_scale"], post["shift"])[1]
    present = (np.arange(config.max_steps) < count[:, None]).astype(float)
    recon = np.einsum("bt,bthw->bhw", present, canvases)
    return config.recon_weight * np.sum((recon - images) ** 2, axis=(1, 2))


def test_baseline_learns_and_moves(tiny_config, mnist):
    from air import train as air_train
    config = dataclasses.replace(tiny_config, pres_estimator="reinforce", n_epochs=3)
    datasets = air_train.build_datasets(config, mnist)
    snapshots = []
    air_train.train(config, datasets, on_step=lambda step, params: snapshots.append(params()))
    first, last = snapshots[0]["baseline"], snapshots[-1]["baseline"]
    assert not np.allclose(first[1]["w"], last[1]["w"])
    x = datasets.val.images.reshape(len(datasets.val), -1)
    # the baseline's prediction moved towards the reconstruction costs' scale (it starts near 0)
    assert abs(mlp(last, x).mean()) > 5 * abs(mlp(first, x).mean())


def test_running_signal_statistics():
    from air.estimators import running_signal_stats
    decayed = dataclasses.replace(air.preset("paper"), signal_decay=0.9)
    stats = running_signal_stats(None, {"signal_mean": 10.0, "signal_var": 4.0}, decayed)
    assert stats == (10.0, 2.0)
    stats = running_signal_stats(stats, {"signal_mean": 20.0, "signal_var": 16.0}, decayed)
    assert stats[0] == pytest.approx(11.0) and stats[1] == pytest.approx(np.sqrt(0.9 * 4 + 0.1 * 16))


def test_signal_normaliser_follows_the_switch():
    from air.estimators import signal_normaliser
    reinforce = config_for("reinforce")
    assert signal_normaliser(reinforce, (11.0, 3.0)) is None  # "none": the raw signal
    assert signal_normaliser(dataclasses.replace(reinforce, signal_norm="center"), (11.0, 3.0)) == (11.0, 1.0)
    assert signal_normaliser(dataclasses.replace(reinforce, signal_norm="running"), (11.0, 3.0)) == (11.0, 3.0)
    assert signal_normaliser(dataclasses.replace(reinforce, signal_norm="center"), None) is None  # first batch
