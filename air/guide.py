"""The guide q(z | x): AIR's inference network (Eslami et al., NIPS 2016, Sec. 2.2) and what it implies.

`guide` is the one entry point for the three networks config.inference names:

- "global" (the seed's): an MLP reads the whole scene once and T linear heads give every step's latents at once;
- "recurrent" (the paper's AIR): an LSTM runs over the steps, fed the image and the previous step's z_where and
  z_what;
- "residual" (the paper's DAIR, Sec. 3.1): the same LSTM, fed what the earlier steps leave unexplained, the
  image minus their rendered windows; with step_memory="none" a step carries nothing to the next (no LSTM
  state, no previous latents), so whether anything is left to explain is decided from the residual alone.

Whatever the network, the posterior comes back as one dict of per-step arrays, z_what and z_where sampled in
one place from the noise the objective draws (or at their means, for inference). z_what comes from the heads
or, with object_encoder="glimpse", from a crop of the image at z_where (the paper's object encoder). z_pres is
not sampled here: its posterior is the presence logits, which each estimator (air.estimators) treats its
own way; count_log_probs gives the count distribution they imply under cumulative gating.
"""
import math

import autograd.numpy as np
import numpy
from autograd.tracer import getval

from air.generative import decode
from air.nn import dense, he_normal, lstm_step, mlp, relu, small_normal
from air.transformer import image_to_window, window_to_image


# The noise guide_step reads, (B, T, ...) arrays of sample_noise's; the rest is the estimators'.
STEP_NOISE = ("what", "where")


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


def init_params(stream, config, dtype):
    """The guide's parameters, each part drawn from its own named stream (air.streams): 'encoder', the MLP
    [{'w': (n_in, n_out), 'b': (n_out,)}, ...] from the H W pixels through encoder_hidden; for the recurrent and
    residual networks 'lstm' (air.nn.lstm_step) between the encoder and the heads; 'heads', one layer whose
    outputs hold a step's heads side by side (head_columns), for every step at once in the global network (column
    t W + c is column c of step t) or one block shared by every step; and 'glimpse_encoder' with
    object_encoder="glimpse"."""
    widths = (config.canvas_size ** 2,) + tuple(config.encoder_hidden)
    rng = stream("guide/encoder")
    params = {"encoder": [he_normal(rng, n_in, n_out, dtype) for n_in, n_out in zip(widths[:-1], widths[1:])]}
    if config.inference == "global":
        features, steps = widths[-1], config.max_steps
    else:
        hidden = features = config.rnn_hidden
        steps = 1
        # The LSTM reads the encoded image (or residual), and with memory the previous step's z_where and z_what
        # and its own state.
        carried = 3 + config.what_dim + hidden if config.step_memory == "lstm" else 0
        lstm = small_normal(stream("guide/lstm"), widths[-1] + carried, 4 * hidden, dtype,
                            scale=1.0 / numpy.sqrt(hidden))
        lstm["b"][hidden:2 * hidden] = 1.0  # forget-gate bias 1 (Gers et al. 2000): remember by default
        params["lstm"] = lstm
    params["heads"] = _heads_layer(stream, config, features, steps, dtype)
    if config.object_encoder == "glimpse":
        params["glimpse_encoder"] = _glimpse_encoder(stream("guide/glimpse_encoder"), config, dtype)
    return params


def _head_blocks(stream, config, features, steps, dtype):
    """Each head as its own dense layer (features -> steps x its width), drawn as the seed draws them: He for the
    presence logit, He / 2 for z_what's mean, N(0, 0.01^2) for z_where and z_what's log-variance, so they start
    near their biases; windows start centred at scale exp(where_log_scale_init), and a stochastic z_where's
    posterior sds at 0.3 prior sd (small, as Kosiorek and Bliznashki advise: a wide initial where-posterior is a
    known cause of collapse). Keyed like head_columns, with log_scale and shift as one block, "where"."""
    d = config.what_dim
    blocks = {"pres_logit": he_normal(stream("guide/heads/pres_logit"), features, steps, dtype),
              "where": small_normal(stream("guide/heads/where"), features, 3 * steps, dtype)}
    blocks["where"]["b"] = numpy.tile(numpy.array([config.where_log_scale_init, 0.0, 0.0], dtype), steps)
    if config.z_where == "stochastic":
        blocks["where_logsd"] = small_normal(stream("guide/heads/where_logsd"), features, 3 * steps, dtype)
        blocks["where_logsd"]["b"] = numpy.tile(numpy.log(0.3 * numpy.asarray(config.where_prior_sd, dtype)), steps)
    if config.object_encoder == "global":
        blocks["what_mean"] = he_normal(stream("guide/heads/what_mean"), features, steps * d, dtype, gain=0.5)
        blocks["what_logvar"] = small_normal(stream("guide/heads/what_logvar"), features, steps * d, dtype)
    return blocks


def _heads_layer(stream, config, features, steps, dtype):
    """One dense layer whose output holds, for each of `steps` steps, the head blocks laid out by head_columns."""
    columns = head_columns(config)
    columns["where"] = slice(columns.pop("log_scale").start, columns.pop("shift").stop)
    width = head_width(config)
    heads = {"w": numpy.zeros((features, steps, width), dtype), "b": numpy.zeros((steps, width), dtype)}
    for name, block in _head_blocks(stream, config, features, steps, dtype).items():
        for key in ("w", "b"):
            lead = heads[key].shape[:-2]
            heads[key][..., columns[name]] = block[key].reshape(lead + (steps, columns[name].stop - columns[name].start))
    return {key: value.reshape(value.shape[:-2] + (-1,)) for key, value in heads.items()}


def _glimpse_encoder(rng, config, dtype):
    """MLP from a window-sized glimpse to z_what's mean and log-variance (drawn like the heads' blocks)."""
    d, p, hidden = config.what_dim, config.window_size, config.glimpse_hidden
    first = he_normal(rng, p * p, hidden, dtype)
    out = he_normal(rng, hidden, d, dtype, gain=0.5)
    logvar = small_normal(rng, hidden, d, dtype)
    last = {"w": numpy.concatenate([out["w"], logvar["w"]], axis=1), "b": numpy.zeros(2 * d, dtype)}
    return [first, last]


def head_width(config):
    """Outputs of the heads layer per step (see head_columns)."""
    return list(head_columns(config).values())[-1].stop


def _split_heads(heads, config):
    """The heads' output (N, head_width) split into the named pieces of head_columns (one np.split)."""
    columns = head_columns(config)
    pieces = np.split(heads, [c.stop for c in list(columns.values())[:-1]], axis=1)
    return dict(zip(columns, pieces))


def guide(params, config, images, noise=None):
    """The posterior of (B, H, W) images, per step t, as one dict, the same keys whichever network made it:

    pres_logit (B, T), step t's presence logit given that the earlier steps are present;
    what_mean, what_logvar (B, T, D), z_what's Gaussian posterior (log-variance clipped to what_logvar_range);
    z_what (B, T, D) = what_mean + exp(what_logvar / 2) noise["what"], or what_mean when noise is None;
    log_scale (B, T), shift (B, T, 2): the z_where = (log s, tx, ty) each step uses, log s clipped to
        log_scale_range: the posterior mean, or with z_where="stochastic" and noise, a sample with noise["where"];
    where_location, where_logsd (B, T, 3), z_where's posterior mean and log sd (z_where="stochastic" only);
    windows (B, T, P, P), canvases (B, T, H, W): each step's decoded window and its ungated canvas, which the
        recurrent and residual networks render as they go (DAIR must; AIR does it for the same code); None from
        the global network, which infers every step before anything is drawn (air.generative.step_render draws
        them when they are needed).

    Every network computes its steps with one function, `guide_step`; they differ only in what a step reads and
    what it carries to the next (see _global_posterior and _sequential_posterior). Every step is computed as if
    all earlier steps were present: only then does it affect the scene (cumulative gating), so this is the
    posterior the objective needs and the T + 1 counts can be enumerated from one pass.
    """
    if config.inference == "global":
        return _global_posterior(params, config, images, noise)
    return _sequential_posterior(params, config, images, noise)


def guide_step(params, config, heads, source, noise=None):
    """One attention step for N rows: from its heads' outputs (N, head_width) to its latents, as a dict of

    pres_logit (N,); log_scale (N,) and shift (N, 2), the z_where it uses; where_location and where_logsd (N, 3)
    for a stochastic z_where; what_mean, what_logvar and z_what (N, D).

    `source` (N, H, W) is what the glimpse encoder crops (object_encoder="glimpse"): the image, or for DAIR what
    the earlier steps left unexplained. `noise` holds this step's "what" (N, D) and "where" (N, 3) draws, or is
    None for the posterior means. With a stochastic z_where the glimpse is cut where the sampled z_where puts the
    window, so z_what describes the very window the decoder then draws there: q(z_what | x, z_where) is
    conditioned on the z_where that was drawn, as the paper's and Pyro's guides sample them in turn. (Cut at the
    mean, z_what would describe a crop the reconstruction never uses.)
    """
    n = heads.shape[0]
    parts = _split_heads(heads, config)
    out = {"pres_logit": parts["pres_logit"].reshape(n)}
    log_scale, shift = bounded_log_scale(parts["log_scale"].reshape(n), config), parts["shift"]
    if config.z_where == "stochastic":  # the posterior's location and spread, for the KL
        out["where_location"] = np.concatenate([log_scale.reshape(n, 1), shift], axis=1)
        out["where_logsd"] = parts["where_logsd"]
        if noise is not None:
            log_scale, shift = sample_where(out["where_location"], out["where_logsd"], config, noise["where"])
    if config.object_encoder == "glimpse":
        mean, logvar = glimpse_posterior(params, config, source, log_scale, shift)
    else:
        mean, logvar = parts["what_mean"], np.clip(parts["what_logvar"], *config.what_logvar_range)
    out.update(log_scale=log_scale, shift=shift, what_mean=mean, what_logvar=logvar,
               z_what=_sample_what(mean, logvar, None if noise is None else noise["what"]))
    return out


def _global_posterior(params, config, images, noise):
    """The seed's network: one MLP pass reads the scene and the heads give every step's outputs at once, so the
    steps carry nothing between them and guide_step runs once over all B T of them."""
    b, t, size = images.shape[0], config.max_steps, config.canvas_size
    features = mlp(params["encoder"], images.reshape(b, -1), final=relu)
    heads = dense(params["heads"], features).reshape(b * t, head_width(config))
    source = None
    if config.object_encoder == "glimpse":  # each scene once per step
        source = numpy.repeat(numpy.asarray(getval(images)), t, axis=0).reshape(b * t, size, size)
    step_noise = None if noise is None else {k: v.reshape((b * t,) + v.shape[2:]) for k, v in noise.items()
                                             if k in STEP_NOISE}
    out = guide_step(params, config, heads, source, step_noise)
    post = {k: v.reshape((b, t) + v.shape[1:]) for k, v in out.items()}
    return {**post, "windows": None, "canvases": None}


def _sequential_posterior(params, config, images, noise):
    """AIR's and DAIR's network: an LSTM runs over the steps; each step reads the encoded image (AIR) or what the
    earlier steps left unexplained (DAIR), with the previous step's z_where and z_what, and is rendered before the
    next, which carries the LSTM's state, those latents and the unexplained image on. With step_memory="none"
    each step starts from a zero cell and reads the encoded residual alone: the LSTM is then one gated layer."""
    b, t, size = images.shape[0], config.max_steps, config.canvas_size
    hidden = config.rnn_hidden
    x = images.reshape(b, size * size)
    dtype = numpy.result_type(x)
    h = c = numpy.zeros((b, hidden), dtype)
    previous = numpy.zeros((b, 3 + config.what_dim), dtype)
    unexplained = x
    scene = None  # with composition="max": the running maximum of the steps' canvases so far
    features = mlp(params["encoder"], x, final=relu)  # the recurrent network reads the same image every step
    steps = []
    for step in range(t):
        if config.inference == "residual" and step > 0:
            features = mlp(params["encoder"], unexplained, final=relu)
        if config.step_memory == "lstm":
            h, c = lstm_step(params["lstm"], np.concatenate([features, previous, h], axis=1), c)
        else:
            h, _ = lstm_step(params["lstm"], features, c)  # c stays zero: nothing is carried
        # The glimpse is cut from what this step reads: the image, or for DAIR what is still unexplained.
        source = (unexplained if config.inference == "residual" else x).reshape(b, size, size)
        step_noise = None if noise is None else {k: v[:, step] for k, v in noise.items() if k in STEP_NOISE}
        out = guide_step(params, config, dense(params["heads"], h), source, step_noise)
        window = decode(params, config, out["z_what"])
        canvas = window_to_image(window, out["log_scale"], out["shift"], size)
        if config.composition == "max":
            flat = canvas.reshape(b, size * size)
            scene = flat if scene is None else np.maximum(scene, flat)
            unexplained = x - scene
        else:
            unexplained = unexplained - canvas.reshape(b, size * size)
        previous = np.concatenate([out["log_scale"].reshape(b, 1), out["shift"], out["z_what"]], axis=1)
        steps.append({**out, "windows": window, "canvases": canvas})
    return {key: np.stack([s[key] for s in steps], axis=1) for key in steps[0]}


def _sample_what(mean, logvar, eps):
    """z_what = mean + exp(logvar / 2) eps, standard normal eps of mean's shape; the mean itself if eps is None."""
    return mean if eps is None else mean + np.exp(0.5 * logvar) * eps


def glimpse_posterior(params, config, images, log_scale, shift):
    """z_what's mean and log-variance (N, D) from glimpses of images (N, H, W) cropped at (log_scale (N,),
    shift (N, 2)): the paper's object encoder, which sees only what the step attends to."""
    p = config.window_size
    glimpses = image_to_window(images, log_scale, shift, p)
    mean, logvar = np.split(mlp(params["glimpse_encoder"], glimpses.reshape(-1, p * p)), 2, axis=1)
    return mean, np.clip(logvar, *config.what_logvar_range)


def bounded_log_scale(raw, config):
    """The heads' log s kept in log_scale_range by config.scale_bound: clipped, or c + h tanh((raw - c) / h) with
    c the range's centre and h its half-width, which is raw itself to within 1% of h while |raw - c| < h / 4
    and whose gradient never vanishes, so a location pushed past a bound can come back."""
    low, high = config.log_scale_range
    if config.scale_bound == "clip":
        return np.clip(raw, low, high)
    centre, half = 0.5 * (low + high), 0.5 * (high - low)
    return centre + half * np.tanh((raw - centre) / half)


def sample_where(location, logsd, config, where_noise):
    """z_where = (log s, tx, ty) drawn from N(location, exp(logsd)^2), location, logsd and where_noise (..., 3),
    log s clipped again to log_scale_range: (log_scale (...,), shift (..., 2))."""
    log_scale, shift = np.split(location + np.exp(logsd) * where_noise, [1], axis=-1)
    return np.clip(log_scale[..., 0], *config.log_scale_range), shift


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
