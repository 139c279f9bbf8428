"""AIR's parameters and its scene interpretation (Eslami et al., NIPS 2016): init_params and infer.

The model itself is two halves, each in its own module: the guide q(z | x), the inference network for the
global, recurrent (AIR) and residual (DAIR) variants (air.guide), and the generative model p(x | z) p(z), the
decoder, the spatial transformer's rendering and the priors (air.generative). How z_pres is handled in the
objective is the estimator's (air.estimators). Each of the three draws its own parameters; this module gathers
them, and turns a trained guide into the deterministic interpretation of a scene that the scores and figures use.
"""
import numpy

from air.estimators import estimator
from air.generative import compose, render, step_render
from air.generative import init_params as generative_params
from air.guide import guide, present_steps, presence_prob
from air.guide import init_params as guide_params
from air.marginal import check_likelihood
from air.search import Search, gated, guide_spreads
from air.search import search as run_search
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


def infer(params, config, images, batch_size=500, search=False):
    """Deterministic scene interpretation of (B, H, W) images: the guide at its means, no noise, or with `search`
    (True, or an air.search.Search saying how) the count and latents the model's own evidence prefers where the
    guide may be wrong (air.search; only for a model whose objective is an ELBO). A dict of

    count (B,) int; z_pres (B, T) in {0, 1}, the presence decision of config.count_rule (air.guide.present_steps;
    by default step t is present iff its logit and every earlier one is > 0); pres_prob (B, T), each step's
    presence probability given the earlier ones; z_where (B, T, 3) = (log s, tx, ty); z_what (B, T, D) posterior
    means; boxes (B, T, 4) = (x0, y0, x1, y1) canvas pixels of each step's window; windows (B, T, P, P) decoded
    patches; canvases (B, T, H, W) each step's rendered window (ungated); recon (B, H, W), the scene of the
    present steps' canvases (composed by config.composition). With search also searched (B,) bool, the scenes
    the search looked at (air.search.gated); amortised_count (B,), the guide's own count; margin (B,), the
    chosen count's estimated log p(x, n) minus the best other count's, in nats (NaN where not searched). pres_prob
    stays the guide's.
    """
    _check_images(config, images)
    images = numpy.asarray(images, dtype=config.dtype)
    parts = [_infer_batch(params, config, images[i:i + batch_size]) for i in range(0, len(images), batch_size)]
    if not parts:
        parts = [_infer_batch(params, config, images)]
    out = {key: numpy.concatenate([part[key] for part in parts]) for key in parts[0]}
    if search is False or search is None:
        return out
    return _searched(params, config, images, out, Search() if search is True else search)


def _searched(params, config, images, out, options):
    """infer's answer with the gated scenes' counts and latents replaced by the search's (air.search)."""
    if not isinstance(options, Search):
        raise TypeError(f"search: True, False or an air.search.Search, got {type(options).__name__}")
    check_likelihood(config)
    chosen = gated(config, images, out, options)
    out.update(searched=numpy.zeros(len(images), bool), amortised_count=out["count"].copy(),
               margin=numpy.full(len(images), numpy.nan))
    if not len(chosen):
        return out
    amortised = {key: out[key][chosen] for key in ("count", "z_where", "z_what", "recon")}
    amortised.update(guide_spreads(params, config, images[chosen]))
    found = run_search(params, config, images[chosen], amortised, options)
    log_scale, shift = found["z_where"][..., 0], found["z_where"][..., 1:]
    windows, canvases = render(params, config, found["z_what"], numpy.clip(log_scale, *config.log_scale_range), shift)
    z_pres = (numpy.arange(config.max_steps) < found["count"][:, None]).astype(numpy.int64)
    replaced = {"count": found["count"], "z_pres": z_pres, "z_where": found["z_where"], "z_what": found["z_what"],
                "boxes": window_boxes(log_scale, shift, config.canvas_size, config.window_size),
                "windows": windows, "canvases": canvases,
                "recon": compose(z_pres.astype(canvases.dtype), canvases, config.composition),
                "margin": found["margin"], "searched": True}
    for key, value in replaced.items():
        out[key][chosen] = value
    return out


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
