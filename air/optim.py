"""Adam (Kingma & Ba 2015) as plain functions over an explicit state, in the style of JAX's optimizers.

The state is a dict of arrays and ints, so a checkpoint can store it and a resumed run continue
bit for bit. It works on any array (the trainer passes one flat parameter vector, see air.tree).
"""
import math

import numpy as np

# Adam runs in blocks of this many bytes per array, so that its dozen passes over a block stay in the
# CPU's cache; whole-vector passes went to memory each time. On the seed's 266k parameters (batch 32, one
# thread) an update took 0.83 ms in float32 and 1.85 ms in float64 over whole vectors, 0.54 and 1.36 ms in
# blocks of 256 kB (64 kB blocks: 0.65 and 1.32 ms; 16 kB: 1.0 and 1.65 ms, the Python overhead per block).
_BLOCK_BYTES = 2 ** 18


def adam_init(params):
    """Optimizer state for `params`: step count, first and second moments, and the parameters."""
    return {"step": 0, "params": np.array(params, copy=True),
            "m": np.zeros_like(params), "v": np.zeros_like(params)}


def adam_update(state, grads, lr, betas=(0.9, 0.999), eps=1e-8):
    """The state after one Adam step along `grads`. The old state's arrays are reused (updated in place).

    lr is a number, or an array shaped like the parameters for a learning rate per parameter (NVIL's
    baseline learns faster than the model it serves)."""
    b1, b2 = betas
    step = state["step"] + 1
    m, v, params = state["m"], state["v"], state["params"]
    # Bias corrections folded into the step size and epsilon (as in Kingma & Ba, Algorithm 1, last note).
    rates = np.reshape(lr, -1) if np.ndim(lr) else None
    step_size = (1.0 if rates is not None else lr) * math.sqrt(1.0 - b2 ** step) / (1.0 - b1 ** step)
    eps_hat = eps * math.sqrt(1.0 - b2 ** step)
    # In-place updates, one scratch block, the same arithmetic in the same order as the textbook expression
    # (so the result is bit for bit that of whole-array numpy). A state is consumed by the update that follows it.
    if not all(a.flags.c_contiguous for a in (m, v, params)):
        raise ValueError("adam_update needs contiguous moment and parameter arrays (it updates them in place)")
    flat = [np.reshape(a, -1) for a in (grads, m, v, params)]
    block = max(1, _BLOCK_BYTES // m.itemsize)
    scratch = np.empty(min(block, m.size), m.dtype)
    for start in range(0, m.size, block):
        g, m_b, v_b, p_b = (a[start:start + block] for a in flat)
        t = scratch[:g.size]
        m_b *= b1
        m_b += np.multiply(g, 1.0 - b1, out=t)
        v_b *= b2
        np.multiply(g, g, out=t)
        t *= 1.0 - b2
        v_b += t
        np.sqrt(v_b, out=t)
        t += eps_hat
        np.divide(m_b, t, out=t)
        t *= step_size
        if rates is not None:
            t *= rates[start:start + block]
        p_b -= t
    return {"step": step, "params": params, "m": m, "v": v}


def adam_params(state):
    return state["params"]
