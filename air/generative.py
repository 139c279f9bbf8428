"""The generative model p(x | z) p(z) of AIR (Eslami et al., NIPS 2016, Sec. 2.1).

A scene holds n objects, n drawn from the count prior. Object t's appearance code z_what_t is decoded to a P x P
window (an MLP, or a small conv decoder), which the spatial transformer places on the H x W canvas at
z_where_t = (log s, tx, ty); the scene is the sum of the first n canvases (or their pixelwise maximum, with
composition="max"), and the pixels are Gaussian around it (or scored by the seed's squared error). With
cumulative gating step t contributes only while every earlier step is present, so a count n and the presence
pattern of the T steps are the same thing: the first n steps present, the rest absent.
"""
import math

import autograd.numpy as np
import numpy

from air.nn import conv3x3, he_normal, mlp, relu, sigmoid, upsample2
from air.transformer import compose_windows, window_to_image


def init_params(stream, config, dtype):
    """The generative model's parameters, from its own named stream (air.streams): 'decoder', the MLP z_what ->
    decoder_hidden -> P P, or with decoder="conv" {'dense': [z_what -> decoder_hidden, -> (P/4, P/4, C1)], 'conv':
    [3x3 C1 -> C2 at P/2, 3x3 C2 -> 1 at P]}, He-initialised. The last layer's bias is decoder_bias: a nearly
    dark window (sigmoid(-2) ~ 0.12) breaks the symmetry between present and absent, since a present step can
    only help by adding ink, so z_pres is pushed up exactly where there is ink."""
    rng = stream("generative/decoder")
    d, p, hidden = config.what_dim, config.window_size, config.decoder_hidden
    first = he_normal(rng, d, hidden, dtype)
    if config.decoder == "mlp":
        last = he_normal(rng, hidden, p * p, dtype)
        last["b"][:] = config.decoder_bias
        return {"decoder": [first, last]}
    grid, (c1, c2) = p // 4, config.decoder_channels
    dense = he_normal(rng, hidden, grid * grid * c1, dtype)
    conv = [he_normal(rng, 9 * c1, c2, dtype), he_normal(rng, 9 * c2, 1, dtype)]
    conv[1]["b"][:] = config.decoder_bias
    return {"decoder": {"dense": [first, dense], "conv": conv}}


def decoder_pixels(params, config, z_what):
    """The decoder's window pixels, before the sigmoid: z_what (N, D) -> (N, P P) logits."""
    if config.decoder == "mlp":
        return mlp(params["decoder"], z_what)
    n, grid, layers = z_what.shape[0], config.window_size // 4, params["decoder"]
    x = relu(mlp(layers["dense"], z_what)).reshape(n, grid, grid, config.decoder_channels[0])
    x = relu(conv3x3(layers["conv"][0], upsample2(x)))
    return conv3x3(layers["conv"][1], upsample2(x)).reshape(n, config.window_size ** 2)


def decode(params, config, z_what):
    """z_what (..., D) -> windows (..., P, P) in (0, 1)."""
    p, d = config.window_size, config.what_dim
    return sigmoid(decoder_pixels(params, config, z_what.reshape(-1, d))).reshape(z_what.shape[:-1] + (p, p))


def render(params, config, z_what, log_scale, shift):
    """Every step's object: z_what (B, T, D), log_scale (B, T), shift (B, T, 2) -> (windows (B, T, P, P), the
    decoded windows, and canvases (B, T, H, W), each window placed on its own canvas)."""
    b, t, d = z_what.shape
    n, size = b * t, config.canvas_size
    windows = decode(params, config, z_what.reshape(n, d))
    canvases = window_to_image(windows, log_scale.reshape(n), shift.reshape(n, 2), size)
    return windows.reshape(b, t, *windows.shape[1:]), canvases.reshape(b, t, size, size)


def step_render(params, config, post):
    """(windows (B, T, P, P), canvases (B, T, H, W)) of a posterior sample (air.guide.guide), ungated: the ones
    the recurrent and residual networks rendered as they went, or, where the guide drew none (the global network's
    posterior holds None), rendered now from its z_what and z_where. The one place that tells the two apart."""
    if post["canvases"] is not None:
        return post["windows"], post["canvases"]
    return render(params, config, post["z_what"], post["log_scale"], post["shift"])


def step_canvases(params, config, post):
    """The ungated canvases (B, T, H, W) of a posterior sample (see step_render)."""
    return step_render(params, config, post)[1]


def gated_scene(params, config, post, gates):
    """The scene (B, H, W) of a posterior sample with real-valued gates (B, T) on its steps (the relaxed z_pres).

    Where nothing is rendered yet and the canvases are summed (the global network, the seed's objective), this is
    reconstruct(), which gates the windows before placing them: the fast path."""
    if post["canvases"] is None and config.composition == "sum":
        return reconstruct(params, config, gates, post["z_what"], post["log_scale"], post["shift"])
    return compose(gates, step_canvases(params, config, post), config.composition)


def compose(gates, canvases, rule="sum"):
    """The scene from gates (B, T) and canvases (B, T, H, W) -> (B, H, W): sum_t gates[:, t] * canvases[:, t]
    ("sum", the paper's), or the pixelwise maximum of the gated canvases ("max", how the seed's scenes paste
    their digits)."""
    b, t, h, w = canvases.shape
    if rule == "max":
        return prefix_scenes(gates.reshape(b, t, 1, 1) * canvases, rule)[:, -1]
    return np.matmul(gates.reshape(b, 1, t), canvases.reshape(b, t, h * w)).reshape(b, h, w)


def prefix_scenes(canvases, rule="sum"):
    """The scenes of the first 1, 2, ..., T steps, (B, T, ...) -> (B, T, ...): running sums ("sum") or running
    pixelwise maxima ("max") of the canvases along axis 1."""
    if rule == "sum":
        return np.cumsum(canvases, axis=1)
    running = [canvases[:, 0]]
    for step in range(1, canvases.shape[1]):
        running.append(np.maximum(running[-1], canvases[:, step]))
    return np.stack(running, axis=1)


def reconstruct(params, config, gates, z_what, log_scale, shift):
    """The scene compose(gates, render(...)[1]), (B, H, W), in fewer operations.

    The transformer is linear in the window, so each gate scales its window (P x P) rather than its canvas,
    and the sum over steps is the transformer's last matmul (air.transformer.compose_windows). This is the
    seed's objective's path; equal to render + compose up to float rounding, with fewer recorded operations
    and no batched (1 x T) @ (T x H W) product, whose backward pass was slow.
    """
    b, t, d = z_what.shape
    p = config.window_size
    # decode(), with the gates applied before its final reshape: the gates' gradient is then a sum over the
    # contiguous last axis of (B T, P P), which numpy does much faster than over the two axes of (B T, P, P).
    windows = sigmoid(decoder_pixels(params, config, z_what.reshape(b * t, d))) * gates.reshape(b * t, 1)
    return compose_windows(windows.reshape(b * t, p, p), log_scale, shift, config.canvas_size)


def negative_log_likelihood(sse, config):
    """-log p(x | z) from the squared error of each scene: the seed's "sse" energy (the squared error itself,
    weighted by recon_weight in the objective), or a Gaussian with standard deviation likelihood_sd per pixel."""
    if config.likelihood == "sse":
        return sse
    var = config.likelihood_sd ** 2
    return sse / (2.0 * var) + config.canvas_size ** 2 * 0.5 * math.log(2.0 * math.pi * var)


def prior_count_probs(pres_prior):
    """p(n) for n = 0..T under per-step presence probabilities pres_prior (T,) with cumulative gating:
    p(n) = p_1 ... p_n (1 - p_{n+1}), the last factor absent for n = T. The geometric prior is the case p_t = rho
    for every t, p(n) = rho^n (1 - rho) truncated at T (air.schedules.pres_prior anneals rho)."""
    prior = numpy.asarray(pres_prior, dtype=numpy.float64)
    at_least = numpy.concatenate([[1.0], numpy.cumprod(prior)])  # P(n >= k), k = 0..T
    return at_least * numpy.concatenate([1.0 - prior, [1.0]])
