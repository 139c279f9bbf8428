"""Record (or check) the loss value and autograd gradient on a fixed random input, float64 and float32."""
import dataclasses
import sys

import autograd
import numpy

import air
from air.model import init_params
from air.objective import loss, sample_noise
from air.tree import Layout

PATH = "/work/main/experiments/_perf_scratch/ref.npz"


def case(dtype, seed=0):
    config = dataclasses.replace(air.preset("seed"), dtype=dtype)
    rng = numpy.random.default_rng(seed)
    params = init_params(rng, config)
    layout = Layout(params)
    flat = layout.flatten(params)
    # Perturb so that the where head / shifts are varied and not on a grid.
    flat = flat + (0.05 * rng.standard_normal(flat.shape)).astype(dtype)
    images = rng.uniform(0, 1, (32, 32, 32)).astype(dtype)
    noise = sample_noise(rng, config, 32)
    f = lambda v: loss(layout.unflatten(v), images, noise, config, 0.7, 0.6)
    value = f(flat)
    g = autograd.grad(f)(flat)
    # the dict path too
    gd = autograd.grad(lambda p: loss(p, images, noise, config, 0.7, 0.6))(layout.unflatten(flat))
    return value, g, layout.flatten(gd)


def main():
    out = {}
    for dtype in ("float64", "float32"):
        v, g, gd = case(dtype)
        out[dtype + "_value"], out[dtype + "_grad"], out[dtype + "_gdict"] = v, g, gd
    if sys.argv[1:] == ["record"]:
        numpy.savez(PATH, **out)
        print("recorded", {k: out[k] for k in out if k.endswith("value")})
        return
    ref = numpy.load(PATH)
    ok = True
    for dtype, tol in (("float64", 1e-10), ("float32", 1e-4)):
        rv, rg = ref[dtype + "_value"], ref[dtype + "_grad"]
        dv = abs(out[dtype + "_value"] - rv) / abs(rv)
        dg = numpy.max(numpy.abs(out[dtype + "_grad"] - rg)) / numpy.max(numpy.abs(rg))
        dd = numpy.max(numpy.abs(out[dtype + "_gdict"] - rg)) / numpy.max(numpy.abs(rg))
        dtypes = (numpy.asarray(out[dtype + "_value"]).dtype, out[dtype + "_grad"].dtype)
        print(f"{dtype}: value {out[dtype + '_value']:.12g} rel {dv:.2e}; grad rel {dg:.2e}; dict-grad rel {dd:.2e}; dtypes {dtypes}")
        ok &= dv < tol and dg < tol and dd < tol
    print("OK" if ok else "MISMATCH")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
