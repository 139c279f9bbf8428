"""How the objective handles the discrete z_pres: one entry per estimator, everything it owns in one place.

z_what and z_where are reparameterised (air.guide); z_pres is discrete, and that is where AIR's estimators
differ. Each entry of ESTIMATORS holds

- noise(rng, config, batch_size): the estimator's own noise for z_pres, from its own stream ("noise/pres",
  air.streams), so the other latents' noise never depends on which estimator runs;
- terms(params, post, images, noise, config, schedule): the negative ELBO's terms summed over the batch (recon,
  kl_what, kl_pres, and kl_where for a stochastic z_where), plus any surrogate whose value is zero-mean but whose
  gradient the estimator needs (objective.objective_total adds it); `schedule` (air.schedules.Schedule) holds
  what changes during training, of which each reads what it needs (the count prior; the relaxed one its
  temperature; REINFORCE its signal normaliser);
- init_params(rng, config, dtype): parameters of its own (REINFORCE's baseline), from its own stream;
- rates: {parameter group: Config field of its Adam learning rate} for groups that do not use config.lr;
- update_stats(stats, terms, config) and normaliser(config, stats): running statistics kept by the trainer
  across steps (NVIL's signal mean and sd), and what of them the next step's Schedule carries (its `signal`).

Adding an estimator is a new entry here and a new value of Config's `pres_estimator`, nothing else.
"""
import dataclasses
import math

import autograd.numpy as np
import numpy
from autograd.tracer import getval

from air.density import prefix_sse, what_kl_twice, where_kl
from air.generative import compose, gated_scene, negative_log_likelihood, prior_count_probs, step_canvases
from air.guide import count_log_probs, presence_prob
from air.nn import he_normal, mlp, small_normal


@dataclasses.dataclass(frozen=True)
class Estimator:
    name: str
    terms: object
    noise: object = lambda rng, config, batch_size: {}
    init_params: object = lambda rng, config, dtype: {}
    rates: dict = dataclasses.field(default_factory=dict)
    update_stats: object = lambda stats, terms, config: stats
    normaliser: object = lambda config, stats: None


# --- relaxed: the binary Concrete / Gumbel-sigmoid (the seed's) ---------------------------------------------------


def presence_uniforms(rng, config, batch_size):
    """Uniforms (B, T) for z_pres, kept off 0 and 1 (as the seed does), so that logistic noise made of them stays
    finite: the relaxed estimator's logistic noise and REINFORCE's samples both come from these, so two runs of
    one seed that differ in their estimator share their presence noise."""
    return rng.uniform(1e-6, 1.0 - 1e-6, size=(batch_size, config.max_steps))


def _logistic_noise(rng, config, batch_size):
    uniforms = presence_uniforms(rng, config, batch_size)
    return {"gumbel": (numpy.log(uniforms) - numpy.log1p(-uniforms)).astype(config.dtype)}


def relaxed_gates(logit, noise, temperature):
    """Gates g_t = z_pres_1 ... z_pres_t (B, T) with z_pres = sigmoid(x), x = (logit + noise) / temperature
    (Maddison et al. 2017, Jang et al. 2017)."""
    # exp(cumsum(log z_pres)), which is stable where a z_pres underflows, and log sigmoid(x) = -softplus(-x).
    softplus_neg_x = np.logaddexp(0.0, (logit + noise["gumbel"]) / -temperature)
    return np.exp(-np.cumsum(softplus_neg_x, axis=1))


def prior_probs(config, schedule):
    """The schedule's per-step presence prior as an array of the run's dtype."""
    return numpy.asarray(schedule.pres_prior, dtype=config.dtype)


def _relaxed_terms(params, post, images, noise, config, schedule):
    """The seed's terms: squared error of the relaxed-gated scene, z_what KL of every step, z_pres KL of every
    step as the seed states it (or its reverse, config.pres_kl)."""
    prior = prior_probs(config, schedule)
    error = gated_scene(params, config, post, relaxed_gates(post["pres_logit"], noise, schedule.temperature)) - images
    mean, logvar, logit = post["what_mean"], post["what_logvar"], post["pres_logit"]
    kl_what = 0.5 * np.sum(what_kl_twice(mean, logvar))
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
        recon = np.sum(negative_log_likelihood(np.sum(error * error, axis=(1, 2)), config))
    terms = {"recon": recon, "kl_what": kl_what, "kl_pres": kl_pres}
    if config.z_where == "stochastic":
        terms["kl_where"] = np.sum(where_kl(post["where_location"], post["where_logsd"], config))
    return terms


# --- enumerate: the T + 1 counts summed out exactly --------------------------------------------------------------


def _enumerated_terms(params, post, images, noise, config, schedule):
    """The terms with the count summed out exactly instead of relaxed.

    With cumulative gating a scene explained by the first n steps has one of only T + 1 presence patterns,
    so E_q(n) of the reconstruction error is a sum of T + 1 terms, each a partial sum of the same rendered
    steps (as in SuPAIR, Stelzner et al. 2019): z_pres needs no sampling, no relaxation and no score function,
    and its gradient has no variance. z_what is still sampled, once, shared by every n.
    """
    sse = prefix_sse(params, config, post, images)  # (B, T + 1)
    terms, q_count = _count_kl_terms(post, config, prior_probs(config, schedule))
    terms["recon"] = np.sum(q_count * negative_log_likelihood(sse, config))
    return terms


def _count_kl_terms(post, config, prior):
    """The KL terms shared by the estimators that score the count exactly: the count's KL over n = 0..T against
    the prior p(n) that the per-step prior induces, and each step's z_what (and z_where) KL weighted by the
    probability that the step is present. Returns (terms, q(n) (B, T + 1))."""
    mean, logvar = post["what_mean"], post["what_logvar"]
    log_q_count, log_present = count_log_probs(post["pres_logit"], config.pres_floor)
    q_count = np.exp(log_q_count)
    log_p_count = numpy.log(prior_count_probs(prior)).astype(config.dtype)
    kl_what_steps = np.sum(what_kl_twice(mean, logvar), axis=2)  # (B, T), twice the KL
    present = np.exp(log_present)
    terms = {"kl_what": 0.5 * np.sum(present * kl_what_steps),
             "kl_pres": np.sum(q_count * (log_q_count - log_p_count))}
    if config.z_where == "stochastic":
        terms["kl_where"] = np.sum(present * where_kl(post["where_location"], post["where_logsd"], config))
    return terms, q_count


# --- reinforce: exactly binary samples, the score function with NVIL's baseline ----------------------------------


def _reinforce_noise(rng, config, batch_size):
    return {"pres": presence_uniforms(rng, config, batch_size).astype(config.dtype)}


def _baseline_params(rng, config, dtype):
    """NVIL's baseline b(x): an MLP on the image predicting the reconstruction cost."""
    return {"baseline": [he_normal(rng, config.canvas_size ** 2, config.baseline_hidden, dtype),
                         small_normal(rng, config.baseline_hidden, 1, dtype)]}


def _reinforce_terms(params, post, images, noise, config, schedule):
    """The terms with exactly binary z_pres samples and a score-function gradient (NVIL, Mnih & Gregor 2014).

    z_pres_t = [u_t < q_t] with the uniforms noise["pres"], gated cumulatively, so the scene holds the first n
    steps, n ~ q(n). The reconstruction term is that sample's; its gradient w.r.t. the presence logits comes
    from the surrogate (c - b(x)) log q(n), with c the sample's weighted reconstruction cost and b(x) a
    learned, data-dependent baseline, both held constant there (autograd's getval): the surrogate's
    gradient is the score-function estimate, unbiased for any baseline. The baseline (params["baseline"],
    its own learning rate) regresses c by squared error on the image. As in Kosiorek's analytic mode, the
    count KL is exact over n = 0..T and the z_what KL is weighted by each step's presence probability, so
    only the reconstruction needs the score function. With schedule.signal = (mean, sd) the signal is centred and
    divided by max(1, sd) (NVIL, Sec. 3.3): a constant shift is one more baseline and a positive scale only
    rescales the step, so the direction stays unbiased. The batch's raw signal mean and variance come back as
    "signal_mean" and "signal_var" (plain numbers) for the running statistics.
    """
    b, t, size = images.shape[0], config.max_steps, config.canvas_size
    canvases = step_canvases(params, config, post)
    logit = post["pres_logit"]
    present = numpy.cumprod(noise["pres"] < presence_prob(config, getval(logit)), axis=1)  # (B, T) binary
    count = present.sum(axis=1)
    error = compose(present.astype(numpy.result_type(getval(canvases))), canvases, config.composition) - images
    cost = config.recon_weight * negative_log_likelihood(np.sum(error * error, axis=(1, 2)), config)  # (B,)

    terms, _ = _count_kl_terms(post, config, prior_probs(config, schedule))
    log_q_count, _ = count_log_probs(logit, config.pres_floor)
    sampled = numpy.arange(t + 1) == count[:, None]  # one-hot of each scene's count
    log_q_sample = np.sum(log_q_count * sampled, axis=1)
    baseline = mlp(params["baseline"], images.reshape(b, size * size)).reshape(b)
    raw = getval(cost) - getval(baseline)
    stats = schedule.signal
    signal = raw if stats is None else (raw - stats[0]) / max(1.0, stats[1])
    surrogate = np.sum(signal * log_q_sample) + np.sum((getval(cost) - baseline) ** 2)
    terms.update(recon=np.sum(cost) / config.recon_weight, surrogate=surrogate,
                 signal_mean=float(numpy.mean(raw)), signal_var=float(numpy.var(raw)))
    return terms


def running_signal_stats(stats, terms, config):
    """NVIL's running (mean, sd) of REINFORCE's learning signal, updated with this batch's (decay
    config.signal_decay); the first batch sets them."""
    if stats is None:
        return (terms["signal_mean"], math.sqrt(terms["signal_var"]))
    decay = config.signal_decay
    mean = decay * stats[0] + (1 - decay) * terms["signal_mean"]
    var = decay * stats[1] ** 2 + (1 - decay) * terms["signal_var"]
    return (mean, math.sqrt(var))


def signal_normaliser(config, stats):
    """The (shift, scale) REINFORCE's signal is normalised by, from the running stats; None for the raw signal."""
    if stats is None or config.signal_norm == "none":
        return None
    return stats if config.signal_norm == "running" else (stats[0], 1.0)  # "center": shift only


ESTIMATORS = {
    "relaxed": Estimator("relaxed", terms=_relaxed_terms, noise=_logistic_noise),
    "enumerate": Estimator("enumerate", terms=_enumerated_terms),
    "reinforce": Estimator("reinforce", terms=_reinforce_terms, noise=_reinforce_noise,
                           init_params=_baseline_params, rates={"baseline": "baseline_lr"},
                           update_stats=running_signal_stats, normaliser=signal_normaliser),
}


def estimator(config):
    """The entry of config.pres_estimator."""
    return ESTIMATORS[config.pres_estimator]
