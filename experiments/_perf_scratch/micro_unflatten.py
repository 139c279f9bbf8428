"""Unflatten variants: grad of sum_k <leaf_k, c_k> (one matmul-free dot per leaf), minus the same with the leaves
given as separate arguments (measurement tool)."""
import timeit

import autograd
import autograd.numpy as np
import numpy

from step import setup

for dtype in ("float32", "float64"):
    config, layout, flat, images, noise = setup(dtype)
    cs = [numpy.random.rand(int(numpy.prod(s))).astype(dtype) for s in layout.shapes]
    starts = numpy.concatenate([[0], layout.cuts])
    ends = numpy.concatenate([layout.cuts, [flat.size]])

    def split_reshape(v):
        return [p if len(s) == 1 else p.reshape(s) for p, s in zip(np.split(v, layout.cuts), layout.shapes)]

    def slices(v):
        return [v[a:b] if len(s) == 1 else v[a:b].reshape(s) for a, b, s in zip(starts, ends, layout.shapes)]

    def use(leaves):
        return sum(np.dot(leaf.reshape(-1), c) for leaf, c in zip(leaves, cs))

    leaves = [p.reshape(s) for p, s in zip(numpy.split(flat, layout.cuts), layout.shapes)]
    base = autograd.grad(lambda *ls: use(ls), argnum=list(range(len(leaves))))
    t0 = min(timeit.repeat(lambda: base(*leaves), number=100, repeat=7)) / 100
    for name, un in (("split", split_reshape), ("slices", slices)):
        g = autograd.grad(lambda v: use(un(v)))
        t = min(timeit.repeat(lambda: g(flat), number=100, repeat=7)) / 100
        print(f"{dtype} {name:10s} {1e6 * (t - t0):.0f} us more than separate leaves ({1e6 * t0:.0f})")
