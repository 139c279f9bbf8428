"""Median times of the traced forward pass (make_vjp) and the backward pass, per dtype (measurement tool)."""
import sys
import time

import autograd.core as core
import numpy

from step import setup
from air.objective import loss


def phases(dtype, reps=300):
    config, layout, flat, images, noise = setup(dtype)
    f = lambda v: loss(layout.unflatten(v), images, noise, config, 0.7, 0.6)
    fw, bw, plain = [], [], []
    one = numpy.ones((), dtype)
    for i in range(reps + 30):
        t0 = time.perf_counter()
        vjp, value = core.make_vjp(f, flat)
        t1 = time.perf_counter()
        vjp(one)
        t2 = time.perf_counter()
        f(flat)
        t3 = time.perf_counter()
        if i >= 30:
            fw.append(t1 - t0), bw.append(t2 - t1), plain.append(t3 - t2)
    ms = lambda v: 1e3 * numpy.median(v)
    print(f"{dtype}: untraced forward {ms(plain):.3f}  traced forward {ms(fw):.3f}  backward {ms(bw):.3f} ms")


if __name__ == "__main__":
    for dtype in sys.argv[1:] or ["float32", "float64"]:
        phases(dtype)
