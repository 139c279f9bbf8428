"""Why two digits are counted as one: python -m experiments.merges RUN [RUN ...] [--digit-size 12,16]

Scores each run's best parameters on the two-digit scenes of its held-out test family (or of another family,
with the same scene flags as experiments.evaluate) and bins them by the distance between the two digits' centres,
by their mean size and by the IoU of their boxes: the share counted as two, as one (merged) and as three (split).
The other side of a window bound that stops merges is one digit split over two windows, so it also bins the
one-digit scenes by the digit's side: the share counted as one, as none and as two or more (split).
Writes merges.csv (one row a run and bin), splits.csv (the one-digit bins) and merges.png (two-digit accuracy
against distance and against size, one-digit accuracy against size, a line a run) into --out (for one run, by
default RUN/merges; an earlier call's files are replaced only with --overwrite). The pixel bins are given for a
50-px canvas and scale with the run's canvas.

With --gains it also asks how much the objective prefers two objects to one on each two-digit scene, and writes
gains.csv and gains.png: the ELBO (at the posterior means) of two windows placed on the two true digit frames, each
z_what from the model's own glimpse encoder and drawn by its own decoder, minus that of the model's first step
alone; and the same for the model's own first two steps. Both sides pay the count prior at the end of training
and z_what's KL; z_where's KL (a few nats an object) is left out of both.
"""
import csv
import sys
from pathlib import Path

import numpy as np

from air.checkpoint import CheckpointError, checkpoint_path, load_checkpoint
from air.density import elbo_at_means
from air.generative import prior_count_probs
from air.guide import glimpse_posterior, guide
from air.metrics import box_iou
from air.model import infer
from air.schedules import pres_prior, steps_per_epoch
from air.transformer import box_where
from experiments.cli import Parser, UsageError, add_family_flags, load_data, run, scene_family

# Bin edges in pixels of a 50-px canvas; on another canvas they scale with its side (bins_for).
DISTANCE_BINS = (0, 10, 14, 18, 22, 26, 32, 80)  # between the two digit centres (80 is far)
SIZE_BINS = (0, 16, 19, 21, 23, 25, 27, 29, 40)  # a digit's side, or a pair's mean side (own family: up to 28)
IOU_BINS = (0, 1e-9, 0.1, 0.3, 0.5, 1.01)  # overlap of the two digits' boxes; the first bin is "disjoint"
FEW = 20  # a bin of fewer scenes is drawn hollow, with its count: its share is a coarse estimate


def bins_for(edges, canvas_size):
    """Pixel bin edges given for a 50-px canvas, scaled to `canvas_size` (whole pixels; unchanged at 50)."""
    if canvas_size == 50:
        return edges
    scaled = [round(e * canvas_size / 50) for e in edges]
    return tuple(sorted(set(scaled)))


def two_digit_table(params, config, scenes):
    """Per two-digit scene: centre distance (px), mean side (px), box IoU of the two digits, inferred count."""
    two = scenes.counts == 2
    boxes = scenes.boxes[two, :2]
    centres = (boxes[..., :2] + boxes[..., 2:]) / 2
    count = infer(params, config, scenes.images[two])["count"]
    return {"distance": np.linalg.norm(centres[:, 0] - centres[:, 1], axis=1),
            "size": (boxes[..., 2] - boxes[..., 0]).mean(axis=1),
            "iou": box_iou(boxes[:, 0], boxes[:, 1]), "count": count}


def one_digit_table(params, config, scenes):
    """Per one-digit scene: the digit's side (px) and the inferred count."""
    one = scenes.counts == 1
    box = scenes.boxes[one, 0]
    return {"size": box[:, 2] - box[:, 0], "count": infer(params, config, scenes.images[one])["count"]}


def explanation_gains(params, config, scenes):
    """Per two-digit scene, ELBO gains in nats (see the module docstring): "oracle", two windows on the true digit
    frames over the model's first step alone; "model", the model's first two steps over its first step alone."""
    if config.object_encoder != "glimpse":
        raise UsageError("--gains needs a run whose z_what comes from the glimpse encoder (object_encoder=glimpse)")
    two = scenes.counts == 2
    images = scenes.images[two].astype(config.dtype)
    total = config.n_epochs * steps_per_epoch(config)
    prior = pres_prior(config, total, total)  # the count prior at the end of training
    log_p_count = np.log(prior_count_probs(prior))
    post = guide(params, config, images)
    one = steps_elbo(params, config, images, post, 1) + log_p_count[1]
    own_two = steps_elbo(params, config, images, post, 2) + log_p_count[2]
    frames = true_frame_posterior(params, config, images, scenes.boxes[two])
    oracle = steps_elbo(params, config, images, frames, 2) + log_p_count[2]
    return {"oracle": oracle - one, "model": own_two - one}


def steps_elbo(params, config, images, post, count):
    """Per scene, the ELBO at the means of explaining it by the first `count` steps of `post` (air.density.
    elbo_at_means): z_where's KL is left out, so that what one object more or less costs is the likelihood it
    gains against its z_what's KL and the count prior."""
    where = np.concatenate([post["log_scale"][:, :count, None], post["shift"][:, :count]], axis=2)
    return elbo_at_means(params, config, images, where, post["what_mean"][:, :count], post["what_logvar"][:, :count])


def true_frame_posterior(params, config, images, boxes):
    """Two windows on the true digit frames, boxes (N, 2, 4), each z_what from the model's own glimpse encoder, as
    steps_elbo reads them: what_mean and what_logvar (N, 2, D), log_scale (N, 2) and shift (N, 2, 2)."""
    n, d = len(images), config.what_dim
    log_scale, shift = box_where(boxes[:, :2], config.canvas_size, config.window_size)
    log_scale = np.clip(log_scale, *config.log_scale_range).astype(config.dtype)  # as the model's windows are
    shift = shift.astype(config.dtype)
    mean, logvar = glimpse_posterior(params, config, np.repeat(images, 2, axis=0), log_scale.reshape(-1),
                                     shift.reshape(-1, 2))
    return {"what_mean": mean.reshape(n, 2, d), "what_logvar": logvar.reshape(n, 2, d), "log_scale": log_scale,
            "shift": shift}


def _bins(table, key, edges):
    """The non-empty bins of table[key]: [(low, high, mask)]."""
    masks = [(low, high, (table[key] >= low) & (table[key] < high)) for low, high in zip(edges[:-1], edges[1:])]
    return [(low, high, inside) for low, high, inside in masks if inside.any()]


def binned(table, key, edges, right=2):
    """[(low, high, n, share counted `right`, share counted one fewer, share counted more)] over the bins of
    table[key]: for two-digit scenes counted as two, merged and split; for one-digit ones, as one, none and split."""
    rows = []
    for low, high, inside in _bins(table, key, edges):
        c = table["count"][inside]
        rows.append((low, high, int(inside.sum()), float(np.mean(c == right)), float(np.mean(c == right - 1)),
                     float(np.mean(c > right))))
    return rows


def bin_centres(table, key, edges):
    """The mean of table[key] inside each non-empty bin, where binned's rows are drawn: an open-ended bin such as
    0-16 px is drawn where its scenes are, not at its midpoint."""
    return [float(np.mean(table[key][inside])) for _, _, inside in _bins(table, key, edges)]


def default_out(runs):
    """RUN/merges for one run; several runs need --out, so that one call never overwrites another's files."""
    if len(runs) > 1:
        raise UsageError("--out: give a folder when scoring several runs (one run's default is RUN/merges)")
    try:
        return checkpoint_path(runs[0]).parent / "merges"
    except CheckpointError as e:
        raise UsageError(f"RUN: {e}") from None


def parse_args(argv):
    """(the command line, a label a run, the output folder); UsageError if the labels do not fit the runs or the
    folder holds an earlier call's files and --overwrite was not given."""
    parser = Parser(prog="python -m experiments.merges", description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", metavar="RUN", help="run folders (or their checkpoint.npz)")
    parser.add_argument("--out", default=None,
                        help="folder for the csv files and figures (default, for one run: RUN/merges)")
    parser.add_argument("--overwrite", action="store_true", help="replace the files of an earlier call in --out")
    parser.add_argument("--label", default=None, help="comma-separated names of the runs in the figure")
    parser.add_argument("--gains", action="store_true",
                        help="also write gains.csv and gains.png: how much the ELBO prefers two windows to one")
    add_family_flags(parser)
    args = parser.parse_args(argv)
    labels = args.label.split(",") if args.label else [Path(r).name for r in args.runs]
    if len(labels) != len(args.runs):
        raise UsageError(f"--label: {len(labels)} names for {len(args.runs)} runs")
    out = Path(args.out) if args.out else default_out(args.runs)
    if (out / "merges.csv").exists() and not args.overwrite:
        raise UsageError(f"--out: {out} already holds merges.csv; pass --overwrite to replace it, or another --out")
    return args, labels, out


def main(argv=None):
    args, labels, out = parse_args(argv)
    results, singles, gains, centres = {}, {}, {}, {}
    for label, path in zip(labels, args.runs):
        try:
            params, config = load_checkpoint(path)
        except CheckpointError as e:
            raise UsageError(f"RUN: {e}") from None
        config = scene_family(config, args)
        scenes = load_data(config, quiet=True).test
        results[label], singles[label], centres[label], table = bin_run(label, params, config, scenes)
        if args.gains:
            gains[label] = {**table, **explanation_gains(params, config, scenes)}
            print_gains(label, gains[label])
    out.mkdir(parents=True, exist_ok=True)
    write_bins(out, results, singles)
    _plot(results, singles, centres, out / "merges.png")
    print(f"results: {out / 'merges.csv'}, {out / 'splits.csv'}; figure: {out / 'merges.png'}", flush=True)
    if gains:
        write_gains(out / "gains.csv", gains)
        _plot_gains(gains, out / "gains.png")
        print(f"gains: {out / 'gains.csv'}; figure: {out / 'gains.png'}", flush=True)
    return 0


def bin_run(label, params, config, scenes):
    """One run's bins, printed in a line: (the two-digit scenes binned by distance, size and IoU, the one-digit
    scenes binned by size, the bins' centres, the two-digit table)."""
    distance_bins, size_bins = (bins_for(e, config.canvas_size) for e in (DISTANCE_BINS, SIZE_BINS))
    table = two_digit_table(params, config, scenes)
    result = {"distance": binned(table, "distance", distance_bins), "size": binned(table, "size", size_bins),
              "iou": binned(table, "iou", IOU_BINS)}
    single = one_digit_table(params, config, scenes)
    centres = {"distance": bin_centres(table, "distance", distance_bins),
               "size": bin_centres(table, "size", size_bins), "single": bin_centres(single, "size", size_bins)}
    print(f"{label}: {len(table['count'])} two-digit scenes, counted as two {np.mean(table['count'] == 2):.3f}, "
          f"merged {np.mean(table['count'] == 1):.3f}, split {np.mean(table['count'] >= 3):.3f}; "
          f"{len(single['count'])} one-digit scenes, split {np.mean(single['count'] >= 2):.3f}", flush=True)
    return result, binned(single, "size", size_bins, right=1), centres, table


def print_gains(label, gains):
    """The median gains of the oracle's and of the model's two windows, on merged scenes and on scenes counted as
    two."""
    merged = gains["count"] == 1
    for key in ("oracle", "model"):
        g = gains[key]
        print(f"{label}: median ELBO gain of {key} two windows over one, merged scenes "
              f"{_median(g[merged])}, counted as two {_median(g[gains['count'] == 2])} nats", flush=True)


def write_bins(out, results, singles):
    """merges.csv (a row a run and two-digit bin) and splits.csv (a row a run and one-digit bin) in `out`."""
    with open(out / "merges.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["run", "by", "low", "high", "n", "counted_two", "merged", "split"])
        for label, by in results.items():
            for key, rows in by.items():
                writer.writerows([label, key, *row] for row in rows)
    with open(out / "splits.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["run", "low", "high", "n", "counted_one", "missed", "split"])
        for label, rows in singles.items():
            writer.writerows([label, *row] for row in rows)


def write_gains(path, gains):
    """gains.csv: a row a run and two-digit scene, its distance, size, count and both gains."""
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["run", "distance", "size", "count", "oracle_gain", "model_gain"])
        for label, g in gains.items():
            writer.writerows([label, f"{g['distance'][i]:.2f}", f"{g['size'][i]:.2f}", int(g["count"][i]),
                              f"{g['oracle'][i]:.2f}", f"{g['model'][i]:.2f}"] for i in range(len(g["count"])))


def _median(values):
    return f"{np.median(values):.1f}" if len(values) else "n/a"


def _plot(results, singles, centres, path):
    """Three panels, a line a run: each bin's share drawn at the mean value of its scenes; a bin of fewer than FEW
    scenes hollow, with its count beside it."""
    from matplotlib.figure import Figure  # lazy: matplotlib adds about 0.8 s to start-up; only drawing needs it
    two = "two-digit scenes counted as two"
    panels = (("distance between the digit centres (px)", two, "distance",
               {k: by["distance"] for k, by in results.items()}),
              ("mean digit side (px)", two, "size", {k: by["size"] for k, by in results.items()}),
              ("digit side (px)", "one-digit scenes counted as one", "single", singles))
    fig = Figure(figsize=(13, 3.4))
    for i, (xlabel, ylabel, key, lines) in enumerate(panels):
        ax = fig.add_subplot(1, 3, i + 1)
        for label, rows in lines.items():  # rows: (low, high, n, share right, ...)
            x, y = centres[label][key], [r[3] for r in rows]
            line, = ax.plot(x, y, "-", label=label)
            for xi, yi, r in zip(x, y, rows):
                few = r[2] < FEW
                ax.plot(xi, yi, "o", color=line.get_color(), markerfacecolor="white" if few else line.get_color())
                if few:
                    ax.annotate(f"n={r[2]}", (xi, yi), textcoords="offset points", xytext=(3, -9), fontsize=6,
                                color=line.get_color())
        low = min((r[3] for rows in lines.values() for r in rows), default=0.0)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.set_ylim(max(0.0, min(0.8, low - 0.02)), 1.02)  # one-digit shares sit near 1: show their spread
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def _plot_gains(gains, path):
    from matplotlib.figure import Figure  # lazy: matplotlib adds about 0.8 s to start-up; only drawing needs it
    fig = Figure(figsize=(4.2 * len(gains), 3.6))
    for i, (label, g) in enumerate(gains.items()):
        ax = fig.add_subplot(1, len(gains), i + 1)
        for counted, colour, name in ((2, "tab:blue", "counted as two"), (1, "tab:red", "merged into one")):
            mask = g["count"] == counted
            ax.scatter(g["distance"][mask], g["oracle"][mask], s=6, c=colour, alpha=0.6, label=name)
        ax.axhline(0.0, color="k", lw=0.8)
        ax.set_yscale("symlog", linthresh=10.0)
        ax.set_xlabel("distance between the digit centres (px)")
        ax.set_ylabel("ELBO(two true windows) - ELBO(one), nats")
        ax.set_title(label, fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, markerscale=2)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


if __name__ == "__main__":
    sys.exit(run(main))
