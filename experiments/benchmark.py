"""Speed and accuracy figures of the results table: python -m experiments.benchmark

1. The median time of one training step (gradient + Adam) at batch 32 on one thread: autograd in float32
   and float64, and the hand-derived numpy gradient kept in tests/hand_gradient.py, with their ratio.
2. The seed preset end to end: `python -m experiments.train --preset seed --no-figures` timed from the
   outside (start-up and data included) for each seed, with its accuracy figures.

--scaling times a step of every preset against batch and canvas size instead; --scenes times make_scenes.

The data are whatever `python -m experiments.train` would use (set AIR_MNIST_DIR for the full MNIST).
"""
import csv
import dataclasses
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np  # one thread: experiments/__init__.py sets it before numpy loads

import air
from air.config import PRESETS
from air.data import digit_pools, load_mnist, make_scenes
from air.optim import adam_init, adam_update
from air.runtime import environment, tune_allocator
from air.schedules import Schedule, pres_prior
from air.train import gradient_and_terms, learning_rates
from air.tree import Layout
from experiments.cli import Parser, UsageError, int_list, preset_help, run

ROOT = Path(__file__).resolve().parents[1]


def hand_gradient_module():
    """tests/hand_gradient.py, the hand-derived reference, which lives with the tests, not in air/. Imported where
    the hand step is timed, not at the top, so that the other timings run without tests/ (an installed package);
    `python -m experiments.benchmark` run from the repository root has it on the path."""
    try:
        from tests import hand_gradient
    except ImportError:
        raise UsageError("the hand-derived step needs the repository's tests/ folder (run the benchmark from the "
                         "repository root, or pass --skip-steps)") from None
    return hand_gradient


def _problem(config, batch_size):
    """Parameters, random images and noise of one batch, the flat layout, and the training gradient."""
    rng = np.random.default_rng(0)
    params = air.init_params(rng, config)
    images = rng.random((batch_size, config.canvas_size, config.canvas_size)).astype(config.dtype)
    noise = air.sample_noise(rng, config, batch_size)
    layout = Layout(params)
    schedule = Schedule(temperature=0.5, kl_scale=1.0, pres_prior=pres_prior(config, 0, 1))
    return params, images, noise, layout, lambda flat: gradient_and_terms(flat, layout, images, noise, config,
                                                                          schedule)[0]


def _median_step(step, state, warmup, repeats):
    """Median seconds of `state = step(state)` after `warmup` untimed calls."""
    times = []
    for i in range(warmup + repeats):
        start = time.perf_counter()
        with np.errstate(over="ignore"):  # as in air.train: tanh's backward overflows to the right zero
            state = step(state)
        if i >= warmup:
            times.append(time.perf_counter() - start)
    return float(np.median(times))


def step_times(config, batch_size, repeats, warmup=20):
    """Median seconds of one training step for the autograd path and the hand-derived one."""
    params, images, noise, layout, gradient = _problem(config, batch_size)
    hand = hand_gradient_module()

    def autograd_path(state):
        return adam_update(state, gradient(state["params"]), config.lr)

    def hand_path(state):
        _, grads = hand.loss_and_grad(layout.unflatten(state["params"]), images, noise, config, 0.5)
        return adam_update(state, layout.flatten(grads), config.lr)

    return {name: _median_step(step, adam_init(layout.flatten(params)), warmup, repeats)
            for name, step in (("autograd", autograd_path), ("hand", hand_path))}


def training_step_time(config, batch_size, repeats, warmup=3):
    """Median seconds of one training step (gradient + Adam) of any config, as air.train runs it."""
    params, _, _, layout, gradient = _problem(config, batch_size)
    rates = learning_rates(config, layout)
    return _median_step(lambda state: adam_update(state, gradient(state["params"]), rates),
                        adam_init(layout.flatten(params)), warmup, repeats)


def scaling(presets, batch_sizes, canvas_sizes, repeats, plot_path=None):
    """Per-step time of each preset against batch size (at its own canvas) and canvas size (at batch 32)."""
    rows = []
    for name in presets:
        base = air.preset(name)
        for batch in batch_sizes:
            rows.append((name, base.canvas_size, batch, training_step_time(base, batch, repeats)))
        for canvas in canvas_sizes:
            if canvas != base.canvas_size and canvas >= base.window_size:
                config = dataclasses.replace(base, canvas_size=canvas)
                rows.append((name, canvas, 32, training_step_time(config, 32, repeats)))
    if plot_path is not None:
        _plot_scaling(rows, presets, plot_path)
    return rows


def _plot_scaling(rows, presets, path):
    # lazy: matplotlib adds about 0.8 s to start-up; only drawing needs it
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter, LogLocator
    fig = Figure(figsize=(9, 3.6))
    by_batch, by_canvas = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    for name in presets:
        own = [r for r in rows if r[0] == name]
        canvas0 = own[0][1]
        batch_rows = sorted((r[2], r[3]) for r in own if r[1] == canvas0)
        canvas_rows = sorted((r[1], r[3]) for r in own if r[2] == 32)
        by_batch.plot(*zip(*[(b, 1e3 * t) for b, t in batch_rows]), "o-", label=f"{name} ({canvas0}x{canvas0})")
        by_canvas.plot(*zip(*[(c, 1e3 * t) for c, t in canvas_rows]), "o-", label=name)
    for ax, xlabel, title in ((by_batch, "batch size", "per step vs batch size"),
                              (by_canvas, "canvas side (pixels)", "per step vs canvas, batch 32")):
        ax.set_xlabel(xlabel)
        ax.set_ylabel("ms per training step")
        ax.set_yscale("log")
        ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
        ax.yaxis.set_minor_formatter(FuncFormatter(lambda value, _: ""))
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def seed_runs(seeds, preset, train_args=()):
    """Wall time (outside the process) and metrics of `python -m experiments.train` for each seed, yielded as each
    run ends. A run refused for bad input (status 2: bad flags, bad data) is a UsageError with its one line."""
    with tempfile.TemporaryDirectory() as tmp:
        for seed in seeds:
            out = Path(tmp) / f"seed{seed}"
            start = time.perf_counter()
            done = subprocess.run([sys.executable, "-m", "experiments.train", "--preset", preset, "--seed", str(seed),
                                   "--no-figures", "--quiet", "--out", str(out), *train_args], cwd=ROOT,
                                  capture_output=True, text=True)
            wall = time.perf_counter() - start
            if done.returncode == 2:
                raise UsageError(f"seed {seed}: {done.stderr.strip().partition('error: ')[2] or done.stderr.strip()}")
            if done.returncode != 0:
                raise SystemExit(f"seed {seed} failed:\n{done.stderr}")
            metrics = json.loads((out / "metrics.json").read_text())
            yield {"seed": seed, "wall": wall, **metrics}


def scene_times(n, repeats, overlaps=("allowed", "rejected")):
    """Median seconds of make_scenes drawing n seed-sized scenes (32 px, 0-2 digits) from the MNIST training pool,
    per overlap rule. About 15 ms for 3,000 crossing scenes: far more means a fall back to per-pixel loops."""
    pool = digit_pools(load_mnist())["train"]
    times = {}
    for overlap in overlaps:
        rng = np.random.default_rng(0)
        times[overlap] = _median_step(lambda _: make_scenes(rng, pool, n, overlap=overlap), None, 1, repeats)
    return times


def parse_args(argv):
    """(the command line, the seeds of the end-to-end runs as integers)."""
    parser = Parser(prog="python -m experiments.benchmark", description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=300, help="timed steps per path (default 300)")
    parser.add_argument("--seeds", default="0,1,2", help="seeds of the end-to-end runs (default 0,1,2)")
    parser.add_argument("--preset", default="seed", help=preset_help("preset of the end-to-end runs", "seed"))
    parser.add_argument("--train-args", default="", help="extra flags for the end-to-end runs, e.g. '--lr 1e-3'")
    parser.add_argument("--skip-steps", action="store_true", help="only the end-to-end runs")
    parser.add_argument("--skip-runs", action="store_true", help="only the step timings")
    parser.add_argument("--scaling", action="store_true",
                        help="only the per-step time of every preset against batch and canvas size (table + plot)")
    parser.add_argument("--plot", default="docs/scaling.png", help="where --scaling saves its plot")
    parser.add_argument("--scenes", action="store_true",
                        help="only the time make_scenes takes for 3,000 seed scenes, crossing and kept apart")
    parser.add_argument("--out", default=None, metavar="DIR",
                        help="also write the figures as files into DIR (e.g. docs/results/NAME), to commit: "
                             "steps.json, scaling.csv, scenes.json, runs.csv and each run's metrics.json")
    args = parser.parse_args(argv)
    return args, int_list(args.seeds, "--seeds")


def main(argv=None):
    args, seeds = parse_args(argv)
    base = air.preset(args.preset)  # an unknown --preset is an error whatever is timed
    tune_allocator()
    if args.scaling:
        report_scaling(args)
        return 0
    if args.scenes:
        report_scenes(args)
        return 0
    if not args.skip_steps:
        report_steps(args, base)
    if not args.skip_runs:
        report_runs(args, seeds)
    if args.out:
        print(f"results: {args.out}", flush=True)
    return 0


def report_scaling(args):
    """--scaling: every preset's step time against batch and canvas size, as a table, a plot and scaling.csv."""
    rows = scaling(sorted(PRESETS), (8, 16, 32, 64), (32, 48, 64), repeats=max(5, args.repeats // 30),
                   plot_path=args.plot)
    print("| preset | canvas | batch | ms per step |", flush=True)
    print("| --- | --- | --- | --- |", flush=True)
    for name, canvas, batch, seconds in rows:
        print(f"| {name} | {canvas} | {batch} | {1e3 * seconds:.1f} |", flush=True)
    print(f"plot: {args.plot}", flush=True)
    _write_csv(args.out, "scaling.csv", ["preset", "canvas", "batch", "ms_per_step"],
               [(name, canvas, batch, round(1e3 * seconds, 3)) for name, canvas, batch, seconds in rows])


def report_scenes(args):
    """--scenes: make_scenes' time for 3,000 seed scenes per overlap rule, printed and in scenes.json."""
    n, repeats = 3000, max(3, args.repeats // 30)
    print(f"make_scenes, {n:,} scenes of 32 x 32 with 0-2 digits, median of {repeats}:", flush=True)
    times = scene_times(n, repeats)
    for overlap, seconds in times.items():
        print(f"  overlap {overlap}: {1e3 * seconds:.1f} ms", flush=True)
    _write_json(args.out, "scenes.json", {"n_scenes": n, "repeats": repeats, "ms": {
        overlap: 1e3 * seconds for overlap, seconds in times.items()}, "environment": environment()})


def report_steps(args, base):
    """The autograd and the hand-derived training step of `base` (the preset's config) in float32 and float64,
    printed with their ratio and in steps.json."""
    print(f"training step, batch 32, one thread, median of {args.repeats} (gradient + Adam):", flush=True)
    rows = {}
    for dtype in ("float32", "float64"):
        rows[dtype] = step_times(dataclasses.replace(base, dtype=dtype), 32, args.repeats)
        t = rows[dtype]
        print(f"  {dtype}: autograd {1e3 * t['autograd']:.2f} ms   hand-derived {1e3 * t['hand']:.2f} ms   "
              f"ratio {t['autograd'] / t['hand']:.2f}", flush=True)
    _write_json(args.out, "steps.json", {"preset": args.preset, "batch_size": 32, "repeats": args.repeats,
                                         "ms": {d: {k: 1e3 * v for k, v in t.items()} for d, t in rows.items()},
                                         "environment": environment()})


def report_runs(args, seeds):
    """The end-to-end runs: a line a seed as it ends, then means and sds over seeds; runs.csv and each run's
    metrics.json."""
    print(f"python -m experiments.train --preset {args.preset} --no-figures {args.train_args}, "
          f"seeds {args.seeds}:", flush=True)
    results = []
    for r in seed_runs(seeds, args.preset, args.train_args.split()):
        if not results:
            print(f"  data: {r['data_source']}", flush=True)
        results.append(r)
        _write_json(args.out, f"seed{r['seed']}/metrics.json", {k: v for k, v in r.items() if k != "seed"})
        per_class = "/".join(f"{a:.2f}" for a in r["per_class_acc"])
        print(f"  seed {r['seed']}: wall {r['wall']:.2f} s (training {r['wall_s']:.2f} s)  best val "
              f"{r['best_val_count_acc']:.3f} (epoch {r['best_epoch']})  last epoch {r['last_val_count_acc']:.3f}  "
              f"test {r['test_count_acc']:.3f} ({per_class})  val mse {r['val_recon_mse']:.4f}  "
              f"box IoU {r['test_box_iou']:.3f}", flush=True)
    stat = lambda key: (np.mean([r[key] for r in results]), np.std([r[key] for r in results]))
    print(f"  median wall {np.median([r['wall'] for r in results]):.2f} s", flush=True)
    for key in ("best_val_count_acc", "last_val_count_acc", "test_count_acc", "val_recon_mse"):
        mean, sd = stat(key)
        print(f"  {key}: {mean:.4f} +- {sd:.4f}", flush=True)
    keys = ["wall", "wall_s", "best_val_count_acc", "best_epoch", "last_val_count_acc", "test_count_acc",
            "val_recon_mse", "test_box_iou"]
    _write_csv(args.out, "runs.csv", ["preset", "train_args", "seed"] + keys + ["per_class_acc"],
               [[args.preset, args.train_args, r["seed"]] + [r[k] for k in keys]
                + ["/".join(f"{a:.3f}" for a in r["per_class_acc"])] for r in results])


def _write_json(out, name, value):
    """Write `value` as JSON to out/name (nothing when out is None)."""
    if out is not None:
        path = Path(out) / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(value, indent=1) + "\n")


def _write_csv(out, name, header, rows):
    if out is not None:
        Path(out).mkdir(parents=True, exist_ok=True)
        with open(Path(out) / name, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(header)
            writer.writerows(rows)


if __name__ == "__main__":
    sys.exit(run(main))
