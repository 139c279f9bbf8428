"""What AIR's latents are good for: python -m experiments.downstream [--pretrained paper | --run RUN]

The paper's representational-power experiment (Eslami et al. 2016, Sec. 3.1) on a frozen AIR: for each task
(--tasks), readout (--features), number of labelled scenes (--budgets) and classifier seed (--seeds), a small
classifier trained on the AIR's features or on the pixels and scored on --n-test scenes of the test digits (or,
with --split val, of the validation digits, to choose settings on). air.readouts defines the tasks and the
readouts exactly. Every classifier trains with Adam for --passes passes over its labelled scenes, at least 100
steps and at most --max-steps, and keeps the step that scored best on a held-out tenth of them. Writes
downstream.csv (one row a task, readout, budget and seed), downstream.png (accuracy against labelled scenes, per
task) and model.json (which AIR, and how the classifiers trained) into --out.
"""
import csv
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from air.readouts import FEATURES, HIDDEN, READS, SLOT, TASKS, Training, plain_digit_check, run_experiment
from air.shipped import card
from experiments.cli import Parser, UsageError, int_list, load_model, plural, run

LABELS = {"objects": "AIR objects, shared digit MLP", "decoded": "AIR objects, decoded, shared digit CNN",
          "air": "AIR latents, MLP", "pixels": "pixels, MLP", "cnn": "pixels, CNN (3 conv + BN)"}
TITLES = {"sum": "sum of the digits (0-2 digits)", "sum2": "sum of the two digits (the paper's)",
          "order": "digits in ascending order (2 digits)", "digit": "the digit's class (1 digit)"}


def parse_args(argv):
    """The command line, checked: budgets, seeds, tasks and readouts as lists; UsageError on a bad value."""
    parser = Parser(prog="python -m experiments.downstream", description=__doc__.splitlines()[0])
    parser.add_argument("--pretrained", default=None, metavar="NAME",
                        help="the frozen AIR: a model shipped with air (default: paper)")
    parser.add_argument("--run", default=None, help="the frozen AIR: a run folder instead of a shipped model")
    parser.add_argument("--budgets", default="10,100,1000,10000", help="labelled scenes (default 10,100,1000,10000)")
    parser.add_argument("--seeds", default="0,1,2", help="classifier seeds (default 0,1,2)")
    parser.add_argument("--tasks", default=",".join(TASKS), help=f"tasks (default {','.join(TASKS)})")
    parser.add_argument("--features", default=",".join(FEATURES), help=f"readouts (default {','.join(FEATURES)})")
    parser.add_argument("--passes", type=int, default=Training.passes,
                        help=f"passes over the labelled scenes (default {Training.passes})")
    parser.add_argument("--max-steps", type=int, default=Training.max_steps,
                        help=f"at most this many Adam steps (default {Training.max_steps})")
    parser.add_argument("--hidden", type=int, default=HIDDEN, help=f"the MLPs' hidden units (default {HIDDEN})")
    parser.add_argument("--draws", choices=["posterior", "means"], default="posterior" if Training.draws else "means",
                        help="AIR's readouts train on latents drawn from the guide's posterior, or on its means "
                             f"(default {'posterior' if Training.draws else 'means'})")
    parser.add_argument("--reads", default=",".join(SLOT),
                        help=f"what each object slot gives AIR's readouts, some of {', '.join(READS)} "
                             f"(default {','.join(SLOT)})")
    parser.add_argument("--n-test", type=int, default=2000, help="scenes scored a task (default 2000)")
    parser.add_argument("--split", choices=["test", "val"], default="test",
                        help="score on scenes of the test digits, or of the validation digits (default test)")
    parser.add_argument("--out", default="runs/downstream", help="folder for downstream.csv and downstream.png")
    parser.add_argument("--resume", action="store_true",
                        help="continue the stopped experiment in --out: rows it holds are kept, not redone")
    parser.add_argument("--draw", nargs="+", default=None, metavar="CSV",
                        help="instead: draw the rows of these downstream.csv files in one figure, --out/downstream.png "
                             "(readouts run apart, e.g. the pixel baselines, which need no AIR)")
    parser.add_argument("--plain-mnist", action="store_true",
                        help="instead: the pixel CNN on plain 28x28 MNIST digits at each budget (how one knows it "
                             "is competent), into plain_mnist.csv")
    args = parser.parse_args(argv)
    for path in args.draw or ():
        if not Path(path).is_file():
            raise UsageError(f"--draw: no such results file {path}")
    args.budgets = sorted(set(int_list(args.budgets, "--budgets", least=1)))
    args.seeds = sorted(set(int_list(args.seeds, "--seeds")))
    args.tasks, args.features = _names(args.tasks, "--tasks", TASKS), _names(args.features, "--features", FEATURES)
    args.reads = tuple(name for name in READS if name in _names(args.reads, "--reads", READS))
    for flag, value in (("--passes", args.passes), ("--max-steps", args.max_steps), ("--n-test", args.n_test),
                        ("--hidden", args.hidden)):
        if value < 1:
            raise UsageError(f"{flag}: must be positive, got {value}")
    if max(args.budgets) > 100_000:
        raise UsageError(f"--budgets: at most 100,000 labelled scenes, got {max(args.budgets):,}")
    if args.pretrained is None and args.run is None:
        args.pretrained = "paper"
    return args


def main(argv=None):
    args = parse_args(argv)
    out = Path(args.out)
    if args.draw:
        rows = [row for path in args.draw for row in read_rows(path)]
        out.mkdir(parents=True, exist_ok=True)
        figure(rows, f"Readouts: accuracy against labelled scenes ({sources(args.draw)})").savefig(
            out / "downstream.png", dpi=100)
        print(f"figure: {out / 'downstream.png'}")
        return 0
    if args.plain_mnist:
        out.mkdir(parents=True, exist_ok=True)
        rows = plain_digit_check(args.budgets, args.seeds, training(args), args.n_test,
                                 report=lambda line: print(line, flush=True))
        write_rows(out / "plain_mnist.csv", rows)
        print(f"results: {out / 'plain_mnist.csv'}")
        return 0
    params, config = load_model(args)
    results = out / "downstream.csv"
    earlier = resumable_rows(out, args, config) if args.resume else []
    if not args.resume and results.exists():
        raise UsageError(f"--out: {out} holds results already; --resume continues them, or choose another folder")
    out.mkdir(parents=True, exist_ok=True)
    write_model_note(out / "model.json", args, config)
    write_rows(results, earlier, fields=FIELDS[args.split])
    start = time.perf_counter()
    done = {(r["task"], r["features"], r["labelled"], r["seed"]) for r in earlier}
    rows = earlier + run_experiment(params, config, args.tasks, args.features, args.budgets, args.seeds,
                                    training(args), args.n_test, split=args.split,
                                    report=lambda line: print(line, flush=True), done=done,
                                    on_row=lambda row: append_row(results, row))
    source = f"the shipped {args.pretrained!r} model" if args.pretrained else args.run
    fig = figure(rows, f"Readouts of {source}: {args.split} accuracy against labelled scenes")
    fig.savefig(out / "downstream.png", dpi=100)
    print(f"\n{args.split} accuracy, mean +- sd over {plural(len(args.seeds), 'seed')} ({args.n_test:,} scenes a "
          f"task)")
    for (task, readout, budget), (mean, sd, _) in summary(rows).items():
        print(f"  {task:5s}  {LABELS[readout]:30s}  {budget:6d} labelled  {mean:.3f} +- {sd:.3f}")
    print(f"{plural(len(rows), 'classifier')} in {time.perf_counter() - start:.0f} s; "
          f"results: {out / 'downstream.csv'}; figure: {out / 'downstream.png'}", flush=True)
    return 0


def sources(paths):
    """The results files a drawn figure reads, short enough for its title: their folders under the folder they share
    ("in docs/results: downstream, downstream_pixels"), a file named other than downstream.csv by its name."""
    parents = [os.path.abspath(Path(p).parent) for p in paths]
    common = os.path.commonpath(parents)
    names = [os.path.relpath(os.path.abspath(p) if Path(p).name != "downstream.csv" else parent, common)
             for p, parent in zip(paths, parents)]
    where = os.path.relpath(common)
    where = common if where.startswith("..") else where
    return where if set(names) == {"."} else f"in {where}: " + ", ".join(names)


def training(args):
    """The air.readouts.Training the flags ask for."""
    return Training(passes=args.passes, max_steps=args.max_steps, hidden=args.hidden,
                    draws=args.draws == "posterior", reads=args.reads)


def training_note(args):
    """model.json's "training": how the classifiers trained and on which scenes they were scored (what --resume
    must match)."""
    return {**vars(training(args)), "split": args.split, "n_scored": args.n_test, "budgets": args.budgets}


def _names(text, flag, known):
    names = [v.strip() for v in text.split(",") if v.strip()]
    unknown = [v for v in names if v not in known]
    if not names or unknown:
        raise UsageError(f"{flag}: expected some of {', '.join(known)}, got {text!r}")
    return list(dict.fromkeys(names))


def write_model_note(path, args, config):
    """model.json: which frozen AIR the results are of (a shipped model's card, or a run folder) and its config."""
    note = {"pretrained": args.pretrained, "card": card(args.pretrained)} if args.pretrained else {"run": args.run}
    note["training"] = training_note(args)
    path.write_text(json.dumps({**note, "config": json.loads(config.to_json())}, indent=1))


FIELDS = {split: ["task", "features", "labelled", "seed", f"{split}_acc", "n_scored", "steps", "kept_step", "seconds"]
          for split in ("test", "val")}


def write_rows(path, rows, fields=None):
    """downstream.csv: run_experiment's rows, a column per key (`fields`, or the first row's keys)."""
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fields or list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def append_row(path, row):
    """One more row at the end of a downstream.csv, flushed, so that a stopped experiment keeps what it did."""
    with open(path, "a", newline="") as f:
        csv.DictWriter(f, list(row)).writerow(row)


def resumable_rows(out, args, config):
    """The rows of an earlier call into `out` that --resume keeps; UsageError unless that call asked for the same
    AIR, budgets, training and scenes (a budget's labelled scenes depend on the largest budget)."""
    note_path = out / "model.json"
    if not (out / "downstream.csv").exists() or not note_path.exists():
        raise UsageError(f"--resume: {out} holds no earlier results to continue")
    note = json.loads(note_path.read_text())
    mine = json.loads(json.dumps({"training": training_note(args), "config": json.loads(config.to_json())}))
    note["training"] = {"reads": list(SLOT), **note.get("training", {})}  # notes from before --reads existed
    for key in ("training", "config"):
        if note.get(key) != mine[key]:
            raise UsageError(f"--resume: {out} was made with another {key} ({note_path}); keep its flags")
    return read_rows(out / "downstream.csv")


def read_rows(path):
    """The rows of a downstream.csv, with numbers as numbers (FileNotFoundError naming it if it is missing)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no downstream results (python -m experiments.downstream writes them)")
    kinds = {"labelled": int, "seed": int, "test_acc": float, "val_acc": float, "n_scored": int, "steps": int,
             "kept_step": int, "seconds": float}
    with open(path, newline="") as f:
        return [{k: kinds.get(k, str)(v) for k, v in row.items()} for row in csv.DictReader(f)]


def score(row):
    """A row's accuracy, on whichever split it was scored."""
    return row["test_acc"] if "test_acc" in row else row["val_acc"]


def summary(rows):
    """(task, readout, budget) -> (mean, sample sd, n) of accuracy over seeds, in the rows' order."""
    groups = {}
    for r in rows:
        groups.setdefault((r["task"], r["features"], r["labelled"]), []).append(score(r))
    return {k: (float(np.mean(v)), float(np.std(v, ddof=1)) if len(v) > 1 else 0.0, len(v))
            for k, v in groups.items()}


def figure(rows, title):
    """A matplotlib Figure: test accuracy (mean over seeds, each seed a dot) against labelled scenes, a panel
    per task, one line per readout."""
    from matplotlib.figure import Figure  # lazy: matplotlib adds about 0.8 s to start-up; only drawing needs it
    tasks = list(dict.fromkeys(r["task"] for r in rows))
    readouts = list(dict.fromkeys(r["features"] for r in rows))
    fig = Figure(figsize=(4.2 * len(tasks), 3.6))
    for i, task in enumerate(tasks):
        ax = fig.add_subplot(1, len(tasks), i + 1)
        for j, readout in enumerate(readouts):
            mine = [r for r in rows if r["task"] == task and r["features"] == readout]
            budgets = sorted({r["labelled"] for r in mine})
            means = [np.mean([score(r) for r in mine if r["labelled"] == b]) for b in budgets]
            line, = ax.plot(budgets, means, marker="o", label=LABELS[readout], color=f"C{j}")
            ax.plot([r["labelled"] for r in mine], [score(r) for r in mine], ".", color=line.get_color(),
                    alpha=0.4)
        ax.axhline(0.95, color="grey", lw=0.8, ls=":")
        ax.set_xscale("log")
        ax.set_ylim(0, 1.02)
        ax.set_xlabel("labelled scenes")
        ax.set_ylabel("accuracy")
        ax.set_title(TITLES[task], fontsize=9)
        ax.grid(alpha=0.3)
        if i == 0:
            ax.legend(fontsize=7, loc="lower right")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


if __name__ == "__main__":
    sys.exit(run(main))
