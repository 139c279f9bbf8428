"""Per-primitive timing of autograd's backward pass (and of add_outgrads), for the training gradient.

A measurement tool only: it wraps autograd.core.backward_pass / VJPNode.__init__ in this process.
  python experiments/_perf_scratch/vjpprof.py [float32|float64]
"""
import collections
import sys
import time

import autograd
import autograd.core as core
import numpy

from step import setup
from air.objective import loss

names = {}
orig_init = core.VJPNode.__init__
make_time = collections.defaultdict(float)


def traced_init(self, value, fun, args, kwargs, parent_argnums, parents):
    start = time.perf_counter()
    orig_init(self, value, fun, args, kwargs, parent_argnums, parents)
    shapes = tuple(numpy.shape(core.getval(a)) for a in args if hasattr(core.getval(a), "shape"))[:2]
    key = (getattr(fun, "__name__", str(fun)), shapes, tuple(parent_argnums))
    names[self] = key
    make_time[key] += time.perf_counter() - start


stats = collections.defaultdict(lambda: [0, 0.0, 0.0])


def timed_backward(g, end_node):
    outgrads = {end_node: (g, False)}
    for node in core.toposort(end_node):
        outgrad = outgrads.pop(node)
        start = time.perf_counter()
        ingrads = list(node.vjp(outgrad[0]))
        mid = time.perf_counter()
        for parent, ingrad in zip(node.parents, ingrads):
            outgrads[parent] = core.add_outgrads(outgrads.get(parent), ingrad)
        end = time.perf_counter()
        s = stats[names.pop(node, ("root", (), ()))]
        s[0] += 1
        s[1] += mid - start
        s[2] += end - mid
    return outgrad[0]


def main():
    from air.runtime import tune_allocator
    tune_allocator()
    dtype = sys.argv[1] if len(sys.argv) > 1 else "float32"
    reps = 200
    config, layout, flat, images, noise = setup(dtype)
    core.VJPNode.__init__ = traced_init
    core.backward_pass = timed_backward
    grad = autograd.grad(lambda v: loss(layout.unflatten(v), images, noise, config, 0.7, 0.6))
    for _ in range(20):
        grad(flat)
    stats.clear()
    make_time.clear()
    names.clear()  # nodes are popped as the backward pass visits them, so nothing is kept alive
    start = time.perf_counter()
    for _ in range(reps):
        grad(flat)
    total = (time.perf_counter() - start) / reps
    rows = sorted(stats.items(), key=lambda kv: -(kv[1][1] + kv[1][2]))
    vjp_total = sum(s[1] for s in stats.values()) / reps
    add_total = sum(s[2] for s in stats.values()) / reps
    n_nodes = sum(s[0] for s in stats.values()) / reps
    print(f"{dtype}: grad {1e3 * total:.3f} ms (with profiling overhead); nodes {n_nodes:.0f}; "
          f"vjp {1e3 * vjp_total:.3f} ms; add_outgrads {1e3 * add_total:.3f} ms; "
          f"forward node creation {1e3 * sum(make_time.values()) / reps:.3f} ms")
    for key, (count, t_vjp, t_add) in rows[:40]:
        name, shapes, argnums = key
        print(f"  {1e6 * t_vjp / reps:8.1f} us vjp {1e6 * t_add / reps:7.1f} us add  x{count // reps:<3d} "
              f"{name:20s} {shapes} {argnums}")


if __name__ == "__main__":
    main()
