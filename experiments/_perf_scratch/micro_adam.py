"""Adam update variants on the seed's flat vector (measurement tool)."""
import math
import timeit

import numpy as np

from air.optim import adam_init, adam_update


def adam_chunked(state, grads, lr, betas=(0.9, 0.999), eps=1e-8, chunk=16384):
    b1, b2 = betas
    step = state["step"] + 1
    m, v, params = state["m"], state["v"], state["params"]
    step_size = lr * math.sqrt(1.0 - b2 ** step) / (1.0 - b1 ** step)
    eps_hat = eps * math.sqrt(1.0 - b2 ** step)
    buf = np.empty(min(chunk, grads.size), grads.dtype)
    for start in range(0, grads.size, chunk):
        sl = slice(start, start + chunk)
        g, mc, vc, pc = grads[sl], m[sl], v[sl], params[sl]
        t = buf[:g.size]
        mc *= b1
        np.multiply(g, 1.0 - b1, out=t)
        mc += t
        vc *= b2
        np.multiply(g, g, out=t)
        t *= 1.0 - b2
        vc += t
        np.sqrt(vc, out=t)
        t += eps_hat
        np.divide(mc, t, out=t)
        t *= step_size
        pc -= t
    return {"step": step, "params": params, "m": m, "v": v}


for dtype in (np.float32, np.float64):
    rng = np.random.default_rng(0)
    n = 266388
    p0 = rng.standard_normal(n).astype(dtype)
    gs = [rng.standard_normal(n).astype(dtype) for _ in range(3)]
    ref = adam_init(p0)
    for g in gs:
        ref = adam_update(ref, g, 1e-3)
    for chunk in (4096, 8192, 16384, 32768, 65536):
        s = adam_init(p0)
        for g in gs:
            s = adam_chunked(s, g, 1e-3, chunk=chunk)
        same = all(np.array_equal(s[k], ref[k]) for k in ("params", "m", "v"))
        st = adam_init(p0)
        t = min(timeit.repeat(lambda: adam_chunked(st, gs[0], 1e-9, chunk=chunk), number=100, repeat=7)) / 100
        print(dtype.__name__, "chunk", chunk, f"{1e6 * t:.0f} us", "bitwise equal" if same else "DIFFERENT")
    st = adam_init(p0)
    t = min(timeit.repeat(lambda: adam_update(st, gs[0], 1e-9), number=100, repeat=7)) / 100
    print(dtype.__name__, "current", f"{1e6 * t:.0f} us")
