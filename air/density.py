"""The model's density and the guide's, per scene and per count, at a sample of the guide.

For a posterior sample (air.guide.guide with noise) the latents of every step are drawn, step t as if the steps
before it were present. A scene explained by its first n steps then has

    log p(x, n, z_1..n) = log p(x | z_1..n) + log p(n) + sum_{t <= n} [log p(z_what_t) + log p(z_where_t)]
    log q(z_1..n | x)   = sum_{t <= n} [log q(z_what_t | ...) + log q(z_where_t | ...)],

and the guide's count posterior q(n | x, z) comes from the presence logits (air.guide.count_log_probs). These
are the pieces of every bound the project reports: the ELBO is E_q[log p(x, n, z) - log q(n | x, z) - log q(z | x)],
and air.evidence weighs samples by p / q. z_where enters only when it is stochastic; a deterministic z_where is
a point the guide computes, not a latent. A stochastic z_where is scored where it was drawn, before its log s is
clipped: the clip is part of rendering (p(x | z) draws the window at the clipped scale).
"""
import math

import autograd.numpy as np
import numpy

from air.generative import negative_log_likelihood, prefix_scenes, prior_count_probs, step_canvases
from air.guide import count_log_probs

LOG_2PI = math.log(2.0 * math.pi)


def log_normal(x, mean, logvar):
    """log N(x; mean, exp(logvar)), elementwise."""
    return -0.5 * (LOG_2PI + logvar + (x - mean) ** 2 / np.exp(logvar))


def where_sample(post, noise, config):
    """The z_where = (log s, tx, ty) (B, T, 3) the guide drew, before its log s was clipped (stochastic z_where
    only): location + exp(logsd) * noise["where"]."""
    return post["where_location"] + np.exp(post["where_logsd"]) * noise["where"]


def log_prior_steps(post, noise, config):
    """log p(z_what_t) + log p(z_where_t) of each step's sample, (B, T): standard normal z_what, and z_where from
    N(where_prior_mean, where_prior_sd^2) when it is stochastic."""
    z = post["z_what"]
    out = np.sum(-0.5 * (LOG_2PI + z * z), axis=2)
    if config.z_where == "stochastic":
        mean = numpy.asarray(config.where_prior_mean, dtype=config.dtype)
        logvar = 2.0 * numpy.log(numpy.asarray(config.where_prior_sd, dtype=config.dtype))
        out = out + np.sum(log_normal(where_sample(post, noise, config), mean, logvar), axis=2)
    return out


def log_guide_steps(post, noise, config):
    """log q(z_what_t | ...) + log q(z_where_t | ...) of each step's sample, (B, T), under the Gaussians the guide
    drew them from (each given the earlier steps' samples)."""
    out = np.sum(log_normal(post["z_what"], post["what_mean"], post["what_logvar"]), axis=2)
    if config.z_where == "stochastic":
        out = out + np.sum(log_normal(where_sample(post, noise, config), post["where_location"],
                                      2.0 * post["where_logsd"]), axis=2)
    return out


def log_likelihood_counts(params, config, post, images):
    """log p(x | z_1..n) for n = 0..T, (B, T + 1): the scene of the first n steps' canvases (summed, or their
    maximum), scored by the likelihood. Only a normalised density for likelihood="gaussian"."""
    b, t, size = images.shape[0], config.max_steps, config.canvas_size
    scenes = prefix_scenes(step_canvases(params, config, post).reshape(b, t, size * size), config.composition)
    error = scenes - images.reshape(b, 1, size * size)
    sse = np.concatenate([np.sum(images.reshape(b, 1, size * size) ** 2, axis=2), np.sum(error * error, axis=2)],
                         axis=1)
    return -negative_log_likelihood(sse, config)


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
