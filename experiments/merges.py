"""Why two digits are counted as one: python -m experiments.merges RUN [RUN ...] [--digit-size 12,16]

Scores each run's best parameters on the two-digit scenes of its held-out test family (or of another family,
with the same scene flags as experiments.evaluate) and bins them by the distance between the two digits' centres,
by their mean size and by the IoU of their boxes: the share counted as two, as one (merged) and as three (split).
Writes merges.csv (one row a run and bin) and merges.png (two-digit accuracy against distance and against size, a
line a run) into --out.
"""
import csv
import sys
from pathlib import Path

import numpy as np

from experiments.cli import Parser, UsageError, load_data, run
from experiments.evaluate import add_family_flags, scene_family

DISTANCE_BINS = (0, 10, 14, 18, 22, 26, 32, 80)  # px between the two digit centres (50-px canvas: 80 is far)
SIZE_BINS = (0, 16, 19, 21, 23, 25, 27, 40)  # px, the mean side of the two digits
IOU_BINS = (0, 1e-9, 0.1, 0.3, 0.5, 1.01)  # overlap of the two digits' boxes; the first bin is "disjoint"


def two_digit_table(params, config, scenes):
    """Per two-digit scene: centre distance (px), mean side (px), box IoU of the two digits, inferred count."""
    from air import infer
    from air.metrics import box_iou
    two = scenes.counts == 2
    boxes = scenes.boxes[two, :2]
    centres = (boxes[..., :2] + boxes[..., 2:]) / 2
    count = infer(params, config, scenes.images[two])["count"]
    return {"distance": np.linalg.norm(centres[:, 0] - centres[:, 1], axis=1),
            "size": (boxes[..., 2] - boxes[..., 0]).mean(axis=1),
            "iou": box_iou(boxes[:, 0], boxes[:, 1]), "count": count}


def binned(table, key, edges):
    """[(low, high, n, share counted 2, share counted 1, share counted 3+)] over the bins of table[key]."""
    rows = []
    for low, high in zip(edges[:-1], edges[1:]):
        inside = (table[key] >= low) & (table[key] < high)
        n = int(inside.sum())
        if n:
            c = table["count"][inside]
            rows.append((low, high, n, float(np.mean(c == 2)), float(np.mean(c == 1)), float(np.mean(c >= 3))))
    return rows


def main(argv=None):
    parser = Parser(prog="python -m experiments.merges", description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", metavar="RUN", help="run folders (or their checkpoint.npz)")
    parser.add_argument("--out", default="runs/merges", help="folder for merges.csv and merges.png")
    parser.add_argument("--label", default=None, help="comma-separated names of the runs in the figure")
    add_family_flags(parser)
    args = parser.parse_args(argv)
    labels = args.label.split(",") if args.label else [Path(r).name for r in args.runs]
    if len(labels) != len(args.runs):
        raise UsageError(f"--label: {len(labels)} names for {len(args.runs)} runs")

    from air.checkpoint import CheckpointError, load_checkpoint
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results = {}
    for label, path in zip(labels, args.runs):
        try:
            params, config = load_checkpoint(path)
        except CheckpointError as e:
            raise UsageError(f"RUN: {e}") from None
        config = scene_family(config, args)
        table = two_digit_table(params, config, load_data(config, quiet=True).test)
        results[label] = {"distance": binned(table, "distance", DISTANCE_BINS), "size": binned(table, "size", SIZE_BINS),
                          "iou": binned(table, "iou", IOU_BINS)}
        print(f"{label}: {len(table['count'])} two-digit scenes, counted as two {np.mean(table['count'] == 2):.3f}, "
              f"merged {np.mean(table['count'] == 1):.3f}, split {np.mean(table['count'] >= 3):.3f}", flush=True)
    with open(out / "merges.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["run", "by", "low", "high", "n", "counted_two", "merged", "split"])
        for label, by in results.items():
            for key, rows in by.items():
                writer.writerows([label, key, *row] for row in rows)
    _plot(results, out / "merges.png")
    print(f"results: {out / 'merges.csv'}; figure: {out / 'merges.png'}", flush=True)
    return 0


def _plot(results, path):
    from matplotlib.figure import Figure
    fig = Figure(figsize=(9, 3.4))
    for i, (key, xlabel) in enumerate((("distance", "distance between the digit centres (px)"),
                                       ("size", "mean digit side (px)"))):
        ax = fig.add_subplot(1, 2, i + 1)
        for label, by in results.items():
            rows = by[key]
            ax.plot([(r[0] + r[1]) / 2 for r in rows], [r[3] for r in rows], "o-", label=label)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("two-digit scenes counted as two")
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


if __name__ == "__main__":
    sys.exit(run(main))
