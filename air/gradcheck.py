"""autograd's gradient of the loss against central finite differences, per parameter group.

The loss is a deterministic function of the parameters once its noise is drawn (air.objective), so its
directional derivative along any direction v can be estimated by

    (L(theta + eps v) - L(theta - eps v)) / (2 eps),

whose error is O(eps^2) from truncation plus O(machine eps |L| / eps) from rounding: the V-shaped curve
that `step_size_curve` traces. Checks run in float64; a group is a top-level entry of the parameter dict
('encoder', 'decoder', 'heads', 'lstm', 'glimpse_encoder', 'baseline').

Two things make a naive check fail where autograd is right. At initialisation every bias is 0, so on an
empty scene every ReLU sits exactly on its kink, where a central difference sees half a slope: the check
point is therefore moved off the kinks by a small jitter. And with REINFORCE the loss is a surrogate whose
learning signal is held constant (autograd's getval), so its gradient is not the derivative of its
value: `problem` then differences the surrogate with the signal, the baseline's target and the sampled
counts frozen at the check point, written out here from the model's forward functions. Its baseline
regression (c - b(x))^2 is ~1e6 at the start and depends on the baseline's parameters only, so each group
differences just the part that depends on it: the rounding error of a 1e6 sum would swamp the others.
"""
import dataclasses

import autograd
import numpy as np

import autograd.numpy as anp

from air.guide import count_log_probs, guide, presence_prob
from air.model import init_params
from air.nn import mlp
from air.objective import batch_sums, combine, elbo_terms, loss, sample_noise
from air.schedules import Schedule
from air.schedules import pres_prior as prior_at
from air.tree import Layout

JITTER = 1e-3  # sd of the noise that moves the check point off the ReLU kinks of a zero-bias initialisation
SMALL_DERIVATIVE = 1e-4  # relative to its group's largest partial derivative (see check_gradients)


@dataclasses.dataclass(frozen=True)
class Check:
    group: str
    kind: str  # "direction" (a random unit vector over the group) or "coordinate" (one parameter)
    where: str  # the leaf path and index of a coordinate, or "random unit vector"
    analytic: float
    numeric: float
    rounding: float = 0.0  # the error the difference can carry from rounding alone (absolute)
    scale: float = 0.0  # the smallest derivative size errors are measured against (see check_gradients)
    step: float = 0.0  # the finite-difference step of this comparison

    @property
    def rel_error(self):
        """|analytic - numeric| relative to the larger of |analytic| + |numeric| and the scale."""
        return abs(self.analytic - self.numeric) / max(abs(self.analytic) + abs(self.numeric), self.scale, 1e-300)

    @property
    def within_rounding(self):
        """Whether the whole disagreement is no larger than the difference's own rounding error."""
        return abs(self.analytic - self.numeric) <= self.rounding

    def passes(self, tol):
        return self.rel_error <= tol or self.within_rounding


def problem(config, images, seed=0):
    """(f, g, theta, layout): f(flat, group) the float64 loss as a function of one flat parameter vector (the
    part of it that depends on `group`'s parameters), g its autograd gradient, at a jittered initial point
    with the noise fixed; images (B, H, W) is the batch. For REINFORCE, f is the surrogate with its signal
    frozen at theta (see the module's text), whose derivative g is."""
    config = dataclasses.replace(config, dtype="float64")
    rng = np.random.default_rng(seed)
    params = init_params(rng, config)
    noise = sample_noise(rng, config, len(images))
    images = np.asarray(images, np.float64)
    # A mid-range temperature, full KL weights and the count prior where training starts: every term is alive.
    schedule = Schedule(temperature=0.5, kl_scale=1.0, pres_prior=prior_at(config, 0, 1))
    layout = Layout(params)
    theta = layout.flatten(params)
    theta = theta + JITTER * rng.standard_normal(len(theta))

    def loss_of(flat, group=None):
        return loss(layout.unflatten(flat), images, noise, config, schedule)

    gradient = autograd.grad(loss_of)
    if config.pres_estimator != "reinforce":
        return loss_of, gradient, theta, layout
    return _frozen_surrogate(config, layout, theta, images, noise, schedule), gradient, theta, layout


def _frozen_surrogate(config, layout, theta, images, noise, schedule):
    """The REINFORCE loss with the sampled counts, the costs c and the baseline's values b(x) held at theta:
    ELBO(sample) + mean_i (c_i - b_i) log q(n_i) + mean_i (c_i - b(x_i))^2."""
    params = layout.unflatten(theta)
    b = len(images)
    logits = guide(params, config, images, noise)["pres_logit"]
    n = np.cumprod(noise["pres"] < presence_prob(config, logits), axis=1).sum(axis=1)
    onehot = np.arange(config.max_steps + 1) == n[:, None]
    scene_noise = lambda i: {k: v[i:i + 1] for k, v in noise.items()}
    cost = np.array([config.recon_weight * batch_sums(params, images[i:i + 1], scene_noise(i), config,
                                                      schedule)["recon"] for i in range(b)])
    signal = cost - mlp(params["baseline"], images.reshape(b, -1)).reshape(b)

    def surrogate(flat, group=None):
        p = layout.unflatten(flat)
        total = 0.0
        if group != "baseline":  # the ELBO and the score term, which the baseline's parameters do not enter
            elbo = combine(elbo_terms(p, images, noise, config, schedule), config)
            log_q_count = count_log_probs(guide(p, config, images, noise)["pres_logit"], config.pres_floor)[0]
            log_q = anp.sum(log_q_count * onehot, axis=1)
            total = elbo + anp.sum(signal * log_q) / b
        if group in (None, "baseline"):  # the baseline's regression, which only they enter
            baseline = mlp(p["baseline"], images.reshape(b, -1)).reshape(b)
            total = total + anp.sum((cost - baseline) ** 2) / b
        return total

    return surrogate


def group_slices(layout):
    """group -> [(leaf path, slice of the flat vector)] for each top-level parameter group."""
    groups, start = {}, 0
    for path, shape in zip(layout.paths, layout.shapes):
        size = int(np.prod(shape))
        groups.setdefault(path.split("/")[0], []).append((path, slice(start, start + size)))
        start += size
    return groups


def check_gradients(f, g, theta, layout, groups=None, eps=1e-5, n_directions=2, n_coordinates=3, seed=0, tol=1e-5):
    """[Check] for every group (all of them if groups is None): n_directions random unit directions over
    the group's parameters and n_coordinates single parameters drawn at random, each compared with the
    central difference of step eps. Raises ValueError naming an unknown group.

    The loss is only piecewise smooth in z_where (the bilinear sampler has a kink wherever a sample crosses
    a pixel centre), so a difference whose step straddles a kink is wrong, not autograd. A check that
    misses tol at step eps is therefore repeated at eps / 10 and eps / 100 (each ten times less likely to
    straddle one); it keeps the step that agreed best, and a wrong gradient disagrees at all three."""
    slices = group_slices(layout)
    groups = list(slices) if groups is None else list(groups)
    unknown = [g for g in groups if g not in slices]
    if unknown:
        raise ValueError(f"unknown parameter group {unknown[0]!r}; this model has {', '.join(slices)}")
    grad = g(theta)
    rng = np.random.default_rng(seed)
    checks = []
    for group in groups:
        index = np.concatenate([np.arange(s.start, s.stop) for _, s in slices[group]])
        # A partial derivative 1e4 times smaller than the group's largest is held to an absolute tolerance
        # of that size: there the difference's O(eps^2) truncation error, not autograd, sets the error.
        small = SMALL_DERIVATIVE * float(np.abs(grad[index]).max())
        directions = []
        for _ in range(n_directions):
            v = np.zeros_like(theta)
            v[index] = rng.standard_normal(len(index))
            norm = np.linalg.norm(v)
            directions.append(("direction", "random unit vector", v / norm, float(grad @ v) / norm))
        for i in rng.choice(index, size=min(n_coordinates, len(index)), replace=False):
            v = np.zeros_like(theta)
            v[i] = 1.0
            path, s = next((p, s) for p, s in slices[group] if s.start <= i < s.stop)
            directions.append(("coordinate", f"{path}[{i - s.start}]", v, float(grad[i])))
        for kind, where, v, analytic in directions:
            tries = []
            noise = rounding_noise(f, theta, v, analytic, group)
            for step in (eps, eps / 10, eps / 100):
                tries.append(Check(group, kind, where, analytic, central_difference(f, theta, v, step, group),
                                   2.0 * noise / step, small, step))
                if tries[-1].passes(tol):
                    break
            checks.append(next((c for c in tries if c.passes(tol)), min(tries, key=lambda c: c.rel_error)))
    return checks


def rounding_noise(f, theta, direction, analytic, group=None, steps=(1e-12, 2e-12, 3e-12)):
    """How much f's value scatters from rounding alone, measured: f at points 1e-12 apart along direction,
    less the change the derivative explains. A central difference of step eps carries about noise / eps;
    the sum of thousands of per-pixel terms scatters far more than a few ulps of |f|."""
    base = float(f(theta, group))
    scatter = [abs(float(f(theta + t * direction, group)) - base - t * analytic) for t in steps]
    return max(max(scatter), 4.0 * np.finfo(np.float64).eps * abs(base))


def central_difference(f, theta, direction, eps, group=None):
    return float((f(theta + eps * direction, group) - f(theta - eps * direction, group)) / (2.0 * eps))


def step_size_curve(f, g, theta, layout, steps, groups=None, seed=1):
    """{group: [relative error at each eps in steps]} of the directional derivative along one random unit
    direction per group: small steps drown in rounding, large ones in truncation (the V)."""
    slices = group_slices(layout)
    grad = g(theta)
    rng = np.random.default_rng(seed)
    curves = {}
    for group in (list(slices) if groups is None else groups):
        v = np.zeros_like(theta)
        index = np.concatenate([np.arange(s.start, s.stop) for _, s in slices[group]])
        v[index] = rng.standard_normal(len(index))
        v /= np.linalg.norm(v)
        analytic = float(grad @ v)
        curves[group] = [Check(group, "direction", "", analytic, central_difference(f, theta, v, eps, group)).rel_error
                         for eps in steps]
    return curves
