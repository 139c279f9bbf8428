"""Count what training never showed (the paper's Figure 5): python -m experiments.generalise

Two experiments, each with AIR (recurrent inference) and DAIR (residual inference):
  extrapolate: train and validate on scenes of 0, 1 or 2 digits, test on 0-3 (is a 3-digit scene counted?);
  interpolate: train and validate on scenes of 0, 1 or 3 digits, test on 0-3 (is a 2-digit scene counted?).
Every model has T = 3 steps, so it could count 3. --models adds DAIR without memory (step_memory="none": a step
reads only what is still unexplained). Each run trains into OUT/<experiment>-<model>-seed<s> (joblib processes,
as a sweep's; finished runs are skipped and stopped ones resume from their checkpoint). Every finished run is then
scored on --n-score scenes of every count 0-3 from the --split digits (test, or validation digits to choose a
variant without the test ones), by its guide and, with --search, by the model's evidence after a search
(air.search); the scores are kept in the run folder, so scoring again costs nothing. Writes OUT/generalisation.csv
and .md (accuracy per true count, mean and sd over seeds, the paper's figure beside the held-out count) and
generalisation.png; generalisation_ink.csv, what each guide leaves unexplained once it has drawn as many steps as
the scene has digits, and whether it goes on; generalisation_stop.png, the guides' logit for a third step on two-
and three-digit scenes; and generalisation_<experiment>.png, scenes of the held-out count read by each model (first
seed). With --split val the files are named generalisation_val*.
"""
import csv
import dataclasses
import json
import math
import os
import sys
from pathlib import Path

import numpy as np

from air.checkpoint import load_checkpoint
from air.config import ConfigError
from air.guide import guide
from air.metrics import count_scores, search_scores
from air.model import infer
from air.runs import RunSpec, complete_metrics, execute, publish
from air.search import unexplained_ink
from air.viz import figure, models_figure
from experiments.cli import (Parser, UsageError, add_config_flags, add_search_flags, config_from_args, int_list,
                             load_data, plural, preset_help, run, search_options)

EXPERIMENTS = {"extrapolate": (0, 1, 2), "interpolate": (0, 1, 3)}
HELD_OUT = {"extrapolate": 3, "interpolate": 2}
# name -> (label, the Config fields that make it)
MODELS = {"recurrent": ("AIR", {"inference": "recurrent"}),
          "residual": ("DAIR", {"inference": "residual"}),
          "memoryless": ("DAIR, no memory", {"inference": "residual", "step_memory": "none"})}
# The paper's accuracy on the held-out count, as a third party read it off the paper's Figure 5 (aleju/papers,
# neural-nets/Attend_Infer_Repeat.md); the paper itself could not be checked from this machine.
PAPER = {("extrapolate", "AIR"): 0.0, ("extrapolate", "DAIR"): 0.80,
         ("interpolate", "AIR"): 0.60, ("interpolate", "DAIR"): 0.95}
PAPER_LABEL = "the paper, held-out count"
SCORERS = ("guide", "searched")
STOP_KEYS = {"stop_auc", "stop_logits", "go_logits"}  # what after_true_count adds beyond a score file's first form


def plan(args, given):
    """The RunSpecs: experiment x model x seed, every run with max_digits = max_steps = 3."""
    out = Path(args.out)
    runs = []
    for experiment in args.experiments:
        for model in args.models:
            for seed in args.seeds:
                overrides = {**given, "max_digits": 3, "max_steps": 3, "train_counts": EXPERIMENTS[experiment],
                             **MODELS[model][1]}
                overrides.pop("seed", None)
                name = f"{experiment}-{model}-seed{seed}"
                runs.append(RunSpec(name, args.preset, seed, tuple(sorted(overrides.items())), str(out / name),
                                    os.environ.get("AIR_MNIST_DIR")))
    try:
        for r in runs:
            r.config()
    except ConfigError as e:
        raise UsageError(f"--{e.name.replace('_', '-')}: {e.problem}") from None
    return runs


def every_count_scenes(config, split, n):
    """n scenes of the split's digits ("val" or "test") with counts uniform over 0..max_digits: for validation
    digits too, unlike the run's own validation scenes, which hold only its training counts."""
    changed = dataclasses.replace(config, train_counts=(), **{f"n_{split}": n})
    return getattr(load_data(changed, quiet=True), split)


def score_run(folder, split, n, options):
    """A finished run's accuracy per true count on n every-count scenes of `split`, by its guide and (options, an
    air.search.Search) by search: {"split", "n", "search", "guide": {per_class_acc, confusion, count_acc},
    "searched": same or None, "after_true_count"}. Kept in the folder as score-<split>.json and reused while split,
    n and the search options match."""
    path = Path(folder) / f"score-{split}.json"
    key = {"split": split, "n": n, "search": None if options is None else dataclasses.asdict(options)}
    try:
        kept = json.loads(path.read_text())
        kept = kept if {k: kept.get(k) for k in key} == json.loads(json.dumps(key)) else None
    except (OSError, ValueError):
        kept = None
    stops = (kept or {}).get("after_true_count")
    if stops and all(STOP_KEYS <= set(found) for found in stops.values()):
        return kept
    params, config = load_checkpoint(folder)
    scenes = every_count_scenes(config, split, n)
    if kept is not None:  # written before the guide's stopping was measured: only that is added
        kept["after_true_count"] = after_true_count(params, config, scenes)
        path.write_text(json.dumps(kept, indent=1))
        return kept
    n_true, n_pred = config.max_digits + 1, config.max_steps + 1
    out = infer(params, config, scenes.images)
    result = {**key, "guide": count_scores(scenes.counts, out["count"], n_true, n_pred), "searched": None,
              "after_true_count": after_true_count(params, config, scenes)}
    if options is not None:
        found, searched = search_scores(params, config, scenes, options)
        result["searched"] = {**count_scores(scenes.counts, searched["count"], n_true, n_pred),
                              "seconds": found["seconds"]}
    path.write_text(json.dumps(result, indent=1))
    return result


def after_true_count(params, config, scenes):
    """What the guide leaves and decides once it has drawn as many steps as the scene has digits: per true count
    n >= 1, the median and 90th percentile of the ink its first n windows leave unexplained (air.search's
    unexplained_ink: the most within one window-sized square), the share of scenes whose step n + 1 it then
    calls present (an over-count), where there is a step n + 1, and stop_auc: how well that step's presence logit
    tells these scenes (where it should stop) from scenes of n + 1 digits (where it should go on), as the chance
    that a random (n + 1)-digit scene's logit is the higher, ties counting half (None without both). A guide that
    stops only once less ink is left than it met in training over-counts a count whose scenes leave more; a
    stop_auc near 1 with many over-counts says its logit knows the count and only its threshold is off. The
    logits themselves, to 3 decimals, for plot_stops: stop_logits, step n + 1's on these scenes (below 0 is a
    stop; None where there is no step n + 1), and go_logits, step n's (above 0 draws the n-th digit)."""
    post = guide(params, config, scenes.images)
    drawn = np.cumsum(post["canvases"], axis=1)  # the ungated scene after steps 1..T
    found = {}
    for n in range(1, config.max_steps + 1):
        rows = np.flatnonzero(scenes.counts == n)
        if not len(rows):
            continue
        ink = unexplained_ink(config, scenes.images[rows], drawn[rows, n - 1])
        last = n == config.max_steps
        more = np.flatnonzero(scenes.counts == n + 1)
        found[str(n)] = {"scenes": int(len(rows)), "ink_median": float(np.median(ink)),
                         "ink_q90": float(np.quantile(ink, 0.9)),
                         "next_present": None if last else float(np.mean(post["pres_logit"][rows, n] > 0)),
                         "stop_auc": None if last or not len(more) else
                         rank_auc(post["pres_logit"][rows, n], post["pres_logit"][more, n]),
                         "stop_logits": None if last else _rounded(post["pres_logit"][rows, n]),
                         "go_logits": _rounded(post["pres_logit"][rows, n - 1])}
    return found


def _rounded(values):
    return [round(float(v), 3) for v in values]


def rank_auc(low, high):
    """The chance that a random entry of `high` exceeds a random entry of `low`, ties counting half (the area
    under the ROC curve of telling them apart by value)."""
    low, high = np.asarray(low, np.float64), np.asarray(high, np.float64)
    above = (high[:, None] > low[None, :]).sum() + 0.5 * (high[:, None] == low[None, :]).sum()
    return float(above / (len(low) * len(high)))


def summarise(runs, scores):
    """{(experiment, model, scorer): {"per_count", "per_count_sd" (over seeds; NaN for one seed), "held_out_range"
    (the lowest and highest seed's accuracy on the held-out count), "seen_acc", "seeds", "wall_s"}} over the runs
    that finished and were scored."""
    table = {}
    for experiment in EXPERIMENTS:
        for model in MODELS:
            mine = scored(runs, scores, experiment, model)
            for scorer in SCORERS:
                found = [scores[r.name][scorer] for r in mine if scores[r.name][scorer] is not None]
                if not found:
                    continue
                per_count = np.array([s["per_class_acc"] for s in found], dtype=float)
                held = per_count[:, HELD_OUT[experiment]]  # each seed's accuracy on the count never trained on
                seen = [seen_accuracy(s["confusion"], EXPERIMENTS[experiment]) for s in found]
                table[experiment, model, scorer] = {
                    "per_count": np.nanmean(per_count, axis=0).tolist(),
                    "per_count_sd": (np.std(per_count, axis=0, ddof=1) if len(found) > 1
                                     else np.full(per_count.shape[1], np.nan)).tolist(),
                    "held_out_range": [float(min(held)), float(max(held))],
                    "seen_acc": float(np.mean(seen)),
                    "seeds": len(found),
                    "wall_s": float(np.mean([complete_metrics(Path(r.folder))["wall_s"] for r in mine])),
                }
    return table


def scored(runs, scores, experiment, model):
    """The runs of one experiment and model (every seed) that have scores."""
    return [r for r in runs if r.name.startswith(f"{experiment}-{model}-") and r.name in scores]


def seen_accuracy(confusion, counts):
    """Accuracy over the scenes whose count was seen in training, from a confusion matrix (true x counted)."""
    rows = np.asarray(confusion)[list(counts)]
    return float(sum(rows[i, c] for i, c in enumerate(counts)) / max(rows.sum(), 1))


def write_table(out, table, stem):
    """OUT/<stem>.csv and .md; returns the markdown. The held-out count is in bold, the paper's figure beside."""
    header = ["experiment", "model", "count by", "seeds", "acc. count 0", "acc. count 1", "acc. count 2",
              "acc. count 3", "sd held-out", "held-out, lowest seed", "held-out, highest seed", "acc. on seen counts",
              "held-out count", "paper, held-out", "wall s"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    with open(Path(out) / f"{stem}.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        for (experiment, model, scorer), row in table.items():
            held = HELD_OUT[experiment]
            label = MODELS[model][0]
            paper = PAPER.get((experiment, label), "")
            sd = row["per_count_sd"][held]
            cells = [experiment, label, scorer, row["seeds"]] + [f"{a:.3f}" for a in row["per_count"]] + [
                "" if math.isnan(sd) else f"{sd:.3f}", *(f"{a:.3f}" for a in row["held_out_range"]),
                f"{row['seen_acc']:.3f}", held,
                f"about {paper:.2f}" if paper != "" else "", f"{row['wall_s']:.0f}"]
            writer.writerow(cells)
            shown = [f"**{c}**" if i == 4 + held else str(c) for i, c in enumerate(cells)]
            lines.append("| " + " | ".join(shown) + " |")
    (Path(out) / f"{stem}.md").write_text("\n".join(lines) + "\n")
    return "\n".join(lines)


def write_ink_table(out, runs, scores, stem):
    """OUT/<stem>_ink.csv (and its markdown, returned): per experiment and model, means over seeds of what the
    guide leaves once it has drawn as many steps as the scene has digits (after_true_count)."""
    header = ["experiment", "model", "seeds"] + [f"ink left after {n} (median)" for n in (1, 2, 3)] + [
        f"step {n + 1} present after {n}" for n in (1, 2)] + [f"stop AUC, {n} against {n + 1} digits" for n in (1, 2)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    with open(Path(out) / f"{stem}_ink.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        for experiment in EXPERIMENTS:
            for model in MODELS:
                found = [scores[r.name]["after_true_count"] for r in scored(runs, scores, experiment, model)]
                if not found:
                    continue
                mean = lambda key, n: f"{np.mean([f[str(n)][key] for f in found]):.{1 if key == 'ink_median' else 2}f}"
                cells = [experiment, MODELS[model][0], len(found)] + [mean("ink_median", n) for n in (1, 2, 3)] + [
                    mean("next_present", n) for n in (1, 2)] + [mean("stop_auc", n) for n in (1, 2)]
                writer.writerow(cells)
                lines.append("| " + " | ".join(map(str, cells)) + " |")
    return "\n".join(lines)


def plot(out, table, stem, split):
    """Accuracy per true count, a bar a model (the guide's count; the searched one as a diamond), the held-out
    count shaded and the paper's figure for it a black dash, one panel an experiment; error bars: sd over seeds."""
    fig = figure(9, 3.9)
    experiments = sorted({e for e, _, _ in table}, key=list(EXPERIMENTS).index)
    axes = np.atleast_1d(fig.subplots(1, len(experiments), sharey=True))
    colours = {"recurrent": "#3182bd", "residual": "#e6550d", "memoryless": "#31a354"}
    for ax, experiment in zip(axes, experiments):
        models = [m for m in MODELS if (experiment, m, "guide") in table]
        width, held = 0.8 / len(models), HELD_OUT[experiment]
        for k, model in enumerate(models):
            row = table[experiment, model, "guide"]
            x = np.arange(4) + (k - (len(models) - 1) / 2) * width
            seeds = row["seeds"]
            ax.bar(x, row["per_count"], width=0.95 * width, yerr=None if seeds == 1 else row["per_count_sd"],
                   capsize=2, color=colours[model],
                   label=f"{MODELS[model][0]} ({plural(seeds, 'seed')})")
            searched = table.get((experiment, model, "searched"))
            if searched is not None:
                ax.plot(x, searched["per_count"], "D", color="black", markersize=3.5,
                        label="count by search" if k == len(models) - 1 else None)
            paper = PAPER.get((experiment, MODELS[model][0]))
            if paper is not None:  # a dash across the held-out bar, lifted off the axis when it is 0
                ax.plot([x[held] - 0.5 * width, x[held] + 0.5 * width], [max(paper, 0.005)] * 2, color="black",
                        linewidth=2.2, solid_capstyle="butt", label=PAPER_LABEL)
        ax.axvspan(held - 0.45, held + 0.45, color="#dddddd", zorder=0)
        ax.set_xticks(range(4))
        ax.set_xlabel("true number of digits (grey: never seen in training)")
        ax.set_title(f"{experiment}: trained on counts {', '.join(map(str, EXPERIMENTS[experiment]))}", fontsize=9)
        ax.set_ylim(0, 1.05)
    axes[0].set_ylabel(f"{'validation' if split == 'val' else 'test'} count accuracy")
    handles = {}
    for ax in axes:  # one key below the panels, every model and the searched marker once
        for handle, label in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(label, handle)
    fig.legend(handles.values(), handles.keys(), loc="lower center", ncol=len(handles), fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    path = Path(out) / f"{stem}.png"
    fig.savefig(path, dpi=110)
    return path


def plot_stops(out, runs, scores, stem, split, n=2, clip=20.0):
    """OUT/<stem>_stop.png: the guide's presence logit for step n + 1, pooled over seeds, on n-digit scenes (where
    it should stop: below 0) and on (n + 1)-digit ones (where it should go on: above 0), a panel an experiment and
    model, the over-count share and the stop AUC in its title (means over seeds, as in the ink table). Two
    well-separated humps on either side of 0 are a guide that knows where to stop; humps that overlap are a logit
    that does not know; humps apart but both on one side of 0, a threshold in the wrong place. None when no score
    holds the logits."""
    panels = []
    for experiment in EXPERIMENTS:
        for model in MODELS:
            found = [scores[r.name]["after_true_count"] for r in scored(runs, scores, experiment, model)]
            found = [f for f in found if f.get(str(n), {}).get("stop_logits") and str(n + 1) in f]
            if found:
                panels.append((experiment, model, found))
    if not panels:
        return None
    experiments = [e for e in EXPERIMENTS if any(e == pe for pe, _, _ in panels)]
    models = [m for m in MODELS if any(m == pm for _, pm, _ in panels)]
    fig = figure(max(3.2 * len(models), 6.4), 2.4 * len(experiments) + 0.5)  # room for the key below one panel
    axes = np.asarray(fig.subplots(len(experiments), len(models), squeeze=False, sharex=True))
    placed = set()
    bins = np.linspace(-clip, clip, 41)
    for experiment, model, found in panels:
        row, column = experiments.index(experiment), models.index(model)
        ax = axes[row, column]
        stop = np.clip(np.concatenate([f[str(n)]["stop_logits"] for f in found]), -clip, clip)
        go = np.clip(np.concatenate([f[str(n + 1)]["go_logits"] for f in found]), -clip, clip)
        unseen = HELD_OUT[experiment]
        for values, digits, colour in ((stop, n, "#3182bd"), (go, n + 1, "#e6550d")):
            label = f"{digits}-digit scenes ({'should stop' if digits == n else 'should go on'})"
            ax.hist(values, bins=bins, color=colour, alpha=0.6, label=label)
        ax.axvline(0.0, color="black", linewidth=1, label="the guide's threshold")
        over = np.mean([f[str(n)]["next_present"] for f in found])
        auc = np.mean([f[str(n)]["stop_auc"] for f in found])
        ax.set_title(f"{experiment}, {MODELS[model][0]} (never saw {unseen})\ngoes on {over:.0%}, "
                     f"stop AUC {auc:.2f}, {plural(len(found), 'seed')}", fontsize=8)
        ax.tick_params(labelsize=7)
        placed.add((row, column))
        if row == len(experiments) - 1:
            ax.set_xlabel(f"presence logit of step {n + 1} (clipped to +-{clip:g})", fontsize=8)
    for (r, c), ax in np.ndenumerate(axes):
        if (r, c) not in placed:
            ax.set_visible(False)
    handles, labels = axes[min(placed)].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=3, fontsize=7.5, frameon=False)
    fig.suptitle(f"Where the guide stops: {'validation' if split == 'val' else 'test'} scenes", fontsize=9)
    fig.tight_layout(rect=(0, 0.08, 1, 0.95))
    path = Path(out) / f"{stem}_stop.png"
    fig.savefig(path, dpi=110)
    return path


def held_out_figures(out, runs, args, stem, n_scenes=8):
    """OUT/<stem>_<experiment>.png: n_scenes scenes of the held-out count (the split's, the first seed's runs),
    read by each model, their windows drawn; the paths."""
    paths = []
    for experiment in args.experiments:
        models = []
        for model in args.models:
            folder = Path(out) / f"{experiment}-{model}-seed{args.seeds[0]}"
            if complete_metrics(folder) is not None:
                models.append((MODELS[model][0], *load_checkpoint(folder)))
        if not models:
            continue
        scenes = every_count_scenes(models[0][2], args.split, args.n_score)
        held = HELD_OUT[experiment]
        picked = np.flatnonzero(scenes.counts == held)[:n_scenes]
        fig = models_figure(models, scenes.images[picked], scenes.counts[picked],
                            f"{experiment}: {held}-digit {'validation' if args.split == 'val' else 'test'} scenes, "
                            f"a count never seen in training (seed {args.seeds[0]})")
        paths.append(Path(out) / f"{stem}_{experiment}.png")
        fig.savefig(paths[-1], dpi=110)
    return paths


def _names(text, known, flag):
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        raise UsageError(f"{flag}: expected names of {', '.join(known)}, got {text!r}")
    return names


def main(argv=None):
    parser = Parser(prog="python -m experiments.generalise", description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="paper", help=preset_help("configuration every run starts from", "paper"))
    parser.add_argument("--seeds", default="0", help="comma-separated training seeds (default: 0)")
    parser.add_argument("--experiments", default=",".join(EXPERIMENTS),
                        help=f"comma-separated, of {', '.join(EXPERIMENTS)} (default: both)")
    parser.add_argument("--models", default="recurrent,residual",
                        help=f"comma-separated, of {', '.join(MODELS)} (default: recurrent,residual, the paper's "
                             "AIR and DAIR)")
    parser.add_argument("--split", choices=["test", "val"], default="test",
                        help="score on test digits (default) or validation digits, to choose without the test ones")
    parser.add_argument("--n-score", type=int, default=1000, metavar="N",
                        help="scenes of every count 0-3 each run is scored on (default: 1000)")
    parser.add_argument("--out", default="runs/generalise", help="folder of the runs and the table")
    parser.add_argument("--jobs", type=int, default=2, help="runs at once (default: 2)")
    parser.add_argument("--publish", default=None, metavar="DIR",
                        help="copy the table, the figure and each run's config.json, metrics.json and score "
                             "file into DIR")
    add_search_flags(parser)
    add_config_flags(parser)
    args = parser.parse_args(argv)
    args.seeds = int_list(args.seeds, "--seeds")
    args.experiments = _names(args.experiments, EXPERIMENTS, "--experiments")
    args.models = _names(args.models, MODELS, "--models")
    if args.jobs < 1:
        raise UsageError("--jobs: must be positive")
    if args.n_score < 1:
        raise UsageError("--n-score: must be positive")
    options = search_options(args)
    _, given = config_from_args(args)
    runs = plan(args, given)

    print(f"generalisation: {plural(len(runs), 'run')} of preset {args.preset} into {args.out}", flush=True)
    finished = []
    for i, row in enumerate(execute(runs, "joblib", args.jobs), 1):
        acc = row["test_count_acc"]
        done = isinstance(acc, float) and math.isfinite(acc)
        state = f"trained in {row['wall_s']:.0f} s" if done else row["status"]
        print(f"[{i}/{len(runs)}] {row['run']}: {state}{' (already complete)' if row['skipped'] else ''}", flush=True)
        if done:
            finished.append(row["run"])
    scores = _score_all([r for r in runs if r.name in finished], args, options)
    table = summarise(runs, scores)
    if not table:
        print("no run finished", file=sys.stderr)
        return 1
    stem = "generalisation" if args.split == "test" else "generalisation_val"
    print(write_table(args.out, table, stem), flush=True)
    ink = write_ink_table(args.out, runs, scores, stem)
    with open(Path(args.out) / f"{stem}.md", "a") as f:
        f.write("\nWhat the guide leaves once it has drawn as many steps as the scene has digits:\n\n" + ink + "\n")
    print(ink, flush=True)
    print(f"figure: {plot(args.out, table, stem, args.split)}", flush=True)
    stops = plot_stops(args.out, runs, scores, stem, args.split)
    if stops is not None:
        print(f"where the guides stop: {stops}", flush=True)
    scenes = held_out_figures(args.out, runs, args, stem)
    print(f"held-out scenes: {', '.join(map(str, scenes))}", flush=True)
    if args.publish:
        files = (f"{stem}.csv", f"{stem}_ink.csv", f"{stem}.md", f"{stem}.png") + tuple(p.name for p in scenes) + (
            () if stops is None else (stops.name,))
        count = publish(args.out, args.publish, files, ("config.json", "metrics.json", f"score-{args.split}.json"),
                        names={r.name for r in runs})
        print(f"published: {plural(count, 'file')} in {args.publish}", flush=True)
    return 0


def _score_all(runs, args, options):
    """{run name: score_run(...)} over the finished runs, in joblib processes, a line each as it is scored."""
    from joblib import Parallel, delayed  # the sweep extra, as for training
    jobs = Parallel(n_jobs=args.jobs, return_as="generator")(
        delayed(score_run)(r.folder, args.split, args.n_score, options) for r in runs)
    scores = {}
    for r, found in zip(runs, jobs):
        scores[r.name] = found
        accs = ", ".join(f"{s} {found[s]['count_acc']:.3f}" for s in SCORERS if found[s] is not None)
        print(f"scored {r.name} on {args.n_score} {args.split} scenes: {accs}", flush=True)
    return scores


if __name__ == "__main__":
    sys.exit(run(main))
