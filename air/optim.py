"""Adam (Kingma & Ba 2015) as plain functions over an explicit state, in the style of JAX's optimizers.

The state is a dict of arrays and ints, so a checkpoint can store it and a resumed run continue
bit for bit. It works on any array (the trainer passes one flat parameter vector, see air.tree).
"""
import math

import numpy as np


def adam_init(params):
    """Optimizer state for `params`: step count, first and second moments, and the parameters."""
    return {"step": 0, "params": np.array(params, copy=True),
            "m": np.zeros_like(params), "v": np.zeros_like(params)}


def adam_update(state, grads, lr, betas=(0.9, 0.999), eps=1e-8):
    """The state after one Adam step along `grads`. The old state's arrays are reused (updated in place)."""
    b1, b2 = betas
    step = state["step"] + 1
    m, v, params = state["m"], state["v"], state["params"]
    # In-place updates: Adam runs over every parameter each step, and fresh temporaries cost as much
    # as the arithmetic. A state is therefore consumed by the update that follows it.
    m *= b1
    m += (1.0 - b1) * grads
    v *= b2
    v += (1.0 - b2) * (grads * grads)
    # Bias corrections folded into the step size and epsilon (as in Kingma & Ba, Algorithm 1, last note).
    step_size = lr * math.sqrt(1.0 - b2 ** step) / (1.0 - b1 ** step)
    denom = np.sqrt(v)
    denom += eps * math.sqrt(1.0 - b2 ** step)
    params -= step_size * (m / denom)
    return {"step": step, "params": params, "m": m, "v": v}


def adam_params(state):
    return state["params"]
