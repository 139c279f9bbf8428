"""Score trained runs on several scene families: python -m experiments.compare RUN [RUN ...] --family pyro

Each run's best parameters are scored on its own held-out test family and on every --family: `pyro`, the scenes
of Pyro's multi-MNIST generator (air.data.pyro, the peers' benchmark), or LABEL=LOW,HIGH, the run's own family
at digit sides LOW-HIGH px on a 32-px canvas, scaled with the canvas, as `experiments.evaluate --digit-size`
(results published before the exact family existed label Pyro's scale, 12,16, "pyro"). All are drawn from the
held-out digits, --n-test scenes a family.

Writes compare.csv into --out, one row a run and family: count accuracy with its binomial standard error,
accuracy per count, the shares of two-digit scenes merged into one and split into three, the windows' box IoU,
the run's training minutes; for models whose objective is an ELBO, the test ELBO and the k-sample bound on log
p(x) in nats per scene with their standard errors, on the first --evidence-scenes scenes (they compare only
between models of one likelihood); with --search, the count by search beside the guide's (air.search: its
accuracy, the scenes it fixed and broke, the share it searched, its process time). compare.png draws count
accuracy a run and family, with error bars, the searched count as a diamond.
"""
import csv
import dataclasses
import json
import sys
from pathlib import Path

import numpy as np

from air.checkpoint import CheckpointError, checkpoint_path, load_checkpoint
from air.marginal import NotALikelihood, evidence_summary
from air.metrics import family_scores, search_scores
from experiments.cli import Parser, UsageError, add_search_flags, load_data, run, search_options

FIELDS = ("run", "family", "split", "digit_size", "n_test", "count_acc", "stderr", "acc_0", "acc_1", "acc_2",
          "merged_two", "split_two", "box_iou", "train_minutes", "elbo", "elbo_stderr", "log_px", "log_px_stderr", "evidence_k",
          "evidence_scenes", "searched_acc", "searched_stderr", "fixed", "broken", "searched_share", "search_seconds")


def parse_family(text):
    """'pyro' -> ('pyro', {scene_family: 'pyro'}), Pyro's generator's scenes; 'small=12,16' -> ('small', {digit_size:
    (12, 16)}), the run's own family at other digit sides; UsageError naming the flag otherwise."""
    if text == "pyro":
        return "pyro", {"scene_family": "pyro"}
    label, _, sizes = text.partition("=")
    try:
        low, high = (int(v) for v in sizes.split(","))
    except ValueError:
        raise UsageError(f"--family: expected pyro or LABEL=LOW,HIGH (e.g. small=12,16), got {text!r}") from None
    if not label or label == "own":
        raise UsageError(f"--family: {text!r} needs a label other than 'own' (the run's own family is always scored)")
    return label, {"digit_size": (low, high)}


def train_minutes(path):
    """The run's training wall time in minutes from its metrics.json, or '' if it has none."""
    try:
        seconds = json.loads((checkpoint_path(path).parent / "metrics.json").read_text())["wall_s"]
    except (OSError, ValueError, KeyError):  # checkpoint_path has already found the run (main loaded it)
        return ""
    return round(seconds / 60, 1)


def main(argv=None):
    parser = Parser(prog="python -m experiments.compare", description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", metavar="RUN", help="run folders (or their checkpoint.npz)")
    parser.add_argument("--label", default=None, help="comma-separated names of the runs (default: folder names)")
    parser.add_argument("--family", action="append", default=[], metavar="pyro|LABEL=LOW,HIGH",
                        help="another family of test scenes: Pyro's generator's, or digit sides LOW-HIGH px on 32 px "
                             "(repeatable)")
    parser.add_argument("--n-test", type=int, default=5000, help="scenes a family (default 5000)")
    parser.add_argument("--split", choices=["test", "val"], default="test",
                        help="score held-out test scenes (default) or validation scenes, to choose among runs "
                             "without looking at the test digits")
    parser.add_argument("--evidence-k", type=int, default=100, metavar="K",
                        help="importance samples for the bound on log p(x) (default 100; 0 skips it)")
    parser.add_argument("--evidence-scenes", type=int, default=1000, metavar="N",
                        help="scenes a family the ELBO and the bound are computed on (default 1000: at k = 100 they "
                             "cost about 0.1 s a scene for the paper preset)")
    parser.add_argument("--out", default="runs/compare", help="folder for compare.csv and compare.png")
    add_search_flags(parser)
    args = parser.parse_args(argv)
    options = search_options(args)
    if args.evidence_k < 0 or args.evidence_scenes < 1:
        raise UsageError("--evidence-k and --evidence-scenes: expected K >= 0 and N >= 1")
    labels = args.label.split(",") if args.label else [Path(r).name for r in args.runs]
    if len(labels) != len(args.runs):
        raise UsageError(f"--label: {len(labels)} names for {len(args.runs)} runs")
    families = [("own", {})] + [parse_family(f) for f in args.family]

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for label, path in zip(labels, args.runs):
        try:
            params, config = load_checkpoint(path)
        except CheckpointError as e:
            raise UsageError(f"RUN: {e}") from None
        for family, changes in families:
            count = {"n_val": args.n_test} if args.split == "val" else {"n_test": args.n_test}
            family_config = dataclasses.replace(config, **count, **changes)
            scenes = getattr(load_data(family_config, True), args.split)
            row = {"run": label, "family": family, "split": args.split,
                   **family_scores(params, family_config, scenes), "train_minutes": train_minutes(path)}
            if args.evidence_k:
                found = evidence_summary(params, config, scenes.images[:args.evidence_scenes], args.evidence_k)
                row.update({k: v for k, v in found.items() if k in FIELDS})
            if options:
                row.update(_searched(params, family_config, scenes, options))
            rows.append(row)
            bound = (f"  ELBO {row['elbo']:.1f}, log p(x) >= {row['log_px']:.1f} +- {row['log_px_stderr']:.1f} nats"
                     if "log_px" in row else "")
            searched = (f"  searched {row['searched_acc']:.4f} +- {row['searched_stderr']:.4f} ({row['fixed']} fixed, "
                        f"{row['broken']} broken, {row['search_seconds']:.0f} s)" if options else "")
            print(f"{label:>24s}  {family:>8s}  count acc {row['count_acc']:.4f} +- {row['stderr']:.4f}  "
                  f"two-digit merged {row['merged_two']:.3f} split {row['split_two']:.3f}  "
                  f"box IoU {row['box_iou']:.3f}{bound}{searched}", flush=True)
    with open(out / "compare.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, FIELDS, restval="")
        writer.writeheader()
        writer.writerows({k: (f"{v:.4f}" if isinstance(v, float) else v) for k, v in r.items()} for r in rows)
    _plot(rows, [f for f, _ in families], labels, out / "compare.png")
    print(f"results: {out / 'compare.csv'}; figure: {out / 'compare.png'}", flush=True)
    return 0


def _searched(params, config, scenes, options):
    """compare.csv's search columns of one run and family (air.metrics.search_scores)."""
    try:
        found, _ = search_scores(params, config, scenes, options)
    except NotALikelihood as error:
        raise UsageError(f"--search: {error}") from None
    return {"searched_acc": found["count_acc"], "searched_stderr": found["stderr"], "fixed": found["fixed"],
            "broken": found["broken"], "searched_share": found["searched_share"], "search_seconds": found["seconds"]}


def _plot(rows, families, labels, path):
    from matplotlib.figure import Figure  # lazy: matplotlib adds about 0.8 s to start-up; only drawing needs it
    fig = Figure(figsize=(max(5.0, 1.1 * len(labels) + 2), 3.6))
    ax = fig.add_subplot(1, 1, 1)
    width = 0.8 / len(families)
    for i, family in enumerate(families):
        mine = [next(r for r in rows if r["run"] == label and r["family"] == family) for label in labels]
        x = np.arange(len(labels)) + (i - (len(families) - 1) / 2) * width
        ax.bar(x, [r["count_acc"] for r in mine], width, yerr=[r["stderr"] for r in mine], capsize=3, label=family)
        if "searched_acc" in mine[0]:  # the searched count as a diamond over its family's bar
            ax.errorbar(x, [r["searched_acc"] for r in mine], yerr=[r["searched_stderr"] for r in mine], fmt="D",
                        color="k", ms=4, capsize=2, label="searched" if i == 0 else None)
    low = min(r["count_acc"] - r["stderr"] for r in rows)
    ax.set_ylim(max(0.0, min(low, 0.95) - 0.01), 1.0)
    ax.axhline(0.985, color="k", lw=0.8, ls="--", label="0.985")
    ax.set_xticks(np.arange(len(labels)))
    ax.set_xticklabels(labels, rotation=20, ha="right", fontsize=8)
    ax.set_ylabel(f"{'validation' if rows[0].get('split') == 'val' else 'test'} count accuracy")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, title="scene family", title_fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


if __name__ == "__main__":
    sys.exit(run(main))
