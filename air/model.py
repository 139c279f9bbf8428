"""AIR's parameters and its scene interpretation (Eslami et al., NIPS 2016): init_params and infer.

The model itself is two halves, each in its own module: the guide q(z | x), the inference network for the
global, recurrent (AIR) and residual (DAIR) variants (air.guide), and the generative model p(x | z) p(z), the
decoder, the spatial transformer's rendering and the priors (air.generative). How z_pres is handled in the
objective is the estimator's (air.estimators). This module draws every parameter those functions read, and
turns a trained guide into the deterministic interpretation of a scene that the scores and figures use.
"""
import numpy

from air.estimators import estimator
from air.generative import compose, step_render
from air.guide import guide, head_columns, head_width, present_steps, presence_prob
from air.nn import he_normal, small_normal
from air.transformer import window_boxes


def init_params(rng, config):
    """Parameters as nested dicts of arrays of `config.dtype`, drawn from `rng` as the seed draws them.

    'encoder': the MLP layers [{'w': (n_in, n_out), 'b': (n_out,)}, ...] from the H W pixels through
    encoder_hidden; 'heads': one layer whose outputs hold every step's heads side by side, W = head_width(config)
    columns a step laid out by head_columns (presence logit, log s, tx, ty, then z_where's log sds if it is
    stochastic, then z_what's mean and log-variance unless the glimpse encoder infers z_what). The global network
    has T such blocks, computed in one matmul (output column t W + c is column c of step t); the recurrent and
    residual networks put an LSTM ('lstm', see air.nn.lstm_step) between the encoder and one block shared by
    every step. 'decoder': the MLP z_what -> D_h -> P P (or, with decoder="conv", {'dense', 'conv'} layers);
    'glimpse_encoder' with object_encoder="glimpse"; and the estimator's own parameters (REINFORCE's
    'baseline').
    """
    dtype = numpy.dtype(config.dtype)
    t, d, p = config.max_steps, config.what_dim, config.window_size
    widths = (config.canvas_size ** 2,) + tuple(config.encoder_hidden)
    encoder = [he_normal(rng, n_in, n_out, dtype) for n_in, n_out in zip(widths[:-1], widths[1:])]
    if config.inference == "global":
        features, head_steps, extra = widths[-1], t, {}
    else:
        hidden = config.rnn_hidden
        # The LSTM reads the encoded image (or residual), the previous step's z_where and z_what, and its state.
        lstm = small_normal(rng, widths[-1] + 3 + d + hidden, 4 * hidden, dtype, scale=1.0 / numpy.sqrt(hidden))
        lstm["b"][hidden:2 * hidden] = 1.0  # forget-gate bias 1 (Gers et al. 2000): remember by default
        features, head_steps, extra = hidden, 1, {"lstm": lstm}
    where = small_normal(rng, features, 3 * head_steps, dtype)
    # Windows start at scale exp(where_log_scale_init), centred: the bias is (log s, 0, 0) for every step.
    where["b"] = numpy.tile(numpy.array([config.where_log_scale_init, 0.0, 0.0], dtype), head_steps)
    decoder = [he_normal(rng, d, config.decoder_hidden, dtype), he_normal(rng, config.decoder_hidden, p * p, dtype)]
    # A nearly dark initial window (sigmoid(-2) ~ 0.12) breaks the symmetry between present and absent:
    # present steps can only help by adding ink, so z_pres is pushed up exactly where there is ink.
    decoder[-1]["b"][:] = config.decoder_bias
    if config.decoder == "conv":
        decoder = _conv_decoder(rng, config, decoder[0], dtype)
    # Each head drawn as the seed draws it: He for the presence logit, He / 2 for the z_what mean, and
    # N(0, 0.01^2) for z_where and the z_what log-variance, so they start near their biases.
    blocks = {"pres_logit": he_normal(rng, features, head_steps, dtype), "where": where,
              "what_mean": he_normal(rng, features, head_steps * d, dtype, gain=0.5),
              "what_logvar": small_normal(rng, features, head_steps * d, dtype)}
    params = {"encoder": encoder, **extra, "heads": _heads_layer(blocks, config, features, head_steps, dtype),
              "decoder": decoder}
    if config.object_encoder == "glimpse":
        params["glimpse_encoder"] = _glimpse_encoder(rng, config, dtype)  # drawn last: other draws unchanged
    if config.z_where == "stochastic":
        # z_where's posterior standard deviations start at 0.3 prior sd (small, as Kosiorek and Bliznashki
        # advise: a wide initial where-posterior is a known cause of collapse). Drawn last: other draws unchanged.
        logsd = small_normal(rng, features, 3 * head_steps, dtype)
        logsd["b"] = numpy.tile(numpy.log(0.3 * numpy.asarray(config.where_prior_sd, dtype)), head_steps)
        columns = head_columns(config)["where_logsd"]
        for key in ("w", "b"):
            view = params["heads"][key].reshape(params["heads"][key].shape[:-1] + (head_steps, head_width(config)))
            view[..., columns] = logsd[key].reshape(view.shape[:-1] + (3,))
    params.update(estimator(config).init_params(rng, config, dtype))  # drawn last: other draws unchanged
    return params


def _conv_decoder(rng, config, first, dtype):
    """The conv decoder's parameters: the MLP's first layer `first` (z_what -> hidden), a dense layer to a
    (P/4, P/4, C1) grid, and two 3 x 3 convolutions, C1 -> C2 at P/2 and C2 -> 1 at P (He-initialised)."""
    grid, (c1, c2) = config.window_size // 4, config.decoder_channels
    last = he_normal(rng, 9 * c2, 1, dtype)
    last["b"][:] = config.decoder_bias  # nearly dark at the start, as the MLP decoder
    return {"dense": [first, he_normal(rng, config.decoder_hidden, grid * grid * c1, dtype)],
            "conv": [he_normal(rng, 9 * c1, c2, dtype), last]}


def _heads_layer(blocks, config, features, steps, dtype):
    """One dense layer whose output holds, for each of `steps` steps, the blocks laid out by head_columns
    (without the z_what columns when the glimpse encoder infers z_what)."""
    d = config.what_dim
    columns = head_columns(config)
    width = head_width(config)
    heads = {"w": numpy.zeros((features, steps, width), dtype), "b": numpy.zeros((steps, width), dtype)}
    for key in ("w", "b"):
        lead = heads[key].shape[:-2]
        heads[key][..., columns["pres_logit"]] = blocks["pres_logit"][key].reshape(lead + (steps, 1))
        heads[key][..., 1:4] = blocks["where"][key].reshape(lead + (steps, 3))
        if config.object_encoder == "global":
            heads[key][..., columns["what_mean"]] = blocks["what_mean"][key].reshape(lead + (steps, d))
            heads[key][..., columns["what_logvar"]] = blocks["what_logvar"][key].reshape(lead + (steps, d))
        heads[key] = heads[key].reshape(lead + (-1,))
    return heads


def _glimpse_encoder(rng, config, dtype):
    """MLP from a window-sized glimpse to z_what's mean and log-variance (drawn like the heads' blocks)."""
    d, p, hidden = config.what_dim, config.window_size, config.glimpse_hidden
    out = he_normal(rng, hidden, d, dtype, gain=0.5)
    logvar = small_normal(rng, hidden, d, dtype)
    last = {"w": numpy.concatenate([out["w"], logvar["w"]], axis=1), "b": numpy.zeros(2 * d, dtype)}
    return [he_normal(rng, p * p, hidden, dtype), last]


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
