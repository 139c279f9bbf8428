"""The model's density and the guide's, written once: every bound, objective and score of the project is built
from these pieces (the estimators' training objectives, air.evidence, air.search, experiments.merges).

For a posterior sample (air.guide.guide with noise) the latents of every step are drawn, step t as if the steps
before it were present. A scene explained by its first n steps then has

    log p(x, n, z_1..n) = log p(x | z_1..n) + log p(n) + sum_{t <= n} [log p(z_what_t) + log p(z_where_t)]
    log q(z_1..n | x)   = sum_{t <= n} [log q(z_what_t | ...) + log q(z_where_t | ...)],

and the guide's count posterior q(n | x, z) comes from the presence logits (air.guide.count_log_probs). The ELBO
is E_q[log p(x, n, z) - log q(n | x, z) - log q(z | x)]; the estimators (air.estimators) take its expectation over
z_what and z_where in closed form where it has one (the KLs below, E_q[log q(z_t) - log p(z_t)]) and over the
count by summing, relaxing or sampling it, and air.evidence weighs samples by p / q. z_where enters only when it
is stochastic; a deterministic z_where is a point the guide computes, not a latent. A stochastic z_where is
scored where it was drawn, before its log s is clipped: the clip is part of rendering (p(x | z) draws the window
at the clipped scale).
"""
import math

import autograd.numpy as np
import numpy
from autograd.tracer import getval

from air.generative import (compose, negative_log_likelihood, prefix_scenes, prior_count_probs, reconstruct, render,
                            step_canvases)
from air.guide import count_log_probs

LOG_2PI = math.log(2.0 * math.pi)


def log_normal(x, mean, logvar):
    """log N(x; mean, exp(logvar)), elementwise."""
    return -0.5 * (LOG_2PI + logvar + (x - mean) ** 2 / np.exp(logvar))


def where_sample(post, noise, config):
    """The z_where = (log s, tx, ty) (B, T, 3) the guide drew, before its log s was clipped (stochastic z_where
    only): location + exp(logsd) * noise["where"]."""
    return post["where_location"] + np.exp(post["where_logsd"]) * noise["where"]


def log_prior_latents(z_what, z_where, config):
    """log p(z_what) + log p(z_where) of objects, (..., D) and (..., 3) -> (...): standard normal z_what, and z_where
    from N(where_prior_mean, where_prior_sd^2) when it is stochastic (z_where None or ignored otherwise)."""
    out = np.sum(-0.5 * (LOG_2PI + z_what * z_what), axis=-1)
    if config.z_where == "stochastic":
        mean = numpy.asarray(config.where_prior_mean, dtype=config.dtype)
        logvar = 2.0 * numpy.log(numpy.asarray(config.where_prior_sd, dtype=config.dtype))
        out = out + np.sum(log_normal(z_where, mean, logvar), axis=-1)
    return out


def log_prior_steps(post, noise, config):
    """log p(z_what_t) + log p(z_where_t) of each step's sample, (B, T) (log_prior_latents)."""
    where = where_sample(post, noise, config) if config.z_where == "stochastic" else None
    return log_prior_latents(post["z_what"], where, config)


def log_guide_steps(post, noise, config):
    """log q(z_what_t | ...) + log q(z_where_t | ...) of each step's sample, (B, T), under the Gaussians the guide
    drew them from (each given the earlier steps' samples)."""
    out = np.sum(log_normal(post["z_what"], post["what_mean"], post["what_logvar"]), axis=2)
    if config.z_where == "stochastic":
        out = out + np.sum(log_normal(where_sample(post, noise, config), post["where_location"],
                                      2.0 * post["where_logsd"]), axis=2)
    return out


def prefix_sse(params, config, post, images):
    """The squared error of each scene explained by its first n steps, n = 0..T, (B, T + 1): the running sum (or
    maximum) of the steps' canvases against the image; with n = 0 the image's own sum of squares."""
    b, t, size = images.shape[0], config.max_steps, config.canvas_size
    canvases = step_canvases(params, config, post)
    # error[:, n - 1] = (first n steps) - x, for n = 1..T; with n = 0 the error is the image itself.
    scenes = prefix_scenes(canvases.reshape(b, t, size * size), config.composition)
    error = scenes - images.reshape(b, 1, size * size)
    return np.concatenate([numpy.sum(numpy.square(getval(images)), axis=(1, 2)).reshape(b, 1),
                           np.sum(error * error, axis=2)], axis=1)


def log_likelihood_counts(params, config, post, images):
    """log p(x | z_1..n) for n = 0..T, (B, T + 1), from prefix_sse. Only a normalised density for
    likelihood="gaussian"."""
    return -negative_log_likelihood(prefix_sse(params, config, post, images), config)


def _cumulative(steps):
    """(B, T) per-step terms -> (B, T + 1) their sums over the first n steps, n = 0..T."""
    zero = numpy.zeros((steps.shape[0], 1), dtype=numpy.result_type(steps))
    return np.concatenate([zero, np.cumsum(steps, axis=1)], axis=1)


def log_joint_counts(params, config, post, noise, images, pres_prior):
    """log p(x, n, z_1..n) for n = 0..T, (B, T + 1), with the per-step presence prior `pres_prior` (T,)."""
    log_p_count = numpy.log(prior_count_probs(pres_prior)).astype(config.dtype)
    return (log_likelihood_counts(params, config, post, images) + log_p_count
            + _cumulative(log_prior_steps(post, noise, config)))


def log_guide_counts(config, post, noise):
    """(log q(n | x, z), log q(z_1..n | x)), each (B, T + 1) for n = 0..T: the guide's count posterior and the
    density of the first n steps' latents."""
    log_q_count, _ = count_log_probs(post["pres_logit"], config.pres_floor)
    return log_q_count, _cumulative(log_guide_steps(post, noise, config))


# --- the analytic KLs, E_q[log q(z_t) - log p(z_t)] per object --------------------------------------------------


def what_kl_twice(mean, logvar):
    """Twice KL(N(mean, exp(logvar)) || N(0, 1)) of z_what, per coordinate: (..., D) -> (..., D). Sum it over
    what is wanted and halve once (the estimators and elbo_at_means do)."""
    return mean * mean + np.exp(logvar) - logvar - 1.0


def where_kl(location, logsd, config):
    """Per step, KL(N(location, exp(logsd)^2) || N(where_prior_mean, where_prior_sd^2)) of z_where = (log s, tx,
    ty), summed over its three coordinates: location and logsd (..., 3) -> (...)."""
    prior_mean = numpy.asarray(config.where_prior_mean, dtype=config.dtype)
    prior_sd = numpy.asarray(config.where_prior_sd, dtype=config.dtype)
    kl = (numpy.log(prior_sd) - logsd + (np.exp(2.0 * logsd) + (location - prior_mean) ** 2) / (2.0 * prior_sd ** 2)
          - 0.5)
    return np.sum(kl, axis=-1)


# --- explanations given object by object (experiments.merges, air.search) ---------------------------------------


def objects_scene(params, config, where, what):
    """The scenes (R, H, W) of explanations of K objects each, z_where (R, K, 3) and z_what (R, K, D), log s clipped
    to log_scale_range as the renderer draws it, composed by config.composition."""
    log_scale, shift = np.clip(where[..., 0], *config.log_scale_range), where[..., 1:]
    r, k, _ = what.shape
    gates = numpy.ones((r, k), dtype=numpy.result_type(getval(what)))
    if config.composition == "sum":  # the transformer is linear in the window: the faster path
        return reconstruct(params, config, gates, what, log_scale, shift)
    return compose(gates, render(params, config, what, log_scale, shift)[1], config.composition)


def objects_log_likelihood(params, config, images, where, what):
    """log p(x | z) (R,) of images (R, H, W) explained by K objects each (objects_scene)."""
    error = objects_scene(params, config, where, what) - images
    return -negative_log_likelihood(np.sum((error * error).reshape(len(images), -1), axis=1), config)


def objects_log_joint(params, config, images, where, what):
    """log p(x | z) + sum over the K objects of log p(z_what) + log p(z_where), (R,): log p(x, n = K, z) - log p(n),
    the density air.search climbs."""
    return (objects_log_likelihood(params, config, images, where, what)
            + np.sum(log_prior_latents(what, where, config), axis=1))


def elbo_at_means(params, config, images, where, what, what_logvar, where_logsd=None):
    """Per row (R,), the ELBO of explaining images (R, H, W) by K objects whose Gaussian posteriors have means
    (where (R, K, 3), what (R, K, D)) and spreads (what_logvar (R, K, D); where_logsd (R, K, 3) for a stochastic
    z_where), with the likelihood taken at the means: log p(x | means) - sum_k KL(q(z_what_k) || p) - sum_k KL(q(
    z_where_k) || p), the z_where KL left out when where_logsd is None. Add log p(n = K) for log p(x, n)'s estimate."""
    kl = 0.5 * np.sum(what_kl_twice(what, what_logvar), axis=(1, 2))
    if config.z_where == "stochastic" and where_logsd is not None:
        kl = kl + np.sum(where_kl(where, where_logsd, config), axis=1)
    return objects_log_likelihood(params, config, images, where, what) - kl
