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
