"""Run a grid or list of training runs from a TOML file: python -m experiments.sweep SWEEP.toml

The file names presets, seeds, overrides applied to every run, and either a grid (every combination of the
listed values) or a list of override sets:

    out = "runs/sweeps/estimators"          # where the runs and results.csv go (default: runs/sweeps/<file stem>)
    presets = ["best"]
    seeds = [0, 1, 2]
    [base]                                  # Config fields set in every run
    n_epochs = 10
    [grid]                                  # or [[runs]] tables, one per override set
    pres_estimator = ["enumerate", "relaxed"]

Runs execute in joblib processes on this machine (default), on a Dask cluster (--backend dask --scheduler
ADDRESS), or on a Ray cluster (--backend ray [--address ADDRESS]): the same runs, in the same folders. A run
whose folder holds a complete metrics.json is skipped and one with a checkpoint is resumed, so a stopped
sweep picks up where it stopped. results.csv gets one row a run (its swept fields, seed, status and
scores) and sweep.png plots test count accuracy and wall time against each swept field.
"""
import csv
import dataclasses
import itertools
import json
import math
import os
import re
import sys
import time
import tomllib
from pathlib import Path

from air.config import Config, ConfigError
from air.runs import METRICS, RunSpec, complete_metrics, execute, publish
from air.viz import figure
from experiments.cli import Parser, UsageError, plural, run

TOP_LEVEL = {"out", "presets", "seeds", "base", "grid", "runs"}


def read_sweep(path):
    """(out folder, [RunSpec], swept field names) from a sweep file; UsageError naming what is wrong in it."""
    path = Path(path)
    try:
        spec = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise UsageError(f"SWEEP: no such file {path}") from None
    except tomllib.TOMLDecodeError as e:
        raise UsageError(f"SWEEP: {path} is not valid TOML ({e})") from None
    unknown = sorted(set(spec) - TOP_LEVEL)
    if unknown:
        raise UsageError(f"{path}: unknown key {unknown[0]!r}; a sweep file has {', '.join(sorted(TOP_LEVEL))}")
    if "grid" in spec and "runs" in spec:
        raise UsageError(f"{path}: give either [grid] or [[runs]], not both")
    presets = _list_of(spec.get("presets", ["seed"]), str, path, "presets")
    seeds = _list_of(spec.get("seeds", [0]), int, path, "seeds")
    base = spec.get("base", {})
    if "grid" in spec:
        grid = spec["grid"]
        for field, values in grid.items():
            _list_of(values, object, path, f"grid.{field}")
        variants = [dict(zip(grid, combo)) for combo in itertools.product(*grid.values())]
    else:
        variants = spec.get("runs", [{}])
    swept = list(dict.fromkeys(field for v in variants for field in v))
    out = Path(spec.get("out", f"runs/sweeps/{path.stem}"))
    runs = []
    for preset_name, variant, seed in itertools.product(presets, variants, seeds):
        overrides = {**base, **variant}
        overrides = {k: tuple(v) if isinstance(v, list) else v for k, v in overrides.items()}
        label = ",".join(f"{k}={_show(v)}" for k, v in variant.items())
        name = re.sub(r"[^A-Za-z0-9_.,=+-]", "_", f"{preset_name}{'-' + label if label else ''}-seed{seed}")
        spec_ = RunSpec(name, preset_name, seed, tuple(sorted(overrides.items())), str(out / name),
                        os.environ.get("AIR_MNIST_DIR"))
        _check_config(spec_, path)
        runs.append(spec_)
    if len({r.name for r in runs}) != len(runs):
        raise UsageError(f"{path}: two runs share a folder name; are some override sets repeated?")
    return out, runs, swept


def _list_of(value, kind, path, key):
    if not isinstance(value, list) or not value or not all(isinstance(v, kind) for v in value):
        what = {str: "strings", int: "integers"}.get(kind, "values")
        raise UsageError(f"{path}: {key} must be a non-empty list of {what}, got {value!r}")
    return value


def _check_config(spec, path):
    try:
        spec.config()
    except ConfigError as e:
        raise UsageError(f"{path}: run {spec.name}: {e}") from None
    except TypeError as e:  # an override that is not a Config field
        field = re.search(r"'(\w+)'", str(e))
        raise UsageError(f"{path}: run {spec.name}: {field.group(1) if field else e} is not a Config field") from None


def _show(value):
    return "x".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)


def _config_clash(spec):
    """A message naming the first field in which the run already in spec's folder differs from spec, or None."""
    try:
        values = json.loads((Path(spec.folder) / "config.json").read_text())
    except (OSError, ValueError):
        return None
    try:  # fields added since the run was written take their defaults, as when a checkpoint is read
        held = dataclasses.asdict(Config.from_dict(values))
    except (ConfigError, TypeError) as error:
        return f"{spec.folder}: its config.json is not this version's ({error})"
    for name, value in dataclasses.asdict(spec.config()).items():
        if held[name] != value:
            return f"{spec.folder}: {name} is {held[name]!r} there, {value!r} here"
    return None


def write_results(out, rows, swept):
    """results.csv (rows sorted by run name) with the swept fields as columns; returns its path."""
    rows = sorted(rows, key=lambda r: r["run"])
    fields = ["run", "preset", "seed"] + [f for f in swept if f not in ("preset", "seed")] + METRICS + ["skipped"]
    extra = sorted({k for r in rows for k in r} - set(fields))  # fields set in [base]: constant, listed last
    path = Path(out) / "results.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields + extra)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: _show(v) if isinstance(v, tuple) else v for k, v in row.items()})
    return path


def plot_results(out, rows, swept):
    """sweep.png: test count accuracy and wall time against each swept field (and the preset, if several);
    one dot a run, a bar the mean over seeds. Returns its path, or None if nothing was swept."""
    factors = [f for f in swept] + (["preset"] if len({r["preset"] for r in rows}) > 1 else [])
    ok = [r for r in rows if r["status"] == "complete"]
    if not factors or not ok:
        return None
    fig = figure(3.2 * len(factors), 5.2)  # no pyplot: a notebook's backend is left alone
    axes = fig.subplots(2, len(factors), squeeze=False)
    for j, factor in enumerate(factors):
        levels = list(dict.fromkeys(_show(r.get(factor, "(preset)")) for r in ok))
        for i, metric in enumerate(["test_count_acc", "wall_s"]):
            ax = axes[i, j]
            for k, level in enumerate(levels):
                values = [float(r[metric]) for r in ok if _show(r.get(factor, "(preset)")) == level]
                ax.bar(k, sum(values) / len(values), color="#9ecae1", width=0.6)
                ax.plot([k] * len(values), values, "o", color="#08519c", markersize=4)
            ax.set_xticks(range(len(levels)))
            ax.set_xticklabels(levels, rotation=30, ha="right", fontsize=8)
            ax.set_ylabel("test count accuracy" if metric == "test_count_acc" else "wall time (s)")
            if i == 0:
                ax.set_title(factor, fontsize=9)
                ax.set_ylim(0, 1)
    fig.tight_layout()
    path = Path(out) / "sweep.png"
    fig.savefig(path, dpi=100)
    return path


def main(argv=None):
    parser = Parser(prog="python -m experiments.sweep", description=__doc__.splitlines()[0])
    parser.add_argument("sweep", metavar="SWEEP", help="the sweep's TOML file")
    parser.add_argument("--backend", choices=["joblib", "dask", "ray"], default="joblib",
                        help="where runs execute (default: joblib processes on this machine)")
    parser.add_argument("--jobs", type=int, default=2, help="joblib: runs at once (default: 2)")
    parser.add_argument("--scheduler", default=None,
                        help="dask: the scheduler's address, e.g. tcp://10.0.0.5:8786 (default: a local cluster)")
    parser.add_argument("--address", default=None, help="ray: the cluster's address (default: a local Ray)")
    parser.add_argument("--out", default=None, help="sweep folder (default: the file's `out`, or runs/sweeps/STEM)")
    parser.add_argument("--dry-run", action="store_true", help="list the runs and stop")
    parser.add_argument("--publish", default=None, metavar="DIR",
                        help="when every run is complete, copy results.csv, sweep.png and each run's config.json and "
                             "metrics.json into DIR (e.g. docs/results/NAME), to commit; a results.csv already in DIR "
                             "keeps its rows of runs this sweep does not have")
    args = parser.parse_args(argv)
    if args.jobs < 1:
        raise UsageError(f"--jobs: must be positive, got {args.jobs}")
    out, runs, swept = read_sweep(args.sweep)
    if args.out:
        out = Path(args.out)
        runs = [dataclasses.replace(r, folder=str(out / r.name)) for r in runs]
    stale = [message for message in map(_config_clash, runs) if message]
    if stale:
        raise UsageError(f"{plural(len(stale), 'run folder')} {'holds' if len(stale) == 1 else 'hold'} runs of "
                         f"another configuration (the preset or the sweep "
                         f"changed?); move them away or pick another --out, so no result is mixed up or "
                         f"overwritten: {'; '.join(stale[:3])}" + (" ..." if len(stale) > 3 else ""))
    todo = sum(complete_metrics(Path(r.folder)) is None for r in runs)
    print(f"sweep {args.sweep}: {plural(len(runs), 'run')} ({len(runs) - todo} already complete) on {args.backend}; "
          f"folder {out}", flush=True)
    if args.dry_run:
        for r in runs:
            print(f"  {r.name}", flush=True)
        return 0
    rows, start = [], time.perf_counter()
    for row in execute(runs, args.backend, args.jobs, args.scheduler, args.address):
        rows.append(row)
        acc = row["test_count_acc"]
        finished = isinstance(acc, float) and math.isfinite(acc)
        score = f"test acc {acc:.3f}, {row['wall_s']:.0f} s" if finished else row["status"]
        note = " (already complete)" if row["skipped"] else ""
        print(f"[{len(rows)}/{len(runs)}] {row['run']}: {score}{note}", flush=True)
    results = write_results(out, rows, swept)
    plot = plot_results(out, rows, swept)
    failed = [r["run"] for r in rows if r["status"] != "complete"]
    print(f"results: {results}" + (f"; plot: {plot}" if plot else "") + f"; {time.perf_counter() - start:.0f} s",
          flush=True)
    if failed:
        print(f"{plural(len(failed), 'run')} failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    if args.publish:
        print(f"published: {plural(publish(out, args.publish), 'file')} in {args.publish}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(run(main))
