"""Everything that changes during training, as one value: the learning rate's factor, the Gumbel-sigmoid
temperature, the KL warm-up and the count prior, as functions of the step, and the estimator's running
statistics (NVIL's signal normaliser), which the trainer carries. `at_step(config, step, total_steps, stats)`
makes that value, a Schedule, as JAX's optimisers read an update from the step: the objective (air.loss) takes it
whole and each estimator reads what it needs. A run at step s of S is fully described by its Config, (s, S) and
its running statistics, so a resumed run follows the same schedules as an uninterrupted one.
"""
import dataclasses
import math

from air.estimators import estimator


def steps_per_epoch(config):
    return config.n_train // config.batch_size  # the seed drops the last partial batch


def temperature(config, step, total_steps):
    """The Gumbel-sigmoid temperature at `step`: linear from temp_start (first step) to temp_end (last)."""
    frac = step / max(1, total_steps - 1)
    return config.temp_start + (config.temp_end - config.temp_start) * frac


def lr_factor(config, step, total_steps):
    """The learning rate's multiplier at `step`: 1, or a cosine from 1 down to config.lr_final at the last step."""
    if config.lr_schedule == "constant":
        return 1.0
    frac = step / max(1, total_steps - 1)
    return config.lr_final + (1.0 - config.lr_final) * 0.5 * (1.0 + math.cos(math.pi * frac))


def kl_scale(config, step):
    """The seed's KL warm-up: both KL weights scaled by (epoch + 1) / kl_warmup_epochs until it reaches 1, for
    the epoch that `step` falls in."""
    epoch = step // steps_per_epoch(config)
    return 1.0 if config.kl_warmup_epochs == 0 else min(1.0, (epoch + 1) / config.kl_warmup_epochs)


def pres_prior(config, step, total_steps):
    """The per-step presence prior at `step`: config.pres_prior for the "independent" prior; for the
    "geometric" one, rho for every step (p(n) proportional to rho^n), rho annealed log-linearly from
    prior_start to prior_end over prior_anneal of training, after holding prior_start for the first prior_hold
    (the paper anneals the success probability towards a very small value, Eslami et al. 2016 via Pyro's
    tutorial; Kosiorek's reproduction holds it first, so that the decoder learns to draw digits before
    objects become expensive)."""
    if config.count_prior == "independent":
        return tuple(config.pres_prior)
    frac = min(1.0, max(0.0, step - config.prior_hold * total_steps) / max(1.0, config.prior_anneal * total_steps))
    rho = math.exp(math.log(config.prior_start) + frac * (math.log(config.prior_end) - math.log(config.prior_start)))
    return (rho,) * config.max_steps


@dataclasses.dataclass(frozen=True)
class Schedule:
    """What the objective needs beyond the parameters, the images and the noise, at one training step.

    temperature: the relaxed estimator's Gumbel-sigmoid temperature; kl_scale: the factor on both KL weights (the
    seed's warm-up); pres_prior: the per-step presence prior (T probabilities; annealed for the geometric prior);
    signal: REINFORCE's (shift, scale) for its learning signal, from its running statistics, or None for the raw
    signal; lr_factor: the learning rate's multiplier (the optimiser's, not the objective's).
    """

    temperature: float
    kl_scale: float
    pres_prior: tuple
    signal: tuple = None
    lr_factor: float = 1.0


def at_step(config, step, total_steps, stats=None):
    """The Schedule at `step` of `total_steps`, with the estimator's running statistics `stats` (the trainer's:
    REINFORCE with NVIL keeps its signal's mean and sd) turned into what its objective reads."""
    return Schedule(temperature=temperature(config, step, total_steps), kl_scale=kl_scale(config, step),
                    pres_prior=pres_prior(config, step, total_steps), signal=estimator(config).normaliser(config, stats),
                    lr_factor=lr_factor(config, step, total_steps))


def at_end(config):
    """The Schedule of the last training step, the model as training leaves it: the default wherever an
    objective is evaluated outside training (air.loss without a schedule, the gradient checks, experiments)."""
    total = config.n_epochs * steps_per_epoch(config)
    return at_step(config, total - 1, total)


def fixed(config, temperature=None, kl_scale=1.0, pres_prior=None, signal=None):
    """A Schedule given by hand, to evaluate the objective at chosen values: the temperature (default: the
    last step's), the KL factor, the presence prior (default: config.pres_prior) and REINFORCE's normaliser."""
    return Schedule(temperature=config.temp_end if temperature is None else temperature, kl_scale=kl_scale,
                    pres_prior=tuple(config.pres_prior if pres_prior is None else pres_prior), signal=signal)


def require(schedule, config):
    """`schedule`, or at_end(config) for None; TypeError, saying what to pass, for anything else (the loss took a
    bare temperature before it took a Schedule)."""
    if schedule is None:
        return at_end(config)
    if not isinstance(schedule, Schedule):
        raise TypeError(f"schedule must be an air.schedules.Schedule (air.schedules.at_step(config, step, "
                        f"total_steps)), or None for the end of training; got {schedule!r}")
    return schedule
