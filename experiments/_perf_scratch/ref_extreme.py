"""Compare elbo_terms, loss and its gradient between the committed tree and the working tree at extreme points.
  PYTHONPATH=/tmp/orig python ref_extreme.py record ; PYTHONPATH=/work/main python ref_extreme.py
"""
import dataclasses
import sys

import autograd
import numpy

import air
from air.model import init_params
from air.objective import elbo_terms, loss, sample_noise
from air.tree import Layout

PATH = "/work/main/experiments/_perf_scratch/ref_extreme.npz"


def cases():
    for dtype in ("float64", "float32"):
        for case, (pres_bias, where_scale, logvar_bias) in enumerate([(0.0, 1.0, 0.0), (40.0, 30.0, 10.0),
                                                                        (-40.0, 30.0, -10.0), (8.0, 3.0, -3.0)]):
            config = dataclasses.replace(air.preset("seed"), dtype=dtype)
            rng = numpy.random.default_rng(case)
            params = init_params(rng, config)
            params["pres_head"]["b"][:] = pres_bias * numpy.array([1, -0.5, 0.25])
            params["pres_head"]["w"] *= 20
            params["where_head"]["w"] *= where_scale
            params["what_logvar_head"]["b"][:] = logvar_bias
            layout = Layout(params)
            flat = layout.flatten(params)
            images = rng.uniform(0, 1, (8, 32, 32)).astype(dtype) ** 3
            noise = sample_noise(rng, config, 8)
            f = lambda v: loss(layout.unflatten(v), images, noise, config, 0.3, 0.8)
            terms = elbo_terms(params, images, noise, config, 0.3)
            yield f"{dtype}_{case}", numpy.array([f(flat), terms["recon"], terms["kl_what"], terms["kl_pres"]]), \
                autograd.grad(f)(flat)


if __name__ == "__main__":
    if sys.argv[1:] == ["record"]:
        out = {}
        for key, values, grad in cases():
            out[key + "_values"], out[key + "_grad"] = values, grad
        numpy.savez(PATH, **out)
        print("recorded")
    else:
        ref = numpy.load(PATH)
        worst = 0.0
        for key, values, grad in cases():
            rv, rg = ref[key + "_values"], ref[key + "_grad"]
            dv = numpy.max(numpy.abs(values - rv) / numpy.maximum(numpy.abs(rv), 1e-30))
            dg = numpy.max(numpy.abs(grad - rg)) / numpy.max(numpy.abs(rg))
            print(f"{key}: values {values} rel {dv:.1e}; grad rel {dg:.1e}; finite {numpy.isfinite(grad).all()}")
