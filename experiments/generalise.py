"""Count what training never showed (the paper's Figure 5): python -m experiments.generalise

Two experiments, each with AIR (recurrent inference) and DAIR (residual inference):
  extrapolate: train and validate on scenes of 0, 1 or 2 digits, test on 0-3 (is a 3-digit scene counted?);
  interpolate: train and validate on scenes of 0, 1 or 3 digits, test on 0-3 (is a 2-digit scene counted?).
Every model has T = 3 steps, so it could count 3. Writes each run into OUT/<experiment>-<inference>-seed<s>,
then OUT/generalisation.csv and .md (test accuracy per true count, mean over seeds) and generalisation.png.
Every Config field is a flag (defaults from --preset); runs execute in joblib processes like a sweep's and
finished runs are skipped, so a stopped call resumes.
"""
import csv
import json
import math
import os
import sys
from pathlib import Path

import numpy as np

from air.config import ConfigError
from air.runs import RunSpec, execute, publish
from air.viz import figure
from experiments.cli import (Parser, UsageError, add_config_flags, config_from_args, int_list, plural, preset_help,
                             run)

EXPERIMENTS = {"extrapolate": (0, 1, 2), "interpolate": (0, 1, 3)}
HELD_OUT = {"extrapolate": 3, "interpolate": 2}
MODELS = {"recurrent": "AIR", "residual": "DAIR"}


def plan(args, config, given):
    """The RunSpecs: experiment x inference x seed, every run with max_digits = max_steps = 3."""
    if config.count_prior == "independent" and len(config.pres_prior) != 3:
        raise UsageError("--pres-prior: needs three probabilities for T = 3 steps")
    out = Path(args.out)
    runs = []
    for experiment, counts in EXPERIMENTS.items():
        for inference in MODELS:
            for seed in args.seeds:
                overrides = {**given, "max_digits": 3, "max_steps": 3, "train_counts": counts,
                             "inference": inference}
                overrides.pop("seed", None)
                name = f"{experiment}-{inference}-seed{seed}"
                runs.append(RunSpec(name, args.preset, seed, tuple(sorted(overrides.items())), str(out / name),
                                    os.environ.get("AIR_MNIST_DIR")))
    try:
        for r in runs:
            r.config()
    except ConfigError as e:
        raise UsageError(f"--{e.name.replace('_', '-')}: {e.problem}") from None
    return runs


def summarise(out, runs):
    """{(experiment, inference): {"per_count": [mean accuracy per true count 0..3], "seeds": n, ...}}."""
    table = {}
    for experiment in EXPERIMENTS:
        for inference in MODELS:
            metrics = [json.loads((Path(r.folder) / "metrics.json").read_text()) for r in runs
                       if r.name.startswith(f"{experiment}-{inference}-")]
            metrics = [m for m in metrics if m.get("status") == "complete"]
            if not metrics:
                continue
            per_count = np.array([m["per_class_acc"] for m in metrics], dtype=float)
            table[experiment, inference] = {
                "per_count": np.nanmean(per_count, axis=0).tolist(),
                "per_count_sd": np.nanstd(per_count, axis=0).tolist(),
                "seen_acc": float(np.mean([_seen_accuracy(m, EXPERIMENTS[experiment]) for m in metrics])),
                "seeds": len(metrics),
                "wall_s": float(np.mean([m["wall_s"] for m in metrics])),
            }
    return table


def _seen_accuracy(metrics, counts):
    """Test accuracy over the scenes whose count was seen in training."""
    confusion = np.array(metrics["confusion"])
    rows = confusion[list(counts)]
    return float(sum(rows[i, c] for i, c in enumerate(counts)) / max(rows.sum(), 1))


def write_table(out, table):
    header = ["experiment", "model", "seeds", "acc. count 0", "acc. count 1", "acc. count 2", "acc. count 3",
              "acc. on seen counts", "held-out count", "wall s"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    with open(Path(out) / "generalisation.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        for (experiment, inference), row in table.items():
            cells = [experiment, MODELS[inference], row["seeds"]] + [f"{a:.3f}" for a in row["per_count"]] + [
                f"{row['seen_acc']:.3f}", HELD_OUT[experiment], f"{row['wall_s']:.0f}"]
            writer.writerow(cells)
            held = HELD_OUT[experiment]
            shown = [f"**{c}**" if i == 3 + held else str(c) for i, c in enumerate(cells)]
            lines.append("| " + " | ".join(map(str, shown)) + " |")
    (Path(out) / "generalisation.md").write_text("\n".join(lines) + "\n")
    return "\n".join(lines)


def plot(out, table):
    fig = figure(9, 3.4)
    axes = fig.subplots(1, len(EXPERIMENTS), sharey=True)
    for ax, experiment in zip(np.atleast_1d(axes), EXPERIMENTS):
        for k, (inference, label) in enumerate(MODELS.items()):
            row = table.get((experiment, inference))
            if row is None:
                continue
            x = np.arange(4) + (k - 0.5) * 0.38
            spread = row["per_count_sd"] if row["seeds"] > 1 else None  # no error bar from a single seed
            ax.bar(x, row["per_count"], width=0.36, yerr=spread, capsize=2,
                   label=f"{label} ({row['seeds']} seed{'s' if row['seeds'] > 1 else ''})",
                   color=["#3182bd", "#e6550d"][k])
        held = HELD_OUT[experiment]
        ax.axvspan(held - 0.45, held + 0.45, color="#dddddd", zorder=0)
        ax.set_xticks(range(4))
        ax.set_xlabel("true number of digits (grey: never seen in training)")
        ax.set_title(f"{experiment}: trained on counts {', '.join(map(str, EXPERIMENTS[experiment]))}", fontsize=9)
        ax.set_ylim(0, 1.05)
        ax.legend(fontsize=8, loc="lower left")
    np.atleast_1d(axes)[0].set_ylabel("test count accuracy")
    fig.tight_layout()
    path = Path(out) / "generalisation.png"
    fig.savefig(path, dpi=110)
    return path


def main(argv=None):
    parser = Parser(prog="python -m experiments.generalise", description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="paper", help=preset_help("configuration every run starts from", "paper"))
    parser.add_argument("--seeds", default="0", help="comma-separated training seeds (default: 0)")
    parser.add_argument("--out", default="runs/generalise", help="folder of the runs and the table")
    parser.add_argument("--jobs", type=int, default=2, help="runs at once (default: 2)")
    parser.add_argument("--publish", default=None, metavar="DIR",
                        help="copy the table, the figure and each run's config.json and metrics.json into DIR")
    add_config_flags(parser)
    args = parser.parse_args(argv)
    args.seeds = int_list(args.seeds, "--seeds")
    if args.jobs < 1:
        raise UsageError("--jobs: must be positive")
    config, given = config_from_args(args)
    runs = plan(args, config, given)

    print(f"generalisation: {plural(len(runs), 'run')} of preset {args.preset} into {args.out}", flush=True)
    for i, row in enumerate(execute(runs, "joblib", args.jobs), 1):
        acc = row["test_count_acc"]
        score = f"test acc {acc:.3f}, {row['wall_s']:.0f} s" if isinstance(acc, float) and math.isfinite(acc) \
            else row["status"]
        print(f"[{i}/{len(runs)}] {row['run']}: {score}{' (already complete)' if row['skipped'] else ''}", flush=True)
    table = summarise(args.out, runs)
    if not table:
        print("no run finished", file=sys.stderr)
        return 1
    print(write_table(args.out, table), flush=True)
    print(f"figure: {plot(args.out, table)}", flush=True)
    if args.publish:
        files = ("generalisation.csv", "generalisation.md", "generalisation.png")
        print(f"published: {plural(publish(args.out, args.publish, files), 'file')} in {args.publish}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(run(main))
