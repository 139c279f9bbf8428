"""Everything that changes during training, as a function of the step: the learning rate's factor, the
Gumbel-sigmoid temperature, the KL warm-up and the count prior. A run at step s of S is fully described by
its Config and (s, S), so a resumed run follows the same schedules as an uninterrupted one.
"""
import math


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


def at_step(config, step, total_steps):
    """Every schedule's value at `step` of `total_steps`, as the training loop and the figures use them."""
    return {"temperature": temperature(config, step, total_steps), "lr_factor": lr_factor(config, step, total_steps),
            "kl_scale": kl_scale(config, step), "pres_prior": pres_prior(config, step, total_steps)}
