"""Median training-step time (autograd.grad of the loss on the flat vector + Adam), seed config, batch 32.

Run single-threaded:
  OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 python experiments/_perf_scratch/step.py
Flags: --no-tune (skip air.runtime.tune_allocator), --reps N, --dtype float32|float64, --parts
"""
import argparse
import dataclasses
import time

import autograd
import numpy

import air
from air.model import init_params
from air.objective import loss, sample_noise
from air.optim import adam_init, adam_update
from air.tree import Layout


def setup(dtype, batch=32, seed=0):
    config = dataclasses.replace(air.preset("seed"), dtype=dtype)
    rng = numpy.random.default_rng(seed)
    params = init_params(rng, config)
    layout = Layout(params)
    flat = layout.flatten(params)
    images = rng.uniform(0, 1, (batch, 32, 32)).astype(dtype) ** 4  # mostly dark, like the scenes
    noise = sample_noise(rng, config, batch)
    return config, layout, flat, images, noise


def median_ms(fn, reps, warmup=30):
    for _ in range(warmup):
        fn()
    times = numpy.empty(reps)
    for i in range(reps):
        start = time.perf_counter()
        fn()
        times[i] = time.perf_counter() - start
    return 1e3 * numpy.median(times), 1e3 * numpy.percentile(times, 10)


def bench(dtype, reps, parts):
    config, layout, flat, images, noise = setup(dtype)
    state = adam_init(flat)
    objective = lambda v: loss(layout.unflatten(v), images, noise, config, 0.7, 0.6)
    grad = autograd.grad(objective)

    def step():
        nonlocal state
        state = adam_update(state, grad(state["params"]), 1e-5)

    med, p10 = median_ms(step, reps)
    print(f"{dtype}: step median {med:.3f} ms  (p10 {p10:.3f})")
    if parts:
        g = grad(flat)
        for name, fn in (("forward", lambda: objective(flat)), ("grad", lambda: grad(flat)),
                         ("adam", lambda: adam_update(state, g, 1e-5))):
            med, p10 = median_ms(fn, reps)
            print(f"    {name:8s} median {med:.3f} ms  (p10 {p10:.3f})")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--reps", type=int, default=300)
    parser.add_argument("--dtype", nargs="*", default=["float32", "float64"])
    parser.add_argument("--no-tune", action="store_true")
    parser.add_argument("--parts", action="store_true")
    args = parser.parse_args()
    if not args.no_tune:
        try:
            from air.runtime import tune_allocator
            print("tune_allocator:", tune_allocator())
        except ImportError:
            print("no air.runtime yet")
    for dtype in args.dtype:
        bench(dtype, args.reps, args.parts)


if __name__ == "__main__":
    main()
