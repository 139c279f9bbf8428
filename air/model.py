"""AIR's inference network and generative model (Eslami et al., NIPS 2016), in the seed's reduced form.

Inference: a global MLP reads the whole scene once; T linear heads read its features and give, for every
step t, the z_pres logit, z_where = (log s, tx, ty) and the mean and log-variance of z_what (the seed's
network, the default). Switches: an LSTM over the steps fed the image (the paper's AIR) or what earlier
steps left unexplained (DAIR); z_what from a glimpse cropped at z_where; a stochastic z_where.

Generation: each step's z_what is decoded by an MLP to a P x P window, which the spatial transformer places
on the canvas at z_where. Step t is gated by the cumulative presence z_pres_1 ... z_pres_t, so a step
can only contribute while every earlier step is present (the paper's "use earlier slots first").
"""
import math

import autograd.numpy as np
import numpy

from air.nn import conv3x3, dense, he_normal, lstm_step, mlp, relu, sigmoid, small_normal, upsample2
from autograd.tracer import getval

from air.transformer import compose_windows, image_to_window, window_boxes, window_to_image


def head_columns(config):
    """Per step, the columns of the heads layer, in order: name -> slice of that step's outputs.

    Always the presence logit, log s and (tx, ty); then z_where's log standard deviations if z_where is
    stochastic; then z_what's mean and log-variance unless the glimpse encoder infers z_what.
    """
    d = config.what_dim
    columns = {"pres_logit": slice(0, 1), "log_scale": slice(1, 2), "shift": slice(2, 4)}
    start = 4
    if config.z_where == "stochastic":
        columns["where_logsd"] = slice(start, start + 3)
        start += 3
    if config.object_encoder == "global":
        columns.update(what_mean=slice(start, start + d), what_logvar=slice(start + d, start + 2 * d))
    return columns


def _split_heads(heads, config, axis):
    """The heads' output split along `axis` into the named pieces of head_columns (one np.split)."""
    columns = head_columns(config)
    pieces = np.split(heads, [c.stop for c in list(columns.values())[:-1]], axis=axis)
    return dict(zip(columns, pieces))


def init_params(rng, config):
    """Parameters as nested dicts of arrays of `config.dtype`, initialised as the seed does.

    {'encoder': [layer, ...], 'heads': layer, 'decoder': [layer, layer]}, each layer {'w': (n_in, n_out),
    'b': (n_out,)}. The seed's T per-step heads (z_pres logit; z_where; z_what mean; z_what log-variance)
    are the blocks of one layer, computed in one matmul: output column t (4 + 2 D) + c is column c of step
    t as laid out by head_columns. The recurrent and residual inference networks add an LSTM ('lstm':
    layer, see air.nn.lstm_step) between the encoder and one heads block shared by every step.
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
    if config.pres_estimator == "reinforce":
        # NVIL's baseline b(x): an MLP on the image predicting the reconstruction cost.
        params["baseline"] = [he_normal(rng, config.canvas_size ** 2, config.baseline_hidden, dtype),
                              small_normal(rng, config.baseline_hidden, 1, dtype)]
    return params


def _conv_decoder(rng, config, first, dtype):
    """The conv decoder's parameters: the MLP's first layer `first` (z_what -> hidden), a dense layer to a
    (P/4, P/4, C1) grid, and two 3 x 3 convolutions, C1 -> C2 at P/2 and C2 -> 1 at P (He-initialised)."""
    grid, (c1, c2) = config.window_size // 4, config.decoder_channels
    last = he_normal(rng, 9 * c2, 1, dtype)
    last["b"][:] = config.decoder_bias  # nearly dark at the start, as the MLP decoder
    return {"dense": [first, he_normal(rng, config.decoder_hidden, grid * grid * c1, dtype)],
            "conv": [he_normal(rng, 9 * c1, c2, dtype), last]}


def decoder_pixels(params, config, z_what):
    """The decoder's window pixels, before the sigmoid: z_what (N, D) -> (N, P P) logits."""
    if config.decoder == "mlp":
        return mlp(params["decoder"], z_what)
    n, grid, layers = z_what.shape[0], config.window_size // 4, params["decoder"]
    x = relu(mlp(layers["dense"], z_what)).reshape(n, grid, grid, config.decoder_channels[0])
    x = relu(conv3x3(layers["conv"][0], upsample2(x)))
    return conv3x3(layers["conv"][1], upsample2(x)).reshape(n, config.window_size ** 2)


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


def head_width(config):
    """Outputs of the heads layer per step (see head_columns)."""
    return list(head_columns(config).values())[-1].stop


def _glimpse_encoder(rng, config, dtype):
    """MLP from a window-sized glimpse to z_what's mean and log-variance (drawn like the heads' blocks)."""
    d, p, hidden = config.what_dim, config.window_size, config.glimpse_hidden
    out = he_normal(rng, hidden, d, dtype, gain=0.5)
    logvar = small_normal(rng, hidden, d, dtype)
    last = {"w": numpy.concatenate([out["w"], logvar["w"]], axis=1), "b": numpy.zeros(2 * d, dtype)}
    return [he_normal(rng, p * p, hidden, dtype), last]


def glimpse_posterior(params, config, images, log_scale, shift):
    """z_what's mean and log-variance (N, D) from glimpses of images (N, H, W) cropped at (log_scale (N,),
    shift (N, 2)): the paper's object encoder, which sees only what the step attends to."""
    p = config.window_size
    glimpses = image_to_window(images, log_scale, shift, p)
    mean, logvar = np.split(mlp(params["glimpse_encoder"], glimpses.reshape(-1, p * p)), 2, axis=1)
    return mean, np.clip(logvar, *config.what_logvar_range)


def encode(params, config, images):
    """The posterior's parameters for (B, H, W) images, per step t: a dict of

    pres_logit (B, T); log_scale (B, T) clipped to config.log_scale_range; shift (B, T, 2) = (tx, ty);
    what_mean (B, T, D); what_logvar (B, T, D) clipped to config.what_logvar_range.
    """
    b, t, d = images.shape[0], config.max_steps, config.what_dim
    features = mlp(params["encoder"], images.reshape(b, -1), final=relu)
    parts = _split_heads(dense(params["heads"], features).reshape(b, t, head_width(config)), config, axis=2)
    post = {"pres_logit": parts["pres_logit"].reshape(b, t),
            "log_scale": np.clip(parts["log_scale"].reshape(b, t), *config.log_scale_range),
            "shift": parts["shift"]}
    if config.z_where == "stochastic":
        post["where_logsd"] = parts["where_logsd"]
    if config.object_encoder == "glimpse":
        # Glimpses at the posterior mean of z_where (this network infers every step's z_where at once).
        crops = numpy.repeat(numpy.asarray(getval(images)), t, axis=0)  # each scene once per step
        mean, logvar = glimpse_posterior(params, config, crops, post["log_scale"].reshape(b * t),
                                         post["shift"].reshape(b * t, 2))
        post.update(what_mean=mean.reshape(b, t, d), what_logvar=logvar.reshape(b, t, d))
    else:
        post.update(what_mean=parts["what_mean"], what_logvar=np.clip(parts["what_logvar"], *config.what_logvar_range))
    return post


def sample_where(post, config, where_noise):
    """z_where = (log s, tx, ty) drawn from its Gaussian posterior around post's (log_scale, shift) with
    standard deviations exp(where_logsd), log s clipped again: (log_scale (...,), shift (..., 2))."""
    location = np.concatenate([post["log_scale"][..., None], post["shift"]], axis=-1)
    log_scale, shift = np.split(location + np.exp(post["where_logsd"]) * where_noise, [1], axis=-1)
    return np.clip(log_scale[..., 0], *config.log_scale_range), shift


def where_kl(location, logsd, config):
    """Per step, KL(N(location, exp(logsd)^2) || N(where_prior_mean, where_prior_sd^2)) of z_where = (log s, tx,
    ty), summed over its three coordinates: location and logsd (..., 3) -> (...)."""
    prior_mean = numpy.asarray(config.where_prior_mean, dtype=config.dtype)
    prior_sd = numpy.asarray(config.where_prior_sd, dtype=config.dtype)
    kl = (numpy.log(prior_sd) - logsd + (np.exp(2.0 * logsd) + (location - prior_mean) ** 2) / (2.0 * prior_sd ** 2)
          - 0.5)
    return np.sum(kl, axis=-1)


def sequential_steps(params, config, images, what_noise=None, where_noise=None):
    """The recurrent ("recurrent") or residual ("residual", DAIR) inference network, run with the renderer.

    Step t reads the image ("recurrent", the paper's AIR) or what the earlier steps leave unexplained,
    x minus their rendered windows ("residual", the paper's DAIR, Sec. 3.1), through the encoder MLP, then
    an LSTM fed the previous step's z_where and z_what. Every step is computed as if all earlier steps were
    present: only then does it affect the scene (cumulative gating), so this is the posterior the
    objective needs, and the T + 1 counts can still be enumerated from one pass. z_what is the mean plus
    exp(logvar / 2) what_noise[:, t], or the mean if what_noise is None; a stochastic z_where likewise with
    where_noise (the step renders, glimpses and passes on the sample).

    A dict like encode()'s (pres_logit (B, T), log_scale (B, T), shift (B, T, 2), what_mean, what_logvar
    (B, T, D)) plus z_what (B, T, D), windows (B, T, P, P) and canvases (B, T, H, W) (ungated).
    """
    b, t, d, size = images.shape[0], config.max_steps, config.what_dim, config.canvas_size
    hidden = config.rnn_hidden
    x = images.reshape(b, size * size)
    dtype = numpy.result_type(x)
    h = c = numpy.zeros((b, hidden), dtype)
    previous = numpy.zeros((b, 3 + d), dtype)
    unexplained = x
    features = mlp(params["encoder"], x, final=relu)  # the recurrent network reads the same image every step
    steps = []
    for step in range(t):
        if config.inference == "residual" and step > 0:
            features = mlp(params["encoder"], unexplained, final=relu)
        h, c = lstm_step(params["lstm"], np.concatenate([features, previous, h], axis=1), c)
        parts = _split_heads(dense(params["heads"], h), config, axis=1)
        logit = parts["pres_logit"]
        post = {"log_scale": np.clip(parts["log_scale"].reshape(b), *config.log_scale_range), "shift": parts["shift"]}
        log_scale, shift = post["log_scale"], post["shift"]
        if config.z_where == "stochastic":
            post["where_logsd"] = parts["where_logsd"]
            if where_noise is not None:
                log_scale, shift = sample_where(post, config, where_noise[:, step])
        log_scale = log_scale.reshape(b, 1)
        if config.object_encoder == "glimpse":
            # The glimpse is cut from what this step reads: the image, or for DAIR what is still unexplained.
            source = unexplained if config.inference == "residual" else x
            mean, logvar = glimpse_posterior(params, config, source.reshape(b, size, size), log_scale.reshape(b), shift)
        else:
            mean, logvar = parts["what_mean"], np.clip(parts["what_logvar"], *config.what_logvar_range)
        z_what = mean if what_noise is None else mean + np.exp(0.5 * logvar) * what_noise[:, step]
        window = decode(params, config, z_what)
        canvas = window_to_image(window, log_scale.reshape(b), shift, size)
        if config.composition == "max":
            scene = canvas.reshape(b, size * size) if step == 0 else np.maximum(scene, canvas.reshape(b, size * size))
            unexplained = x - scene
        else:
            unexplained = unexplained - canvas.reshape(b, size * size)
        previous = np.concatenate([log_scale, shift, z_what], axis=1)
        step_out = {"pres_logit": logit, "log_scale": log_scale, "shift": shift, "what_mean": mean,
                    "what_logvar": logvar, "z_what": z_what, "windows": window, "canvases": canvas}
        if config.z_where == "stochastic":  # the posterior's location and spread, for the KL
            step_out.update(where_location=np.concatenate([post["log_scale"].reshape(b, 1), post["shift"]], axis=1),
                            where_logsd=post["where_logsd"])
        steps.append(step_out)
    out = {key: np.stack([s[key] for s in steps], axis=1) for key in steps[0]}
    out["pres_logit"] = out["pres_logit"].reshape(b, t)
    out["log_scale"] = out["log_scale"].reshape(b, t)
    return out


def decode(params, config, z_what):
    """z_what (..., D) -> windows (..., P, P) in (0, 1)."""
    p, d = config.window_size, config.what_dim
    return sigmoid(decoder_pixels(params, config, z_what.reshape(-1, d))).reshape(z_what.shape[:-1] + (p, p))


def render(params, config, z_what, log_scale, shift):
    """Every step's object on its own canvas: z_what (B, T, D), log_scale (B, T), shift (B, T, 2) -> (B, T, H, W)."""
    b, t, d = z_what.shape
    n, size = b * t, config.canvas_size
    windows = decode(params, config, z_what.reshape(n, d))
    canvases = window_to_image(windows, log_scale.reshape(n), shift.reshape(n, 2), size)
    return canvases.reshape(b, t, size, size)


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
    """The scene compose(gates, render(params, config, z_what, log_scale, shift)), (B, H, W), in fewer operations.

    The transformer is linear in the window, so each gate scales its window (P x P) rather than its canvas,
    and the sum over steps is the transformer's last matmul (air.transformer.compose_windows). This is the
    training objective's path; equal to render + compose up to float rounding, with fewer recorded operations
    and no batched (1 x T) @ (T x H W) product, whose backward pass was slow.
    """
    b, t, d = z_what.shape
    p = config.window_size
    # decode(), with the gates applied before its final reshape: the gates' gradient is then a sum over the
    # contiguous last axis of (B T, P P), which numpy does much faster than over the two axes of (B T, P, P).
    windows = sigmoid(decoder_pixels(params, config, z_what.reshape(b * t, d))) * gates.reshape(b * t, 1)
    return compose_windows(windows.reshape(b * t, p, p), log_scale, shift, config.canvas_size)


def infer(params, config, images, batch_size=500):
    """Deterministic scene interpretation of (B, H, W) images, without noise. A dict of

    count (B,) int; z_pres (B, T) in {0, 1}: step t present iff its logit and every earlier one is > 0;
    pres_prob (B, T) = sigmoid(logit); z_where (B, T, 3) = (log s, tx, ty); z_what (B, T, D) posterior means;
    boxes (B, T, 4) = (x0, y0, x1, y1) canvas pixels of each step's window; windows (B, T, P, P) decoded
    patches; canvases (B, T, H, W) each step's rendered window (ungated); recon (B, H, W) = sum of the
    present steps' canvases.
    """
    _check_images(config, images)
    images = numpy.asarray(images, dtype=config.dtype)
    parts = [_infer_batch(params, config, images[i:i + batch_size]) for i in range(0, len(images), batch_size)]
    if not parts:
        parts = [_infer_batch(params, config, images)]
    return {key: numpy.concatenate([part[key] for part in parts]) for key in parts[0]}


def _infer_batch(params, config, images):
    size = config.canvas_size
    if config.inference == "global":
        post = encode(params, config, images)
        b, t, d = post["what_mean"].shape
        windows = decode(params, config, post["what_mean"])
        canvases = window_to_image(windows.reshape(b * t, *windows.shape[2:]), post["log_scale"].reshape(b * t),
                                   post["shift"].reshape(b * t, 2), size).reshape(b, t, size, size)
    else:
        post = sequential_steps(params, config, images)
        windows, canvases = post["windows"], post["canvases"]
    z_pres = present_steps(config, post["pres_logit"])
    return {
        "count": z_pres.sum(axis=1),
        "z_pres": z_pres,
        "pres_prob": presence_prob(config, post["pres_logit"]),
        "z_where": numpy.concatenate([post["log_scale"][..., None], post["shift"]], axis=2),
        "z_what": post["what_mean"],
        "boxes": window_boxes(post["log_scale"], post["shift"], size, config.window_size),
        "windows": windows,
        "canvases": canvases,
        "recon": compose(z_pres.astype(canvases.dtype), canvases, config.composition),
    }


def present_steps(config, pres_logit):
    """The deterministic presence decision, (B, T) logits -> (B, T) int64 in {0, 1}, by config.count_rule:

    "logit": step t is present iff its logit and every earlier step's logit are > 0;
    "cumulative": iff prod_{i <= t} sigmoid(logit_i) > 0.5, the probability that the scene has at least t + 1
    objects under the posterior: the count is the posterior median (the seed's figures draw a step as active
    when its cumulative presence exceeds 0.5);
    "mode": the first n steps, n the most probable count under the posterior (count_log_probs).
    """
    if config.count_rule == "logit":
        return numpy.cumprod(pres_logit > 0, axis=1).astype(numpy.int64)
    log_q_count, log_present = count_log_probs(pres_logit, config.pres_floor)
    if config.count_rule == "cumulative":
        return (log_present > numpy.log(0.5)).astype(numpy.int64)
    count = numpy.argmax(log_q_count, axis=1)  # "mode": the most probable count under the posterior
    return (numpy.arange(pres_logit.shape[1]) < count[:, None]).astype(numpy.int64)


def count_log_probs(pres_logit, floor=0.0):
    """The posterior over the count implied by per-step presence logits (B, T) with cumulative gating:

    log q(n) (B, T + 1) for n = 0..T, with q(n) = q_1 ... q_n (1 - q_{n+1}), q_t = presence_prob(logit_t); and
    log P(n > t) (B, T), the probability that step t is present. With floor > 0 each q_t is kept in
    [floor, 1 - floor] (config.pres_floor).
    """
    softplus = np.logaddexp(0.0, pres_logit)  # -log(1 - sigmoid(logit))
    log_on, log_off = pres_logit - softplus, -softplus
    if floor > 0:  # q = floor + (1 - 2 floor) sigmoid(logit), and 1 - q likewise, in log space
        log_floor, log_rest = math.log(floor), math.log1p(-2.0 * floor)
        log_on, log_off = np.logaddexp(log_floor, log_rest + log_on), np.logaddexp(log_floor, log_rest + log_off)
    log_present = np.cumsum(log_on, axis=1)  # sum_{i <= t} log q_i
    b = pres_logit.shape[0]
    zero = numpy.zeros((b, 1), dtype=numpy.result_type(pres_logit))
    return np.concatenate([zero, log_present], axis=1) + np.concatenate([log_off, zero], axis=1), log_present


def presence_prob(config, pres_logit):
    """q_t, the posterior probability that step t is present given the earlier ones: sigmoid(logit), kept in
    [pres_floor, 1 - pres_floor]. Plain numpy (for sampling and reporting, not for gradients)."""
    q = 0.5 * (numpy.tanh(0.5 * numpy.asarray(pres_logit, dtype=numpy.float64)) + 1.0)  # no overflow warnings
    return (config.pres_floor + (1.0 - 2.0 * config.pres_floor) * q).astype(numpy.result_type(pres_logit))


def _check_images(config, images):
    shape = numpy.shape(images)
    size = config.canvas_size
    if len(shape) != 3 or shape[1:] != (size, size):
        raise ValueError(f"images must have shape (batch, {size}, {size}) for canvas_size={size}, got {shape}")
