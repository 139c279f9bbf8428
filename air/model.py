"""AIR's parameters and its scene interpretation (Eslami et al., NIPS 2016): init_params and infer.

The model itself is two halves, each in its own module: the guide q(z | x), the inference network for the
global, recurrent (AIR) and residual (DAIR) variants (air.guide), and the generative model p(x | z) p(z), the
decoder, the spatial transformer's rendering and the priors (air.generative). How z_pres is handled in the
objective is the estimator's (air.estimators). Each of the three draws its own parameters; this module gathers
them, and turns a trained guide into the deterministic interpretation of a scene that the scores and figures use.
"""
import numpy

from air.estimators import estimator
from air.generative import compose, step_render
from air.generative import init_params as generative_params
from air.guide import guide, present_steps, presence_prob
from air.guide import init_params as guide_params
from air.streams import named
from air.transformer import window_boxes


def init_params(rng, config):
    """Parameters as nested dicts of arrays of `config.dtype`: the guide's (air.guide.init_params: 'encoder',
    'heads', 'lstm' for the recurrent and residual networks, 'glimpse_encoder' with the glimpse encoder), the
    generative model's ('decoder', air.generative.init_params) and the estimator's own (REINFORCE's 'baseline').
    Each part draws from its own stream, named after it and derived from one draw of `rng` (air.streams), so a
    switch that adds a part changes no other part's initial values."""
    dtype = numpy.dtype(config.dtype)
    stream = named(rng)
    return {**guide_params(stream, config, dtype), **generative_params(stream, config, dtype),
            **estimator(config).init_params(stream(f"estimator/{config.pres_estimator}"), config, dtype)}


def infer(params, config, images, batch_size=500):
    """Deterministic scene interpretation of (B, H, W) images: the guide at its means, no noise. A dict of

    count (B,) int; z_pres (B, T) in {0, 1}, the presence decision of config.count_rule (air.guide.present_steps;
    by default step t is present iff its logit and every earlier one is > 0); pres_prob (B, T), each step's
    presence probability given the earlier ones; z_where (B, T, 3) = (log s, tx, ty); z_what (B, T, D) posterior
    means; boxes (B, T, 4) = (x0, y0, x1, y1) canvas pixels of each step's window; windows (B, T, P, P) decoded
    patches; canvases (B, T, H, W) each step's rendered window (ungated); recon (B, H, W), the scene of the
    present steps' canvases (composed by config.composition).
    """
    _check_images(config, images)
    images = numpy.asarray(images, dtype=config.dtype)
    parts = [_infer_batch(params, config, images[i:i + batch_size]) for i in range(0, len(images), batch_size)]
    if not parts:
        parts = [_infer_batch(params, config, images)]
    return {key: numpy.concatenate([part[key] for part in parts]) for key in parts[0]}


def _infer_batch(params, config, images):
    post = guide(params, config, images)  # without noise: at the posterior means
    windows, canvases = step_render(params, config, post)
    z_pres = present_steps(config, post["pres_logit"])
    return {
        "count": z_pres.sum(axis=1),
        "z_pres": z_pres,
        "pres_prob": presence_prob(config, post["pres_logit"]),
        "z_where": numpy.concatenate([post["log_scale"][..., None], post["shift"]], axis=2),
        "z_what": post["what_mean"],
        "boxes": window_boxes(post["log_scale"], post["shift"], config.canvas_size, config.window_size),
        "windows": windows,
        "canvases": canvases,
        "recon": compose(z_pres.astype(canvases.dtype), canvases, config.composition),
    }


def _check_images(config, images):
    shape = numpy.shape(images)
    size = config.canvas_size
    if len(shape) != 3 or shape[1:] != (size, size):
        raise ValueError(f"images must have shape (batch, {size}, {size}) for canvas_size={size}, got {shape}")
