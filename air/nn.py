"""Dense layers and initialisers as params-first functions over plain dicts of arrays."""
import autograd.numpy as np


def relu(x):
    # x * (x > 0) records one multiply; np.maximum records a comparison-based gradient that costs more.
    return x * (x > 0)


def sigmoid(x):
    return 0.5 * (np.tanh(0.5 * x) + 1.0)


def log_sigmoid(x):
    """log(sigmoid(x)), exact for large |x|."""
    return -np.logaddexp(0.0, -x)


def dense(params, x):
    """x (..., n_in) -> (..., n_out) with params {'w': (n_in, n_out), 'b': (n_out,)}."""
    return np.matmul(x, params["w"]) + params["b"]


def mlp(layers, x, final=None):
    """A stack of dense layers with ReLU between them; `final` (or nothing) after the last one."""
    for layer in layers[:-1]:
        x = relu(dense(layer, x))
    x = dense(layers[-1], x)
    return x if final is None else final(x)


def conv3x3(params, x):
    """A 3 x 3 convolution with zero padding ("same" size): x (N, H, W, C_in) -> (N, H, W, C_out), params
    {'w': (9 C_in, C_out), 'b': (C_out,)}, the rows of w ordered by (row offset, column offset, input channel).
    Written as the nine shifted copies of x side by side and one matmul (im2col). Each copy is a roll with
    the wrapped-round edge masked to zero, not a slice of a padded x: autograd's backward of a slice is a
    scatter (np.add.at), many times slower than a roll back. The matmul is one 2-D product: on the 4-D columns,
    autograd's gradient for w would form a (N, H, 9 C_in, C_out) array before summing it."""
    n, h, w, c = x.shape
    columns = np.concatenate([_shifted(x, i, j) for i in (-1, 0, 1) for j in (-1, 0, 1)], axis=3)
    return np.reshape(dense(params, np.reshape(columns, (n * h * w, 9 * c))), (n, h, w, -1))


def _shifted(x, di, dj):
    """x (N, H, W, C) moved so that out[:, r, s] = x[:, r + di, s + dj], zero where that lies outside x."""
    if di == dj == 0:
        return x
    h, w = x.shape[1:3]
    inside = ((np.arange(h) + di >= 0) & (np.arange(h) + di < h))[:, None] & \
        ((np.arange(w) + dj >= 0) & (np.arange(w) + dj < w))[None, :]
    if di:  # one axis a roll: autograd's backward of np.roll takes a single shift
        x = np.roll(x, -di, axis=1)
    if dj:
        x = np.roll(x, -dj, axis=2)
    return x * inside[:, :, None].astype(x.dtype)


def upsample2(x):
    """Nearest-neighbour upsampling by 2 of x (N, H, W, C) -> (N, 2H, 2W, C)."""
    return np.repeat(np.repeat(x, 2, axis=1), 2, axis=2)


def lstm_step(params, inputs, cell):
    """One LSTM step (Hochreiter & Schmidhuber 1997, with forget gates): inputs (B, n_in + H) are the step's
    input and the previous hidden state side by side; params {'w': (n_in + H, 4 H), 'b': (4 H,)} hold the
    input, forget, output and candidate blocks in that order. Returns the new (hidden, cell), each (B, H)."""
    i, f, o, g = np.split(dense(params, inputs), 4, axis=1)
    cell = sigmoid(f) * cell + sigmoid(i) * np.tanh(g)
    return sigmoid(o) * np.tanh(cell), cell


def he_normal(rng, n_in, n_out, dtype, gain=1.0):
    """A dense layer with weights ~ gain * N(0, 2 / n_in) (He et al. 2015) and zero bias."""
    w = gain * rng.standard_normal((n_in, n_out)) * np.sqrt(2.0 / n_in)
    return {"w": w.astype(dtype), "b": np.zeros(n_out, dtype)}


def small_normal(rng, n_in, n_out, dtype, scale=0.01):
    """A dense layer with weights ~ N(0, scale^2) and zero bias: an output that starts near its bias."""
    return {"w": (scale * rng.standard_normal((n_in, n_out))).astype(dtype), "b": np.zeros(n_out, dtype)}
