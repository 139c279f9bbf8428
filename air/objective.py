"""The negative ELBO of AIR, as a deterministic function of its noise.

For a batch of scenes x, with the guide q(z | x) (air.guide) and the generative model p(x | z) p(z)
(air.generative), the loss is the batch mean of

    L(x) = recon_weight * E_q[-log p(x | z)]
         + kl_what_weight * (KL(q(z_what) || N(0, I)) + KL(q(z_where) || p(z_where)))
         + kl_pres_weight * KL(q(z_pres) || p(z_pres)),

the z_where term only for a stochastic z_where. The seed's ELBO is the case recon_weight = 1 with the squared
error as -log p(x | z) (1024 * MSE on its 32 x 32 scenes), weights 0.05 and 0.3, and the per-step presence
priors (0.5, 0.4, 0.2). How the expectation over the discrete z_pres is taken, and so how the KL terms are
weighted, is the estimator's (air.estimators: relaxed, enumerated, or REINFORCE with NVIL). All randomness comes
in through `noise`, drawn outside by `sample_noise`, so `loss` can be checked against finite differences.
"""
import autograd.numpy as np
import numpy
from autograd.tracer import getval

from air.estimators import estimator
from air.guide import guide
from air.schedules import require
from air.streams import named

TERMS = ("recon", "kl_what", "kl_pres", "kl_where")  # the negative ELBO's terms, as elbo_terms names them


def sample_noise(rng, config, batch_size):
    """All randomness of one loss evaluation, a dict of arrays: "what" (B, T, D) standard normal, the
    estimator's own (relaxed: "gumbel" (B, T) logistic; REINFORCE: "pres" (B, T) uniform), and "where" (B, T, 3)
    standard normal for a stochastic z_where. Each comes from its own stream (air.streams: "noise/what",
    "noise/pres", "noise/where"), derived from one draw of `rng`, so a switch that adds a kind of noise leaves
    the others' values as they were."""
    dtype = numpy.dtype(config.dtype)
    t, d = config.max_steps, config.what_dim
    stream = named(rng)
    noise = {"what": stream("noise/what").standard_normal((batch_size, t, d)).astype(dtype)}
    noise.update(estimator(config).noise(stream("noise/pres"), config, batch_size))
    if config.z_where == "stochastic":
        noise["where"] = stream("noise/where").standard_normal((batch_size, t, 3)).astype(dtype)
    return noise


def batch_sums(params, images, noise, config, schedule=None):
    """The terms of the negative ELBO summed over the batch (a dict with TERMS' names; kl_where only for a
    stochastic z_where), plus whatever else the estimator returns (REINFORCE: its "surrogate" and signal
    statistics), at `schedule` (air.schedules.Schedule; None: the end of training)."""
    schedule = require(schedule, config)
    post = guide(params, config, images, noise)
    return estimator(config).terms(params, post, images, noise, config, schedule)


def combine(terms, config, kl_scale=1.0):
    """The weighted sum of the terms (the negative ELBO); kl_scale multiplies both KL weights (the seed's KL
    warm-up). A stochastic z_where's KL shares z_what's weight."""
    # Weights multiplied out as Python floats first: two fewer operations for autograd to record.
    total = (config.recon_weight * terms["recon"] + (kl_scale * config.kl_what_weight) * terms["kl_what"]
             + (kl_scale * config.kl_pres_weight) * terms["kl_pres"])
    if "kl_where" in terms:
        total = total + (kl_scale * config.kl_what_weight) * terms["kl_where"]
    return total


def objective_total(sums, config, kl_scale=1.0):
    """What training minimises: the negative ELBO, plus an estimator's surrogate if it has one (REINFORCE's
    score-function term and baseline regression, present only for their gradients)."""
    total = combine(sums, config, kl_scale)
    return total + sums["surrogate"] if "surrogate" in sums else total


def loss_and_terms(params, images, noise, config, schedule=None):
    """(loss, terms): the batch-mean objective, differentiable, and for logging its parts as plain numbers:
    "loss" (the negative ELBO, without any surrogate), each term of TERMS the run has, and the estimator's
    statistics ("signal_mean", "signal_var"), all batch means."""
    schedule = require(schedule, config)
    b = images.shape[0]
    sums = batch_sums(params, images, noise, config, schedule)
    total = objective_total(sums, config, schedule.kl_scale) / b  # linear in the sums: one batch mean, after them
    values = {k: getval(v) for k, v in sums.items()}
    terms = {"loss": combine(values, config, schedule.kl_scale) / b,
             **{k: values[k] / b for k in TERMS if k in values}}
    terms.update({k: v for k, v in values.items() if k.startswith("signal_")})  # already per-scene statistics
    return total, terms


def loss(params, images, noise, config, schedule=None):
    """The batch-mean objective (a scalar), deterministic in all its arguments: the negative ELBO, plus for
    REINFORCE its surrogate, at `schedule` (air.schedules.at_step(config, step, total_steps): the temperature,
    the KL warm-up, the annealed count prior and REINFORCE's signal normaliser; None: the last training step's)."""
    return loss_and_terms(params, images, noise, config, schedule)[0]


def elbo_terms(params, images, noise, config, schedule=None):
    """Batch means of the negative ELBO's terms: a dict with recon, kl_what, kl_pres, and kl_where for a
    stochastic z_where (combine weights them into the negative ELBO), at `schedule` (None: the end of training)."""
    b = images.shape[0]
    sums = batch_sums(params, images, noise, config, schedule)
    return {name: sums[name] / b for name in TERMS if name in sums}

