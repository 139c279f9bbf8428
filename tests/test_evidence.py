"""air.evidence: the importance-weighted bound on log p(x) is the ELBO at k = 1 (count sampled), rises with k,
and reaches log p(x) integrated numerically on a model small enough to integrate; non-ELBO objectives refuse."""
import dataclasses

import numpy as np
import pytest

import air
from air.marginal import NotALikelihood, evidence
from air.generative import decode, prior_count_probs
from air.guide import guide
from air.schedules import at_end
from air.transformer import window_to_image

# A true ELBO (Gaussian likelihood, every weight 1) on small scenes: the recurrent network, a stochastic z_where,
# the glimpse encoder, enumerated counts, so every term of the densities is there.
SMALL = dict(canvas_size=16, window_size=8, digit_size=(6, 10), what_dim=4, encoder_hidden=(24,), decoder_hidden=12,
             rnn_hidden=10, glimpse_hidden=10, likelihood="gaussian", likelihood_sd=0.5, kl_what_weight=1.0,
             kl_pres_weight=1.0, kl_warmup_epochs=0, pres_estimator="enumerate", n_train=64, batch_size=16,
             dtype="float64")


def small_problem(seed=0, **changes):
    config = dataclasses.replace(air.preset("seed"), **{**SMALL, **changes})
    rng = np.random.default_rng(seed)
    params = air.init_params(rng, config)
    images = rng.random((6, 16, 16)) * (rng.random((6, 16, 16)) < 0.2)
    return config, params, images


@pytest.mark.parametrize("changes", [dict(inference="recurrent", z_where="stochastic", object_encoder="glimpse"),
                                     dict(inference="global", composition="max")])
def test_one_sample_with_the_count_drawn_is_the_elbo_on_average(changes):
    """With count="sample", L_1 is log p(x, n, z) - log q(n, z | x) at one draw: its mean is the ELBO, which the
    same call also estimates with the count summed out; both are unbiased, so their averages over many draws agree
    to within their standard errors."""
    config, params, images = small_problem(**changes)
    many = np.repeat(images[:2], 3000, axis=0)
    out = evidence(params, config, many, k=1, count="sample", rng=np.random.default_rng(1))
    for i in range(2):
        sampled, elbo = out["log_px"][i * 3000:(i + 1) * 3000], out["elbo"][i * 3000:(i + 1) * 3000]
        difference = sampled - elbo  # paired: the same draws of z
        assert abs(difference.mean()) < 4 * difference.std() / np.sqrt(len(difference)) + 1e-9


def test_the_bound_rises_with_k_and_summing_the_count_is_at_least_the_elbo():
    config, params, images = small_problem(inference="recurrent", z_where="stochastic", object_encoder="glimpse")
    bounds = {k: evidence(params, config, images, k=k, rng=np.random.default_rng(2))["log_px"] for k in (1, 10, 300)}
    assert np.all(bounds[1] <= bounds[300] + 1e-9) and bounds[10].mean() <= bounds[300].mean()
    elbo = evidence(params, config, images, k=300, rng=np.random.default_rng(3))["elbo"]
    assert np.all(elbo <= bounds[300])


def test_the_bound_reaches_log_p_x_integrated_on_a_one_object_model():
    """One step, a one-dimensional z_what, z_where a point the guide computes: p(x) = p(0) p(x | nothing) + p(1)
    integral p(x | z) N(z; 0, 1) dz, integrated on a fine grid. The bound at k = 20,000 is within 0.02 nats of it
    and not above it by more than its own noise."""
    config, params, images = small_problem(max_steps=1, what_dim=1, pres_prior=(0.5,), likelihood_sd=1.0)
    post = guide(params, config, images)  # the means: a deterministic z_where does not depend on the noise
    grid = np.linspace(-9.0, 9.0, 12001)
    var = config.likelihood_sd ** 2
    exact = []
    log_p = np.log(prior_count_probs(at_end(config).pres_prior))
    for i, x in enumerate(images):
        windows = decode(params, config, grid[:, None])
        scenes = window_to_image(windows, np.full(len(grid), post["log_scale"][i, 0]),
                                 np.repeat(post["shift"][i, :1], len(grid), axis=0), config.canvas_size)
        log_lik = -np.sum((scenes - x) ** 2, axis=(1, 2)) / (2 * var) - x.size * 0.5 * np.log(2 * np.pi * var)
        integrand = log_lik - 0.5 * (np.log(2 * np.pi) + grid ** 2)
        top = integrand.max()
        one = top + np.log(np.sum(np.exp(integrand - top)) * (grid[1] - grid[0]))
        empty = -np.sum(x ** 2) / (2 * var) - x.size * 0.5 * np.log(2 * np.pi * var)
        exact.append(np.logaddexp(log_p[0] + empty, log_p[1] + one))
    bound = evidence(params, config, images, k=20000, rng=np.random.default_rng(4))["log_px"]
    np.testing.assert_allclose(bound, exact, atol=0.02)


def test_a_squared_error_or_a_weighted_objective_has_no_evidence():
    config, params, images = small_problem()
    for changes, field in ((dict(likelihood="sse"), "likelihood"), (dict(kl_what_weight=0.05), "kl_what_weight"),
                           (dict(recon_weight=2.0), "recon_weight")):
        with pytest.raises(NotALikelihood, match=field):
            evidence(params, dataclasses.replace(config, **changes), images, k=2)
    with pytest.raises(NotALikelihood, match="likelihood='sse'"):
        evidence(*air.pretrained("seed"), np.zeros((1, 32, 32)), k=1)


def test_the_count_posterior_is_a_distribution_that_follows_the_weights():
    config, params, images = small_problem(inference="recurrent")
    out = evidence(params, config, images, k=50)
    np.testing.assert_allclose(out["count_posterior"].sum(axis=1), 1.0, rtol=1e-12)
    assert out["count_posterior"].shape == (6, config.max_steps + 1)
    # The same rng gives the same numbers: a call is reproducible.
    again = evidence(params, config, images, k=50)
    np.testing.assert_array_equal(out["log_px"], again["log_px"])


def test_the_latent_densities_average_to_the_analytic_kl():
    """E_q[log q(z_t) - log p(z_t)] is KL(q || p) for each step's z_what and z_where: the Monte-Carlo average of
    air.density's two densities, drawn as the guide draws them, against the analytic KLs the estimators train on
    (air.density.what_kl_twice, where_kl), paired at each draw's own posterior."""
    from air.density import log_guide_steps, log_prior_steps
    from air.density import what_kl_twice, where_kl
    config, params, images = small_problem(inference="recurrent", z_where="stochastic", object_encoder="glimpse")
    many = np.repeat(images[:1], 4000, axis=0)
    noise = air.sample_noise(np.random.default_rng(5), config, len(many))
    post = guide(params, config, many, noise)
    sampled = log_guide_steps(post, noise, config) - log_prior_steps(post, noise, config)  # (N, T)
    analytic = (0.5 * np.sum(what_kl_twice(post["what_mean"], post["what_logvar"]), axis=2)
                + where_kl(post["where_location"], post["where_logsd"], config))
    difference = sampled - analytic
    standard_error = difference.std(axis=0) / np.sqrt(len(many))
    assert np.all(np.abs(difference.mean(axis=0)) < 4 * standard_error), (difference.mean(axis=0), standard_error)
