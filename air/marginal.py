"""The model's evidence, the marginal likelihood log p(x): an importance-weighted bound on it (Burda, Grosse and
Salakhutdinov 2016).

With k samples z^1..z^k from the guide, every count n = 0..T is scored at each sample (the first n steps of a
sample are a draw of n objects; air.density), so the count needs no sampling:

    w_j = sum_n p(x, n, z^j_1..n) / q(z^j_1..n | x),     log p(x) >= E[log (1/k) sum_j w_j] =: L_k.

Each w_j is an unbiased estimate of p(x), so L_k rises with k towards log p(x) (Burda et al., Theorem 1). The
count posterior p(n | x) is estimated by the same weights, split by n. With count="sample", n is drawn from the
guide's q(n | x, z) instead and weighed by 1 / q(n | x, z): then L_1 is the ELBO that the enumerated estimator
trains on, and the gap between the two at k = 1 is what summing the count out gains.

Only a model whose objective is a true ELBO has an evidence: a normalised (Gaussian) likelihood, weights of 1 on
the reconstruction and both KL terms. The seed's weighted squared error is not a log-likelihood, and asking for
its evidence is an error, not a number.
"""
import math

import numpy

from air.density import log_guide_counts, log_joint_counts
from air.guide import guide
from air.objective import sample_noise
from air.schedules import at_end


class NotALikelihood(ValueError):
    """The config's objective is not an ELBO, so the model has no evidence to bound."""


def check_likelihood(config):
    """NotALikelihood, naming the field, unless the config's objective is a true ELBO."""
    if config.likelihood != "gaussian":
        raise NotALikelihood(f"likelihood={config.likelihood!r} is a squared error, not a normalised density: no "
                             "log-likelihood to report (likelihood='gaussian' has one)")
    for name in ("recon_weight", "kl_what_weight", "kl_pres_weight"):
        if getattr(config, name) != 1.0:
            raise NotALikelihood(f"{name}={getattr(config, name)}: a weighted objective is not an ELBO, so it bounds "
                                 "no log-likelihood (all three weights must be 1)")


def sample_log_weights(params, config, images, rng, pres_prior, count="sum"):
    """One sample of the guide per scene: (log w (B,), log w_n (B, T + 1), its ELBO term (B,)). log w_n = log p(x,
    n, z_1..n) - log q(z_1..n | x); log w is their log-sum (count="sum") or, for n drawn from q(n | x, z), log w_n
    - log q(n | x, z) (count="sample"); the ELBO term is sum_n q(n | x, z) (log w_n - log q(n | x, z)), whose mean
    over samples is the ELBO with the count summed out, as the enumerated estimator trains on."""
    noise = sample_noise(rng, config, len(images))
    post = guide(params, config, images, noise)
    log_joint = log_joint_counts(params, config, post, noise, images, pres_prior)
    log_q_count, log_q_latents = log_guide_counts(config, post, noise)
    per_count = numpy.asarray(log_joint - log_q_latents, dtype=numpy.float64)
    log_q_count = numpy.asarray(log_q_count, dtype=numpy.float64)
    q = numpy.exp(log_q_count)
    elbo = numpy.sum(q * (per_count - log_q_count), axis=1)
    if count == "sum":
        return _logsumexp(per_count, axis=1), per_count, elbo
    n = (rng.random((len(images), 1)) > numpy.cumsum(q, axis=1)).sum(axis=1)  # n ~ q(n | x, z)
    rows, n = numpy.arange(len(images)), numpy.minimum(n, config.max_steps)
    return per_count[rows, n] - log_q_count[rows, n], per_count, elbo


def evidence(params, config, images, k=100, rng=None, count="sum", schedule=None, batch_size=None):
    """The importance-weighted bound on log p(x) with k samples, and the count posterior it implies:

    log_px (B,), L_k in nats per scene; count_posterior (B, T + 1), p(n | x) estimated from the same weights;
    elbo (B,), the ELBO with the count summed out, estimated from the same k samples.

    `schedule` gives the count prior (default: the end of training's, air.schedules.at_end). rng draws the
    guide's noise (default: a fixed seed, so a call is reproducible). NotALikelihood for a config whose objective
    is not an ELBO (check_likelihood)."""
    check_likelihood(config)
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    if count not in ("sum", "sample"):
        raise ValueError(f"count must be 'sum' or 'sample', got {count!r}")
    rng = numpy.random.default_rng(0) if rng is None else rng
    pres_prior = (at_end(config) if schedule is None else schedule).pres_prior
    images = numpy.asarray(images, dtype=config.dtype)
    b = len(images)
    batch_size = batch_size or max(1, 4000 // max(1, k))  # scenes a pass: k copies of each
    log_px, posterior, elbo = numpy.empty(b), numpy.empty((b, config.max_steps + 1)), numpy.empty(b)
    for start in range(0, b, batch_size):
        chunk = images[start:start + batch_size]
        m = len(chunk)
        tiled = numpy.repeat(chunk, k, axis=0)  # scene i's k copies are rows i k .. i k + k - 1
        log_w, per_count, elbo_terms = sample_log_weights(params, config, tiled, rng, pres_prior, count)
        log_w, per_count = log_w.reshape(m, k), per_count.reshape(m, k, -1)
        log_px[start:start + m] = _logsumexp(log_w, axis=1) - math.log(k)
        joint = _logsumexp(per_count, axis=1)  # (m, T + 1): sum over the samples of each count's weights
        posterior[start:start + m] = numpy.exp(joint - _logsumexp(joint, axis=1)[:, None])
        elbo[start:start + m] = elbo_terms.reshape(m, k).mean(axis=1)
    return {"log_px": log_px, "count_posterior": posterior, "elbo": elbo, "k": k}


def evidence_summary(params, config, images, k=100):
    """The scenes' mean ELBO and mean k-sample bound on log p(x) with their standard errors (nats per scene), as
    the scripts report them; {"no_evidence": why} for a config whose objective is not an ELBO."""
    try:
        out = evidence(params, config, images, k=k)
    except NotALikelihood as error:
        return {"no_evidence": str(error)}
    n = len(images)
    spread = (lambda v: float(v.std(ddof=1) / math.sqrt(n))) if n > 1 else (lambda v: float("nan"))
    return {"evidence_k": k, "evidence_scenes": n, "elbo": float(out["elbo"].mean()), "elbo_stderr": spread(out["elbo"]),
            "log_px": float(out["log_px"].mean()), "log_px_stderr": spread(out["log_px"])}


def _logsumexp(a, axis):
    top = numpy.max(a, axis=axis, keepdims=True)
    top = numpy.where(numpy.isfinite(top), top, 0.0)
    return numpy.squeeze(top, axis=axis) + numpy.log(numpy.sum(numpy.exp(a - top), axis=axis))
