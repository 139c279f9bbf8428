"""Count accuracy against wall time while a preset trains: python -m experiments.time_to_accuracy --preset paper

Trains like experiments.train (the same flags) and records, after every epoch, the wall time and the validation
count accuracy, and every --test-every epochs the test count accuracy of the current parameters (the scored ones:
their running average when the preset averages). Writes curve.csv and curve.png into the run folder; the figure
shows Pyro's AIR example beside it (PYRO_CPU below: an outside measurement, not a result of this repository).
"""
import csv
import sys
import time
from pathlib import Path

from air.metrics import evaluate
from air.schedules import steps_per_epoch
from air.train import train
from experiments.cli import (Parser, add_config_flags, add_run_flags, check_run_folder, claim_run_folder,
                             config_from_args, load_data, run)

# Pyro's examples/air on the reference 2-core CPU: (minutes, count accuracy on its training images). An outside
# measurement: three points typed in by hand; the run of Pyro's own example they come from left no log here, and
# its Pyro version and commit are not recorded. No file of this repository holds it and nothing here re-runs it.
PYRO_CPU = ((19, 0.89), (31, 0.95), (38, 0.969))


def main(argv=None):
    parser = Parser(prog="python -m experiments.time_to_accuracy", description=__doc__.splitlines()[0])
    add_run_flags(parser, "runs/time-<preset>-seed<seed>")
    parser.add_argument("--test-every", type=int, default=10, help="epochs between test scores (default 10)")
    add_config_flags(parser)
    args = parser.parse_args(argv)
    config, _ = config_from_args(args)
    out = Path(args.out or f"runs/time-{args.preset}-seed{config.seed}")
    check_run_folder(out, args.overwrite)  # before the data load, so a taken folder fails at once
    datasets = load_data(config, quiet=args.quiet)
    claim_run_folder(out, args.overwrite)

    per_epoch, rows, start = steps_per_epoch(config), [], time.perf_counter()
    scoring = {"seconds": 0.0}  # the test scoring's own time, kept out of the wall clock of training

    def on_step(step, params_fn):
        epoch = step // per_epoch
        if step % per_epoch == 0 and (epoch % args.test_every == 0 or epoch == config.n_epochs):
            began = time.perf_counter()
            rows.append({"epoch": epoch, "test_count_acc": evaluate(params_fn(), config, datasets.test)["count_acc"]})
            scoring["seconds"] += time.perf_counter() - began

    def on_epoch(record):
        entry = next((r for r in rows if r["epoch"] == record["epoch"]), None)
        if entry is None:
            entry = {"epoch": record["epoch"], "test_count_acc": ""}
            rows.append(entry)
        entry.update(wall_s=time.perf_counter() - start - scoring["seconds"], val_count_acc=record["val_count_acc"])
        if not args.quiet:
            test = entry["test_count_acc"]
            print(f"epoch {record['epoch']:3d}  {entry['wall_s'] / 60:6.1f} min  val {record['val_count_acc']:.3f}"
                  + (f"  test {test:.3f}" if test != "" else ""), flush=True)

    train(config, datasets, out_dir=out, on_step=on_step, on_epoch=on_epoch)
    with open(out / "curve.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, ["epoch", "wall_s", "val_count_acc", "test_count_acc"])
        writer.writeheader()
        writer.writerows(sorted(rows, key=lambda r: r["epoch"]))
    _plot(rows, out / "curve.png", args.preset)
    print(f"results: {out / 'curve.csv'}; figure: {out / 'curve.png'}", flush=True)
    return 0


def _plot(rows, path, preset):
    from matplotlib.figure import Figure  # lazy: matplotlib adds about 0.8 s to start-up; only drawing needs it
    fig = Figure(figsize=(6, 3.6))
    ax = fig.add_subplot(1, 1, 1)
    rows = sorted(rows, key=lambda r: r["epoch"])
    ax.plot([r["wall_s"] / 60 for r in rows], [r["val_count_acc"] for r in rows], "-", color="0.6",
            label=f"{preset}: validation, every epoch")
    tested = [r for r in rows if r["test_count_acc"] != ""]
    ax.plot([r["wall_s"] / 60 for r in tested], [r["test_count_acc"] for r in tested], "o-", label=f"{preset}: test")
    ax.plot(*zip(*PYRO_CPU), "s--", label="Pyro's AIR example (its training images)")
    ax.set_xlabel("wall time (minutes)")
    ax.set_ylabel("count accuracy")
    ax.set_ylim(0.3, 1.0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


if __name__ == "__main__":
    sys.exit(run(main))
