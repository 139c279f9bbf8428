"""The negative ELBO, as a deterministic function of its noise: the seed's, and the paper's variants.

    L = recon_weight * sum_pixels (recon - x)^2                       (= 1024 * MSE on a 32x32 canvas)
      + kl_what_weight * sum_t KL( N(mu_t, exp(lv_t)) || N(0, I) )
      + kl_pres_weight * sum_t KL( Bern(sigmoid(logit_t)) || Bern(p_t) )

averaged over the batch. z_pres_t = sigmoid((logit_t + g_t) / temperature) with logistic noise g_t
(the binary Concrete / Gumbel-sigmoid relaxation, Maddison et al. 2017, Jang et al. 2017), and step t
is gated by z_pres_1 ... z_pres_t. Switches (air.config) replace the relaxation by an exact sum over the
T + 1 counts or by REINFORCE with an NVIL baseline, the priors and likelihood by the paper's, and add a
stochastic z_where. All randomness comes in through `noise`, drawn outside by `sample_noise`, so `loss`
can be checked against finite differences.
"""
import math

import autograd.numpy as np
import numpy

from autograd.tracer import getval

from air.model import (compose, count_log_probs, encode, prefix_scenes, presence_prob, reconstruct, render,
                       sample_where, sequential_steps, where_kl)
from air.nn import mlp


def sample_noise(rng, config, batch_size):
    """All randomness of one loss evaluation: what (B, T, D) standard normal, gumbel (B, T) logistic."""
    dtype = numpy.dtype(config.dtype)
    t, d = config.max_steps, config.what_dim
    # Uniforms kept off 0 and 1 (as the seed does) so the logistic noise stays finite.
    u = rng.uniform(1e-6, 1.0 - 1e-6, size=(batch_size, t))
    noise = {
        "what": rng.standard_normal((batch_size, t, d)).astype(dtype),
        "gumbel": (numpy.log(u) - numpy.log1p(-u)).astype(dtype),
    }
    if config.pres_estimator == "reinforce":  # drawn only then, so the other estimators' streams are unchanged
        noise["pres"] = rng.uniform(size=(batch_size, t)).astype(dtype)
    if config.z_where == "stochastic":
        noise["where"] = rng.standard_normal((batch_size, t, 3)).astype(dtype)
    return noise


def elbo_terms(params, images, noise, config, temperature, pres_prior=None):
    """Batch means of the three terms of the negative ELBO: a dict with recon, kl_what, kl_pres."""
    b = images.shape[0]
    sums = batch_sums(params, images, noise, config, temperature, pres_prior)
    return {name: sums[name] / b for name in ("recon", "kl_what", "kl_pres", "kl_where") if name in sums}


def combine(terms, config, kl_scale=1.0):
    """The weighted sum of elbo_terms (the negative ELBO; a score-function surrogate is added by `loss`);
    kl_scale multiplies both KL weights (the seed's KL warm-up)."""
    # Weights multiplied out as Python floats first: two fewer operations for autograd to record.
    total = (config.recon_weight * terms["recon"] + (kl_scale * config.kl_what_weight) * terms["kl_what"]
             + (kl_scale * config.kl_pres_weight) * terms["kl_pres"])
    if "kl_where" in terms:  # a stochastic z_where's KL shares z_what's weight
        total = total + (kl_scale * config.kl_what_weight) * terms["kl_where"]
    return total


def loss(params, images, noise, config, temperature, kl_scale=1.0, pres_prior=None, signal_stats=None):
    """The batch-mean negative ELBO (a scalar), deterministic in all its arguments.

    pres_prior (one probability per step) replaces config.pres_prior, for a prior annealed during training
    (see prior_schedule); signal_stats = (mean, sd) normalises REINFORCE's learning signal (NVIL's running
    centring and scaling, kept by the trainer).
    """
    # combine() is linear, so the batch mean is taken once, after it (two fewer recorded operations).
    sums = batch_sums(params, images, noise, config, temperature, pres_prior, signal_stats)
    return objective_total(sums, config, kl_scale) / images.shape[0]


def objective_total(sums, config, kl_scale=1.0):
    """What training minimises: the negative ELBO, plus, for REINFORCE, the score-function surrogate and the
    baseline's regression loss (both zero-valued in expectation terms, present only for their gradients)."""
    total = combine(sums, config, kl_scale)
    return total + sums["surrogate"] if "surrogate" in sums else total


def prior_schedule(config, step, total_steps):
    """The per-step presence prior at training step `step`: config.pres_prior for the "independent" prior;
    for the "geometric" one, rho for every step (p(n) proportional to rho^n), rho annealed log-linearly from
    prior_start to prior_end over prior_anneal of training, after holding prior_start for the first prior_hold
    (the paper anneals the success probability towards a very small value, Eslami et al. 2016 via Pyro's
    tutorial; Kosiorek's reproduction holds it first, so that the decoder learns to draw digits before
    objects become expensive)."""
    if config.count_prior == "independent":
        return tuple(config.pres_prior)
    frac = min(1.0, max(0.0, step - config.prior_hold * total_steps) / max(1.0, config.prior_anneal * total_steps))
    rho = math.exp(math.log(config.prior_start) + frac * (math.log(config.prior_end) - math.log(config.prior_start)))
    return (rho,) * config.max_steps


def batch_sums(params, images, noise, config, temperature, pres_prior=None, signal_stats=None):
    """The terms of the negative ELBO summed over the batch: a dict with recon, kl_what, kl_pres, and kl_where
    for a stochastic z_where; with REINFORCE also "surrogate", the score-function term (objective_total).

    config.inference picks the network (global heads or an LSTM over steps), config.pres_estimator how z_pres
    is handled (relaxed, enumerated, or sampled with REINFORCE). The seed's path (global, relaxed) is written
    for the number of operations autograd records (a few microseconds each, more than the arithmetic on
    these small arrays), with every rewrite exact in real arithmetic.
    """
    prior = numpy.asarray(config.pres_prior if pres_prior is None else pres_prior, dtype=config.dtype)
    if config.inference != "global":
        steps = sequential_steps(params, config, images, noise["what"], noise.get("where"))
        if config.z_where == "stochastic":
            steps["kl_where_steps"] = where_kl(steps["where_location"], steps["where_logsd"], config)
        if config.pres_estimator == "enumerate":
            return _enumerated_terms(steps, steps["canvases"], images, config, prior)
        if config.pres_estimator == "reinforce":
            return _reinforce_terms(params, steps, steps["canvases"], images, noise, config, prior, signal_stats)
        gates = _relaxed_gates(steps["pres_logit"], noise, temperature)
        error = compose(gates, steps["canvases"], config.composition) - images
        return _relaxed_terms(steps, error, config, prior)
    post = encode(params, config, images)
    post["z_what"] = post["what_mean"] + np.exp(0.5 * post["what_logvar"]) * noise["what"]
    log_scale, shift = post["log_scale"], post["shift"]
    if config.z_where == "stochastic":
        location = np.concatenate([log_scale[..., None], shift], axis=-1)
        post["kl_where_steps"] = where_kl(location, post["where_logsd"], config)
        log_scale, shift = sample_where(post, config, noise["where"])
    if config.pres_estimator != "relaxed":
        canvases = render(params, config, post["z_what"], log_scale, shift)
        if config.pres_estimator == "enumerate":
            return _enumerated_terms(post, canvases, images, config, prior)
        return _reinforce_terms(params, post, canvases, images, noise, config, prior, signal_stats)
    gates = _relaxed_gates(post["pres_logit"], noise, temperature)
    if config.composition == "max":
        error = compose(gates, render(params, config, post["z_what"], log_scale, shift), "max") - images
    else:
        error = reconstruct(params, config, gates, post["z_what"], log_scale, shift) - images
    return _relaxed_terms(post, error, config, prior)


def _negative_log_likelihood(sse, config):
    """-log p(x | z) from the squared error: the seed's 'sse' energy (the squared error itself, weighted by
    recon_weight in combine), or a Gaussian with standard deviation likelihood_sd per pixel."""
    if config.likelihood == "sse":
        return sse
    var = config.likelihood_sd ** 2
    return sse / (2.0 * var) + config.canvas_size ** 2 * 0.5 * math.log(2.0 * math.pi * var)


def _relaxed_gates(logit, noise, temperature):
    """Gates g_t = z_pres_1 ... z_pres_t (B, T) with z_pres = sigmoid(x), x = (logit + noise) / temperature."""
    # exp(cumsum(log z_pres)), which is stable where a z_pres underflows, and log sigmoid(x) = -softplus(-x).
    softplus_neg_x = np.logaddexp(0.0, (logit + noise["gumbel"]) / -temperature)
    return np.exp(-np.cumsum(softplus_neg_x, axis=1))


def _relaxed_terms(post, error, config, prior):
    """The seed's terms: squared error of the gated scene, z_what KL of every step, z_pres KL of every step."""
    mean, logvar, logit = post["what_mean"], post["what_logvar"], post["pres_logit"]
    kl_what = 0.5 * np.sum(mean * mean + np.exp(logvar) - logvar - 1.0)
    softplus = np.logaddexp(0.0, logit)  # -log(1 - q), with q = sigmoid(logit)
    if config.pres_kl == "forward":
        # KL(Bern(q) || Bern(p)) = q log(q / p) + (1 - q) log((1 - q) / (1 - p)). Since log(1 - q) = -softplus(logit)
        # and log q - log(1 - q) = logit, it is q (logit - logit(p)) - softplus(logit) - log(1 - p): eight recorded
        # operations instead of fifteen, and stable for large |logit|.
        q = np.exp(logit - softplus)
        kl_pres = (np.sum(q * (logit - (numpy.log(prior) - numpy.log1p(-prior))) - softplus)
                   - logit.shape[0] * numpy.sum(numpy.log1p(-prior)))
    else:
        # KL(Bern(p) || Bern(q)) = -p log q - (1 - p) log(1 - q) - H(p) = softplus(logit) - p logit - H(p). Its
        # gradient w.r.t. the logit is q - p: the gradient the seed's hand-written backward applies (its text
        # states the forward KL, whose gradient is q (1 - q) (logit - logit(p))).
        entropy = -numpy.sum(prior * numpy.log(prior) + (1 - prior) * numpy.log1p(-prior))
        kl_pres = np.sum(softplus - prior * logit) - logit.shape[0] * entropy
    recon = np.sum(error * error)
    if config.likelihood != "sse":
        recon = np.sum(_negative_log_likelihood(np.sum(error * error, axis=(1, 2)), config))
    terms = {"recon": recon, "kl_what": kl_what, "kl_pres": kl_pres}
    if "kl_where_steps" in post:
        terms["kl_where"] = np.sum(post["kl_where_steps"])
    return terms


def _enumerated_terms(post, canvases, images, config, prior, recon=True):
    """The terms with the count summed out exactly instead of relaxed (config.pres_estimator "enumerate").

    With cumulative gating a scene explained by the first n steps has one of only T + 1 presence patterns,
    so E_q(n) of the reconstruction error is a sum of T + 1 terms, each a partial sum of the same rendered
    steps (canvases (B, T, H, W), ungated; as in SuPAIR, Stelzner et al. 2019): z_pres needs no sampling,
    no relaxation and no score function, and its gradient has no variance. z_what is still sampled, once,
    shared by every n. The KL of the count is exact over n = 0..T against the prior p(n) that
    config.pres_prior induces, and each step's z_what KL is weighted by the probability that the step is
    present.
    """
    b, t, size = images.shape[0], config.max_steps, config.canvas_size
    mean, logvar = post["what_mean"], post["what_logvar"]
    log_q_count, log_present = count_log_probs(post["pres_logit"], config.pres_floor)
    q_count = np.exp(log_q_count)
    log_p_count = numpy.log(prior_count_probs(prior)).astype(config.dtype)
    kl_what_steps = np.sum(mean * mean + np.exp(logvar) - logvar - 1.0, axis=2)  # (B, T), twice the KL
    present = np.exp(log_present)
    terms = {"kl_what": 0.5 * np.sum(present * kl_what_steps),
             "kl_pres": np.sum(q_count * (log_q_count - log_p_count))}
    if "kl_where_steps" in post:
        terms["kl_where"] = np.sum(present * post["kl_where_steps"])
    if recon:
        # error[:, n - 1] = (first n steps) - x, for n = 1..T; with n = 0 the error is the image itself.
        scenes = prefix_scenes(canvases.reshape(b, t, size * size), config.composition)
        error = scenes - images.reshape(b, 1, size * size)
        sse = np.concatenate([numpy.sum(numpy.square(getval(images)), axis=(1, 2)).reshape(b, 1),
                              np.sum(error * error, axis=2)], axis=1)  # (B, T + 1)
        terms["recon"] = np.sum(q_count * _negative_log_likelihood(sse, config))
    return terms


def _reinforce_terms(params, post, canvases, images, noise, config, prior, signal_stats=None):
    """The terms with exactly binary z_pres samples and a score-function gradient (NVIL, Mnih & Gregor 2014).

    z_pres_t = [u_t < q_t] with the uniforms noise["pres"], gated cumulatively, so the scene holds the first n
    steps, n ~ q(n). The reconstruction term is that sample's; its gradient w.r.t. the presence logits comes
    from the surrogate (c - b(x)) log q(n), with c the sample's weighted reconstruction cost and b(x) a
    learned, data-dependent baseline, both held constant there (autograd's getval): the surrogate's
    gradient is the score-function estimate, unbiased for any baseline. The baseline (params["baseline"],
    its own learning rate) regresses c by squared error on the image. As in Kosiorek's analytic mode, the
    count KL is exact over n = 0..T and the z_what KL is weighted by each step's presence probability, so
    only the reconstruction needs the score function. With signal_stats = (mean, sd), the signal is centred
    and divided by max(1, sd) (NVIL, Mnih & Gregor 2014, Sec. 3.3): a constant shift is one more baseline
    and a positive scale only rescales the step, so the direction stays unbiased. The batch's raw signal
    mean and variance come back as "signal_mean" and "signal_var" (plain numbers) for the running stats.
    """
    b, t, size = images.shape[0], config.max_steps, config.canvas_size
    logit = post["pres_logit"]
    present = numpy.cumprod(noise["pres"] < presence_prob(config, getval(logit)), axis=1)  # (B, T) binary
    count = present.sum(axis=1)
    error = compose(present.astype(numpy.result_type(getval(canvases))), canvases, config.composition) - images
    cost = config.recon_weight * _negative_log_likelihood(np.sum(error * error, axis=(1, 2)), config)  # (B,)

    terms = _enumerated_terms(post, None, images, config, prior, recon=False)
    log_q_count, _ = count_log_probs(logit, config.pres_floor)
    sampled = numpy.arange(t + 1) == count[:, None]  # one-hot of each scene's count
    log_q_sample = np.sum(log_q_count * sampled, axis=1)
    baseline = mlp(params["baseline"], images.reshape(b, size * size)).reshape(b)
    raw = getval(cost) - getval(baseline)
    signal = raw if signal_stats is None else (raw - signal_stats[0]) / max(1.0, signal_stats[1])
    surrogate = np.sum(signal * log_q_sample) + np.sum((getval(cost) - baseline) ** 2)
    terms.update(recon=np.sum(cost) / config.recon_weight, surrogate=surrogate,
                 signal_mean=float(numpy.mean(raw)), signal_var=float(numpy.var(raw)))
    return terms


def prior_count_probs(pres_prior):
    """p(n) for n = 0..T under per-step presence probabilities pres_prior (T,) with cumulative gating:
    p(n) = p_1 ... p_n (1 - p_{n+1}), the last factor absent for n = T."""
    prior = numpy.asarray(pres_prior, dtype=numpy.float64)
    at_least = numpy.concatenate([[1.0], numpy.cumprod(prior)])  # P(n >= k), k = 0..T
    return at_least * numpy.concatenate([1.0 - prior, [1.0]])
