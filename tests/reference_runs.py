"""Short training runs whose results are stored in tests/data/reference_runs.json, so that a refactor can be
checked to change no result (tests/test_reference_runs.py trains the same runs and compares).

Two kinds of reference, because a float32 run's last bits depend on the machine:

- **float64, on every machine.** Each run in float64, compared term by term to a relative FLOAT64_RTOL. Rounding
  differences between BLAS kernels start near 1e-16 in float64 and stay there over these runs' 20-92 steps
  (the whole seed run is not used: from its third epoch on its rounding differences grow about a hundredfold an
  epoch). FLOAT64_RTOL's justification is measured, not assumed: `--measure-kernels` below.
- **float32, bit for bit, where the setup matches.** The runs as training runs them (float32), with a SHA-256 of
  the final parameters, stored for each setup (numpy version, BLAS library and kernel) it was written on. On a
  setup with no stored entry these are skipped: in float32 a few steps of the `max` composition already move a
  term by 1e-3 between kernels (a saturated sigmoid ties two windows), so no tolerance there would both pass and
  mean anything.

Commands (each writes only on purpose):

    python -m tests.reference_runs                 # rewrite: float64 and this setup's float32 (drops the others)
    python -m tests.reference_runs --add-setup     # add this setup's float32 entry, if its float64 runs agree
    python -m tests.reference_runs --measure-kernels Haswell,Sandybridge,Prescott,Nehalem --out DIR

The last runs every reference once per OpenBLAS kernel (OPENBLAS_CORETYPE set for that subprocess alone, the
kernel it really ran read back with threadpoolctl) and writes the spread it saw to DIR/spread.json and a table.
Each run trains on the synthetic digits of the tests (conftest), with one BLAS thread.
"""
import argparse
import dataclasses
import hashlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

import air
from air import data as air_data
from air import train as air_train
from air.runtime import environment
from air.tree import leaves

REFERENCE = Path(__file__).parent / "data" / "reference_runs.json"
HISTORY_KEYS = ("loss", "recon", "kl_what", "kl_pres", "val_count_acc")
LOSS_KEYS = HISTORY_KEYS[:4]

# The float64 comparison's relative tolerance. Measured (docs/results/kernels/spread.md): over four OpenBLAS
# kernels (Haswell, Sandybridge, Katmai, Nehalem) every float64 term and parameter norm agreed to 1.4e-13 (the seed
# run, whose rounding differences start to grow in its second epoch; the others to 3.5e-15). The learning rate
# moved by one part in a million moved some term of every run by 9e-7 or more. 1e-10 lies about three orders of
# magnitude from the first and nearly four from the second. (Adam's epsilon moved by one part in a million, 1e-14
# in absolute terms, moves the runs by 2e-11 to 2e-8: at the edge, as a change that small is.)
FLOAT64_RTOL = 1e-10


def _variant(name, **changes):
    return dataclasses.replace(air.preset(name), **changes)


# name -> (config, number of training steps to run, or None for the whole run). The seed preset is trained
# whole; `best` for its first two epochs with its own schedule (interrupted, so the schedule is the full run's);
# the others are small variants that reach every estimator, network and switch the refactor touches.
_SMALL = dict(n_train=320, n_val=64, n_test=64, n_epochs=2)
# The paper preset as the references were written (before its counting retune): pinned, so that retuning the
# preset does not move the reference run.
_PAPER_AS_RECORDED = dict(likelihood_sd=0.3, log_scale_range=(-1.0, -0.5), where_prior_mean=(-0.8, 0.0, 0.0),
                          where_log_scale_init=-0.8, scale_bound="clip", pres_estimator="reinforce")


def runs():
    return {
        "seed": (air.preset("seed"), None),
        "best_first_epochs": (air.preset("best"), 2 * air_train.steps_per_epoch(air.preset("best"))),
        "paper_small": (_variant("paper", **dict(_SMALL, n_train=640), **_PAPER_AS_RECORDED), None),
        "global_enumerate_stochastic_where": (_variant("seed", pres_estimator="enumerate", z_where="stochastic",
                                                       count_prior="geometric", **_SMALL), None),
        "global_reinforce_glimpse": (_variant("seed", pres_estimator="reinforce", object_encoder="glimpse",
                                              signal_norm="running", pres_floor=0.05, **_SMALL), None),
        "residual_relaxed_max": (_variant("seed", inference="residual", rnn_hidden=64, composition="max",
                                          likelihood="gaussian", **_SMALL), None),
        "recurrent_enumerate_average": (_variant("seed", inference="recurrent", rnn_hidden=64,
                                                 pres_estimator="enumerate", param_average=0.9,
                                                 lr_schedule="cosine", **_SMALL), None),
    }


def float64_runs():
    """The same runs in float64; the seed run stops after its first two epochs (its schedule still the whole
    run's), before its rounding differences start to grow."""
    seed_steps = 2 * air_train.steps_per_epoch(air.preset("seed"))
    return {name: (dataclasses.replace(config, dtype="float64"), n_steps if name != "seed" else seed_steps)
            for name, (config, n_steps) in runs().items()}


class _Stop(KeyboardInterrupt):
    pass


def params_digest(params):
    h = hashlib.sha256()
    for path, array in leaves(params):
        h.update(path.encode())
        h.update(np.ascontiguousarray(array).tobytes())
    return h.hexdigest()


def params_norms(params):
    """The L2 norm of each parameter array, by path: what a float64 run's end is compared by."""
    return {path: float(np.sqrt(np.sum(np.square(array, dtype=np.float64)))).hex() for path, array in leaves(params)}


def run_one(config, n_steps, mnist):
    """{'history': per-epoch values as float hex, 'params': digest of the parameters at the end, 'norms': their
    per-array norms}."""
    datasets = air_train.build_datasets(config, mnist)
    with tempfile.TemporaryDirectory() as folder:
        final = {}

        def on_step(step, params_fn):
            if step == n_steps:
                final["params"] = params_fn()
                raise _Stop

        try:
            air_train.train(config, datasets, out_dir=folder, on_step=on_step if n_steps else None)
        except _Stop:
            pass
        state = air_train.read_checkpoint(Path(folder) / air_train.CHECKPOINT)
        params = final.get("params", state["params"])
    history = [{k: float(record[k]).hex() for k in HISTORY_KEYS} for record in state["history"]]
    return {"history": history, "params": params_digest(params), "norms": params_norms(params)}


def float64_differences(got, expected):
    """[(what, relative difference)] for every term and norm of a float64 run against its reference, and
    (what, inf) for a validation accuracy or a structure that differs."""
    out = []
    if len(got["history"]) != len(expected["history"]) or set(got["norms"]) != set(expected["norms"]):
        return [("structure (epochs or parameter arrays)", float("inf"))]
    for e, (g, w) in enumerate(zip(got["history"], expected["history"])):
        for key in LOSS_KEYS:
            out.append((f"epoch {e + 1} {key}", _relative(g[key], w[key])))
        out.append((f"epoch {e + 1} val_count_acc", 0.0 if g["val_count_acc"] == w["val_count_acc"] else float("inf")))
    out.extend((f"norm of {path}", _relative(got["norms"][path], expected["norms"][path])) for path in got["norms"])
    return out


def _relative(a_hex, b_hex):
    a, b = float.fromhex(a_hex), float.fromhex(b_hex)
    scale = max(abs(a), abs(b))
    return abs(a - b) / scale if scale else 0.0


def one_blas_thread():
    """BLAS on one thread: OpenBLAS splits some products differently on two, which changes the last bits."""
    from threadpoolctl import threadpool_limits
    return threadpool_limits(limits=1, user_api="blas")


def fingerprint():
    """What bit-identical results depend on besides the code: numpy's version and the BLAS kernel."""
    env = environment()
    return {k: env.get(k) for k in ("numpy", "blas", "blas_kernel")}


def synthetic_mnist(folder):
    """The tests' synthetic MNIST (conftest), written to `folder` and loaded."""
    from tests.conftest import write_synthetic_mnist
    write_synthetic_mnist(folder)
    return air_data.load_mnist(data_dir=folder)


def load_reference():
    return json.loads(REFERENCE.read_text())


def float32_entry(reference, setup=None):
    """This setup's stored float32 runs, or None."""
    setup = fingerprint() if setup is None else setup
    return next((entry["runs"] for entry in reference["float32"] if entry["fingerprint"] == setup), None)


def compute(kinds=("float64", "float32"), table=None):
    """{'float64': {name: result}, 'float32': {name: result}} for the runs of `table` (default: all)."""
    out = {}
    with tempfile.TemporaryDirectory() as folder, one_blas_thread():
        mnist = synthetic_mnist(Path(folder))
        for kind in kinds:
            chosen = float64_runs() if kind == "float64" else runs()
            out[kind] = {name: run_one(config, n, mnist) for name, (config, n) in chosen.items()
                         if table is None or name in table}
    return out


def _write(reference):
    REFERENCE.write_text(json.dumps(reference, indent=1) + "\n")


def rewrite():
    results = compute()
    old = load_reference() if REFERENCE.exists() else {"float32": []}
    dropped = [e["fingerprint"] for e in old.get("float32", []) if e["fingerprint"] != fingerprint()]
    _write({"float64": {"written_on": fingerprint(), "runs": results["float64"]},
            "float32": [{"fingerprint": fingerprint(), "runs": results["float32"]}]})
    for setup in dropped:
        print(f"dropped the float32 references of {setup}: they belong to the old code", file=sys.stderr)
    print(f"wrote {REFERENCE}", file=sys.stderr)


def add_setup():
    """Store this setup's float32 runs beside the others, after checking that its float64 runs agree with the
    stored ones (so the code is the one the other entries were written with)."""
    reference = load_reference()
    results = compute()
    worst = max((d for name, got in results["float64"].items()
                 for _, d in float64_differences(got, reference["float64"]["runs"][name])), default=0.0)
    if worst > FLOAT64_RTOL:
        raise SystemExit(f"the float64 runs differ from the stored ones by {worst:.1e} (tolerance {FLOAT64_RTOL}); "
                         "the code changed: rewrite the references instead")
    entries = [e for e in reference["float32"] if e["fingerprint"] != fingerprint()]
    reference["float32"] = entries + [{"fingerprint": fingerprint(), "runs": results["float32"]}]
    _write(reference)
    print(f"added {fingerprint()} to {REFERENCE} (float64 within {worst:.1e})", file=sys.stderr)


# Small real changes the float64 comparison must see: (name, field of the Config, relative change).
MUTATIONS = (("lr", "lr", 1e-6), ("adam_eps", "adam_eps", 1e-6), ("temp_start", "temp_start", 1e-6))


def _mutated_results():
    """The float64 runs with each of MUTATIONS applied: {mutation: {name: result}}."""
    out = {}
    with tempfile.TemporaryDirectory() as folder, one_blas_thread():
        mnist = synthetic_mnist(Path(folder))
        for label, field, rel in MUTATIONS:
            out[label] = {}
            for name, (config, n) in float64_runs().items():
                changed = dataclasses.replace(config, **{field: getattr(config, field) * (1 + rel)})
                out[label][name] = run_one(changed, n, mnist)
    return out


def measure_kernels(kernels, out_dir):
    """Run every reference under each OpenBLAS kernel (a subprocess each, OPENBLAS_CORETYPE set for it alone),
    and write the spread of the float64 and float32 results, and how far the mutations move the float64 ones."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    per_kernel = {}
    for kernel in kernels:
        env = {**os.environ, "OPENBLAS_CORETYPE": kernel, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
        print(f"kernel {kernel} ...", file=sys.stderr, flush=True)
        done = subprocess.run([sys.executable, "-m", "tests.reference_runs", "--dump"], env=env, check=True,
                              capture_output=True, text=True, cwd=Path(__file__).parent.parent)
        per_kernel[kernel] = json.loads(done.stdout)
    print("mutations ...", file=sys.stderr, flush=True)
    mutated = _mutated_results()
    base = next(iter(per_kernel.values()))["results"]["float64"]
    summary = {"kernels": {k: v["environment"] for k, v in per_kernel.items()}, "float64_rtol": FLOAT64_RTOL,
               "float64_spread": {}, "float32_spread": {}, "mutation_effect": {}}
    for name in base:
        summary["float64_spread"][name] = max(
            d for v in per_kernel.values() for _, d in float64_differences(v["results"]["float64"][name], base[name]))
        first32 = next(iter(per_kernel.values()))["results"]["float32"][name]
        summary["float32_spread"][name] = {
            "first_epoch_terms": max(_relative(v["results"]["float32"][name]["history"][0][k],
                                               first32["history"][0][k])
                                     for v in per_kernel.values() for k in LOSS_KEYS),
            "distinct_final_parameters": len({v["results"]["float32"][name]["params"] for v in per_kernel.values()})}
    for label, results in mutated.items():
        summary["mutation_effect"][label] = {name: max(d for _, d in float64_differences(got, base[name]))
                                            for name, got in results.items()}
    (out_dir / "spread.json").write_text(json.dumps(summary, indent=1) + "\n")
    lines = ["| run | float64 spread | float32 first-epoch spread | float32 final parameters | "
             + " | ".join(f"{label} x (1 + 1e-6)" for label, _, _ in MUTATIONS) + " |",
             "| --- " * (4 + len(MUTATIONS)) + "|"]
    for name in base:
        f32 = summary["float32_spread"][name]
        effects = " | ".join(f"{summary['mutation_effect'][label][name]:.1e}" for label, _, _ in MUTATIONS)
        lines.append(f"| {name} | {summary['float64_spread'][name]:.1e} | {f32['first_epoch_terms']:.1e} | "
                     f"{f32['distinct_final_parameters']} distinct of {len(kernels)} | {effects} |")
    (out_dir / "spread.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m tests.reference_runs", description=__doc__.splitlines()[0])
    parser.add_argument("--add-setup", action="store_true", help="add this setup's float32 references")
    parser.add_argument("--dump", action="store_true", help="print this setup's results as JSON; write nothing")
    parser.add_argument("--measure-kernels", default=None, help="comma-separated OPENBLAS_CORETYPE values")
    parser.add_argument("--out", default="docs/results/kernels", help="folder for --measure-kernels")
    args = parser.parse_args(argv)
    if args.dump:
        print(json.dumps({"environment": environment(), "results": compute()}))
    elif args.measure_kernels:
        measure_kernels([k for k in args.measure_kernels.split(",") if k], args.out)
    elif args.add_setup:
        add_setup()
    else:
        rewrite()


if __name__ == "__main__":
    main()
