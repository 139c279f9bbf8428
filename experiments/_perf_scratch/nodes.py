"""List the nodes autograd records for the training loss, in forward order (measurement tool)."""
import autograd.core as core
import numpy

from step import setup
from air.objective import loss

recorded = []
orig_init = core.VJPNode.__init__


def traced_init(self, value, fun, args, kwargs, parent_argnums, parents):
    orig_init(self, value, fun, args, kwargs, parent_argnums, parents)
    shapes = [numpy.shape(core.getval(a)) if hasattr(core.getval(a), "shape") else type(core.getval(a)).__name__
              for a in args][:3]
    recorded.append((getattr(fun, "__name__", str(fun)), shapes, parent_argnums, getattr(value, "shape", type(value).__name__)))


if __name__ == "__main__":
    import sys
    config, layout, flat, images, noise = setup(sys.argv[1] if len(sys.argv) > 1 else "float32")
    core.VJPNode.__init__ = traced_init
    core.make_vjp(lambda v: loss(layout.unflatten(v), images, noise, config, 0.7, 0.6), flat)
    for i, r in enumerate(recorded):
        print(i, *r)
