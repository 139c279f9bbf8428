"""The negative ELBO of air.loss and its gradient, derived by hand in plain numpy (no autograd).

This is the cross-check of autograd's gradient (tests/test_gradients.py) and the reference of the speed
benchmark. It is written from the math of the seed's objective, not from air's code:

    h        = encoder(x)                     MLP, ReLU after every layer (the last one too)
    heads    = h Wh + bh -> (B, T, 4 + 2 D)   per step: logit | log s, tx, ty | mu (D) | lv (D)
               log s clipped to config.log_scale_range, lv to config.what_logvar_range
    z_what   = mu + exp(lv / 2) * eps
    z_pres   = sigmoid((logit + g) / temperature),   gate_t = prod_{i <= t} z_pres_i
    window   = sigmoid(relu(z_what Wd1 + bd1) Wd2 + bd2) -> (P, P)
    canvas   = K_y window K_x^T,  K[i, j] = max(0, 1 - |src_i - j|)
               src_k = ((u_k - t) / s + 1) (P - 1) / 2,  u_k = -1 + 2 k / (W - 1),  s = exp(log s)
    recon    = sum_t gate_t canvas_t
    loss     = recon_weight * sum (recon - x)^2 / B
             + kl_scale * (kl_what_weight * KL_what + kl_pres_weight * KL_pres)
    KL_what  = 0.5 sum (mu^2 + exp(lv) - lv - 1) / B
    KL_pres  = sum_t [q log(q / p_t) + (1 - q) log((1 - q) / (1 - p_t))] / B,   q = sigmoid(logit)

Every array keeps the dtype of the parameters: float32 in gives float32 out, with no float64 temporaries.
"""
import numpy as np

def sigmoid(x):
    """1 / (1 + exp(-x)) without overflow for large |x|."""
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def log_sigmoid(x):
    return -np.logaddexp(0.0, -x)


def _grid(n, dtype):
    """Normalised pixel-centre coordinates -1 ... 1 (corners aligned)."""
    return (-1.0 + 2.0 * np.arange(n) / (n - 1)).astype(dtype)


# --- the spatial transformer ---------------------------------------------------------------------------------------


def render(windows, log_scale, shift, image_size):
    """windows (N, P, P), log_scale (N,), shift (N, 2) = (tx, ty) -> canvases (N, W, W) and the backward cache."""
    p = windows.shape[-1]
    dtype = windows.dtype
    half = dtype.type(0.5 * (p - 1))
    pixels_per_unit = half * np.exp(-log_scale)  # (P - 1) / (2 s)
    u = _grid(image_size, dtype)
    # src[n, a, k]: window-pixel coordinate read by canvas column k (a = 0) or row k (a = 1).
    src = (u - shift[:, :, None]) * pixels_per_unit[:, None, None] + half
    # Tent kernels max(0, 1 - |src - j|) and their slopes -sign(src - j) where |src - j| < 1, computed in place:
    # these (N, 2, W, P) arrays are the largest temporaries of the whole loss.
    slope = src[..., None] - np.arange(p, dtype=dtype)
    kernels = np.abs(slope)
    np.subtract(1, kernels, out=kernels)
    np.maximum(kernels, 0, out=kernels)
    np.sign(slope, out=slope)
    np.negative(slope, out=slope)
    slope *= kernels > 0
    k_x, k_y = kernels[:, 0], kernels[:, 1]
    window_by_columns = np.matmul(windows, k_x.transpose(0, 2, 1))  # window K_x^T: (N, P, W)
    canvases = np.matmul(k_y, window_by_columns)
    cache = dict(windows=windows, pixels_per_unit=pixels_per_unit, half=half, src=src, k_x=k_x, k_y=k_y,
                 slope=slope, window_by_columns=window_by_columns)
    return canvases, cache


def render_backward(d_canvases, cache):
    """Gradients of a scalar w.r.t. (windows, log_scale, shift) given its gradient w.r.t. the canvases."""
    k_x, k_y, windows = cache["k_x"], cache["k_y"], cache["windows"]
    # canvas = K_y A K_x^T:  dA = K_y^T dC K_x,  dK_y = dC (A K_x^T)^T,  dK_x = dC^T K_y A = (K_y^T dC)^T A.
    left = np.matmul(k_y.transpose(0, 2, 1), d_canvases)  # K_y^T dC: (N, P, W)
    d_windows = np.matmul(left, k_x)
    d_k_x = np.matmul(left.transpose(0, 2, 1), windows)
    d_k_y = np.matmul(d_canvases, cache["window_by_columns"].transpose(0, 2, 1))
    slope = cache["slope"]
    d_src = np.stack([np.einsum("nkj,nkj->nk", d_k_x, slope[:, 0]), np.einsum("nkj,nkj->nk", d_k_y, slope[:, 1])],
                     axis=1)  # (N, 2, W)
    # src = (u - t) (P - 1) / (2 s) + (P - 1) / 2:  d src / d t = -(P - 1) / (2 s),  d src / d log s = -(src - half).
    d_shift = -cache["pixels_per_unit"][:, None] * np.sum(d_src, axis=-1)
    d_log_scale = -np.sum(d_src * (cache["src"] - cache["half"]), axis=(1, 2))
    return d_windows, d_log_scale, d_shift


# --- the loss ------------------------------------------------------------------------------------------------------


def forward(params, images, noise, config, temperature, kl_scale=1.0):
    """(loss, cache): the loss as a scalar of the parameters' dtype and everything `backward` needs."""
    dtype = params["encoder"][0]["w"].dtype
    as_scalar = dtype.type
    b, t, d = images.shape[0], config.max_steps, config.what_dim
    p, size = config.window_size, config.canvas_size
    n = b * t
    x = np.asarray(images, dtype).reshape(b, -1)
    eps = np.asarray(noise["what"], dtype)
    gumbel = np.asarray(noise["gumbel"], dtype)

    # Encoder: ReLU after every layer.
    encoder_inputs, encoder_pre = [], []
    h = x
    for layer in params["encoder"]:
        encoder_inputs.append(h)
        a = np.matmul(h, layer["w"]) + layer["b"]
        encoder_pre.append(a)
        h = a * (a > 0)

    # The heads layer: per step t the 4 + 2 D columns logit | log s | tx, ty | mean (D) | logvar (D).
    w_heads = params["heads"]["w"]
    heads = (np.matmul(h, w_heads) + params["heads"]["b"]).reshape(b, t, 4 + 2 * d)
    logit, log_scale_raw = heads[..., 0], heads[..., 1]
    shift, mean, logvar_raw = heads[..., 2:4], heads[..., 4:4 + d], heads[..., 4 + d:]
    log_scale = np.clip(log_scale_raw, *config.log_scale_range)
    logvar = np.clip(logvar_raw, *config.what_logvar_range)

    std = np.exp(0.5 * logvar)
    z_what = mean + std * eps
    inv_temperature = as_scalar(1.0 / temperature)
    z_pres = sigmoid((logit + gumbel) * inv_temperature)
    gates = np.cumprod(z_pres, axis=1)

    # Decoder: ReLU between layers, sigmoid after the last.
    decoder_inputs, decoder_pre = [], []
    y = z_what.reshape(n, d)
    for i, layer in enumerate(params["decoder"]):
        decoder_inputs.append(y)
        a = np.matmul(y, layer["w"]) + layer["b"]
        decoder_pre.append(a)
        y = a * (a > 0) if i < len(params["decoder"]) - 1 else sigmoid(a)
    windows = y.reshape(n, p, p)

    canvases, render_cache = render(windows, log_scale.reshape(n), shift.reshape(n, 2), size)
    canvases = canvases.reshape(b, t, size * size)
    recon = np.matmul(gates[:, None, :], canvases)[:, 0]  # (B, W * W)
    residual = recon - x

    prior = np.asarray(config.pres_prior, dtype=np.float64)
    log_prior, log_not_prior = np.log(prior).astype(dtype), np.log1p(-prior).astype(dtype)
    log_q, log_not_q = log_sigmoid(logit), log_sigmoid(-logit)
    q, not_q = np.exp(log_q), np.exp(log_not_q)
    terms = {
        "recon": np.sum(residual * residual) / b,
        "kl_what": 0.5 * np.sum(mean * mean + np.exp(logvar) - logvar - 1) / b,
        "kl_pres": np.sum(q * (log_q - log_prior) + not_q * (log_not_q - log_not_prior)) / b,
    }
    kl_scale = as_scalar(kl_scale)
    loss = (as_scalar(config.recon_weight) * terms["recon"]
            + kl_scale * (as_scalar(config.kl_what_weight) * terms["kl_what"]
                          + as_scalar(config.kl_pres_weight) * terms["kl_pres"]))
    cache = dict(config=config, dtype=dtype, b=b, t=t, d=d, n=n, params=params, terms=terms, kl_scale=kl_scale,
                 encoder_inputs=encoder_inputs, encoder_pre=encoder_pre, h=h, w_heads=w_heads,
                 logit=logit, log_scale_raw=log_scale_raw, log_scale=log_scale, shift=shift, logvar_raw=logvar_raw,
                 logvar=logvar, mean=mean,
                 std=std, eps=eps, inv_temperature=inv_temperature, z_pres=z_pres, gates=gates,
                 decoder_inputs=decoder_inputs, decoder_pre=decoder_pre, windows=windows, render=render_cache,
                 canvases=canvases, residual=residual, q=q, not_q=not_q,
                 prior_logit=(log_prior - log_not_prior))
    return as_scalar(loss), cache


def backward(cache):
    """The gradient of forward's loss w.r.t. every parameter, as a tree shaped like params."""
    c = cache
    config, params, b, t, d, n = c["config"], c["params"], c["b"], c["t"], c["d"], c["n"]
    as_scalar = c["dtype"].type
    kl_what_weight = c["kl_scale"] * as_scalar(config.kl_what_weight) / b
    kl_pres_weight = c["kl_scale"] * as_scalar(config.kl_pres_weight) / b

    # Reconstruction: d/d recon of recon_weight * sum (recon - x)^2 / B.
    d_recon = (as_scalar(2 * config.recon_weight) / b) * c["residual"]  # (B, W * W)
    d_gates = np.matmul(c["canvases"], d_recon[:, :, None])[..., 0]  # (B, T)
    d_canvases = c["gates"][:, :, None] * d_recon[:, None, :]
    size = config.canvas_size
    d_windows, d_log_scale, d_shift = render_backward(d_canvases.reshape(n, size, size), c["render"])

    # gate_t = gate_{t-1} z_pres_t, so d z_pres_j = gate_{j-1} * sum_{t >= j} d gate_t prod_{j < i <= t} z_pres_i;
    # the sum is accumulated from the last step backwards (no division by z_pres).
    z_pres, gates = c["z_pres"], c["gates"]
    d_z_pres = np.empty_like(z_pres)
    carried = np.zeros_like(d_gates[:, 0])
    for step in reversed(range(t)):
        carried = d_gates[:, step] + (carried * z_pres[:, step + 1] if step + 1 < t else 0)
        d_z_pres[:, step] = carried * gates[:, step - 1] if step > 0 else carried
    d_logit = d_z_pres * z_pres * (1 - z_pres) * c["inv_temperature"]
    # KL_pres per step is q (logit - logit p) + log(1 - q) - log(1 - p), whose derivative w.r.t. the logit is
    # q (1 - q) (logit - logit p).
    d_logit = d_logit + kl_pres_weight * c["q"] * c["not_q"] * (c["logit"] - c["prior_logit"])

    # Decoder, last layer first (sigmoid output).
    decoder = params["decoder"]
    d_decoder = [None] * len(decoder)
    grad_out = d_windows.reshape(n, -1)
    y = c["windows"].reshape(n, -1)
    d_pre = grad_out * y * (1 - y)
    for i in reversed(range(len(decoder))):
        if i < len(decoder) - 1:
            d_pre = grad_out * (c["decoder_pre"][i] > 0)
        d_decoder[i] = {"w": np.matmul(c["decoder_inputs"][i].T, d_pre), "b": np.sum(d_pre, axis=0)}
        grad_out = np.matmul(d_pre, decoder[i]["w"].T)
    d_z_what = grad_out.reshape(b, t, d)

    # z_what = mean + exp(lv / 2) eps, plus KL_what; the clips pass the gradient only strictly inside their range.
    d_mean = d_z_what + kl_what_weight * c["mean"]
    d_logvar = d_z_what * (0.5 * c["std"] * c["eps"]) + kl_what_weight * 0.5 * (np.exp(c["logvar"]) - 1)
    low, high = config.what_logvar_range
    d_logvar_raw = d_logvar * ((c["logvar_raw"] > low) & (c["logvar_raw"] < high))
    low, high = config.log_scale_range
    d_log_scale_raw = d_log_scale.reshape(b, t) * ((c["log_scale_raw"] > low) & (c["log_scale_raw"] < high))
    d_heads = np.concatenate([d_logit[..., None], d_log_scale_raw[..., None], d_shift.reshape(b, t, 2), d_mean,
                              d_logvar_raw], axis=2).reshape(b, t * (4 + 2 * d))
    grads = {"heads": {"w": np.matmul(c["h"].T, d_heads), "b": np.sum(d_heads, axis=0)}, "decoder": d_decoder}

    # Encoder, last layer first (ReLU after every layer).
    grad_out = np.matmul(d_heads, c["w_heads"].T)
    encoder = params["encoder"]
    d_encoder = [None] * len(encoder)
    for i in reversed(range(len(encoder))):
        d_pre = grad_out * (c["encoder_pre"][i] > 0)
        d_encoder[i] = {"w": np.matmul(c["encoder_inputs"][i].T, d_pre), "b": np.sum(d_pre, axis=0)}
        if i > 0:
            grad_out = np.matmul(d_pre, encoder[i]["w"].T)
    grads["encoder"] = d_encoder
    return grads


def loss_and_grad(params, images, noise, config, temperature, kl_scale=1.0):
    """(loss, grads): air.loss and its gradient, by hand; grads is a tree shaped like params."""
    loss, cache = forward(params, images, noise, config, temperature, kl_scale)
    return loss, backward(cache)


# --- where the loss is not smooth ----------------------------------------------------------------------------------


def kink_distances(cache):
    """How far the forward pass is from every kink of the loss, as a dict of smallest distances:

    relu: |pre-activation| of every ReLU (encoder and decoder hidden layers);
    tent: distance of every transformer source coordinate in [-1.5, P + 0.5] to the nearest integer
          (the tent kernels bend at the integers -1 ... P);
    clip: distance of every clipped quantity (log s, z_what log-variance) to its range's ends.
    """
    config = cache["config"]
    pre = cache["encoder_pre"] + cache["decoder_pre"][:-1]
    src = cache["render"]["src"]
    near = src[(src > -1.5) & (src < config.window_size + 0.5)]
    clip = [np.abs(cache["log_scale_raw"] - bound) for bound in config.log_scale_range]
    clip += [np.abs(cache["logvar_raw"] - bound) for bound in config.what_logvar_range]
    return {
        "relu": float(min(np.min(np.abs(a)) for a in pre)),
        "tent": float(np.min(np.abs(near - np.round(near)), initial=np.inf)),
        "clip": float(min(np.min(a) for a in clip)),
    }


def kink_pattern(cache):
    """Which smooth piece of the loss the forward pass lies on: the ReLU signs, the integer part of every
    transformer source coordinate and the clip masks. Two points with equal patterns (and close together)
    are joined by a smooth path, so finite differences between them are meaningful."""
    config = cache["config"]
    pre = cache["encoder_pre"] + cache["decoder_pre"][:-1]
    low, high = config.log_scale_range
    lv_low, lv_high = config.what_logvar_range
    return ([a > 0 for a in pre]
            + [np.floor(np.clip(cache["render"]["src"], -2, config.window_size + 1))]
            + [(cache["log_scale_raw"] > low) & (cache["log_scale_raw"] < high),
               (cache["logvar_raw"] > lv_low) & (cache["logvar_raw"] < lv_high)])
