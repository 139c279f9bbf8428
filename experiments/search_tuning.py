"""Measure the search's levers on validation scenes: python -m experiments.search_tuning --pretrained paper

The search (air.search) is chosen here, on validation scenes (the validation digit pool, never the test one):
each lever is moved one at a time from the default Search, and every setting is scored on --n-val scenes of each
family (the model's own and Pyro's generator's): count accuracy by search beside the guide's, the scenes it fixed
and broke, the share it searched, and its process time a scene on one core. Writes tuning.csv and tuning.png into
--out.
"""
import csv
import dataclasses
import sys
from pathlib import Path

import numpy as np

from air.metrics import search_scores
from air.search import PROPOSALS, Search
from experiments.cli import Parser, UsageError, load_data, load_model, run

# Each lever moved alone from the default: (label, changes to Search()).
SETTINGS = (
    ("default", {}),
    ("proposals: guide", {"proposals": ("guide",)}),
    ("proposals: + across", {"proposals": ("guide", "kmeans", "across")}),
    ("proposals: + across, split, residual", {"proposals": ("guide", "kmeans", "across", "split", "residual")}),
    ("proposals: all", {"proposals": PROPOSALS}),
    ("score: iw, k = 10", {"score": "iw", "k": 10}),
    ("score: iw, k = 50", {"score": "iw", "k": 50}),
    ("steps: 20", {"steps": 20}),
    ("steps: 100", {"steps": 100}),
    ("lr: 0.05, 0.05", {"lr": 0.05, "what_lr": 0.05}),
    ("gate: 6", {"gate": 6.0}),
    ("gate: 12", {"gate": 12.0}),
    ("gate: none (every scene)", {"gate": -1.0}),
)
FIELDS = ("setting", "family", "n_scenes", "amortised_acc", "count_acc", "stderr", "fixed", "broken",
          "searched_share", "ms_per_scene")


def main(argv=None):
    parser = Parser(prog="python -m experiments.search_tuning", description=__doc__.splitlines()[0])
    parser.add_argument("run", nargs="?", help="run folder (or its checkpoint.npz)")
    parser.add_argument("--pretrained", default=None, metavar="NAME", help="a model shipped with air instead")
    parser.add_argument("--n-val", type=int, default=3000, help="validation scenes a family (default 3000)")
    parser.add_argument("--only", default=None, metavar="LABELS",
                        help="comma-separated setting numbers (0-based) to run, default all")
    parser.add_argument("--out", default="runs/search_tuning", help="folder for tuning.csv and tuning.png")
    args = parser.parse_args(argv)
    params, config = load_model(args)
    chosen = SETTINGS
    if args.only:
        try:
            chosen = [SETTINGS[int(i)] for i in args.only.split(",")]
        except (ValueError, IndexError):
            raise UsageError(f"--only: expected setting numbers 0-{len(SETTINGS) - 1}, got {args.only!r}") from None
    families = {name: load_data(dataclasses.replace(config, n_val=args.n_val, scene_family=name), quiet=True).val
                for name in ("own", "pyro")}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for label, changes in chosen:
        for family, scenes in families.items():
            found, _ = search_scores(params, config, scenes, Search(**changes))
            row = {"setting": label, "family": family, "n_scenes": len(scenes),
                   **{k: found[k] for k in FIELDS if k in found}}
            rows.append(row)
            print(f"{label:>30s}  {family:>4s}  guide {row['amortised_acc']:.4f}  searched {row['count_acc']:.4f} +- "
                  f"{row['stderr']:.4f}  fixed {row['fixed']:3d} broken {row['broken']:3d}  searched "
                  f"{100 * row['searched_share']:4.1f}%  {row['ms_per_scene']:6.2f} ms a scene", flush=True)
    with open(out / "tuning.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, FIELDS)
        writer.writeheader()
        writer.writerows({k: (f"{v:.4f}" if isinstance(v, float) else v) for k, v in r.items()} for r in rows)
    _plot(rows, out / "tuning.png")
    print(f"results: {out / 'tuning.csv'}; figure: {out / 'tuning.png'}")
    return 0


def _plot(rows, path):
    from matplotlib.figure import Figure  # lazy: only drawing needs it
    labels = list(dict.fromkeys(r["setting"] for r in rows))
    fig = Figure(figsize=(9, 0.32 * len(labels) + 1.4))
    axes = fig.subplots(1, 2, sharey=True)
    y = np.arange(len(labels))
    for ax, key, title in ((axes[0], "count_acc", "validation count accuracy"),
                           (axes[1], "ms_per_scene", "ms a scene (one core)")):
        for offset, family in ((-0.18, "own"), (0.18, "pyro")):
            mine = [next((r for r in rows if r["setting"] == s and r["family"] == family), None) for s in labels]
            values = [np.nan if r is None else r[key] for r in mine]
            ax.barh(y + offset, values, 0.34, label=family,
                    xerr=[0 if r is None else r["stderr"] for r in mine] if key == "count_acc" else None)
        ax.set_title(title, fontsize=9)
        ax.grid(axis="x", alpha=0.3)
    guide = [r["amortised_acc"] for r in rows]
    axes[0].set_xlim(min(guide) - 0.005, 1.0)
    for family, style in (("own", ":"), ("pyro", "--")):
        axes[0].axvline(next(r["amortised_acc"] for r in rows if r["family"] == family), color="k", ls=style, lw=0.8,
                        label=f"guide alone, {family}")
    axes[0].set_yticks(y)
    axes[0].set_yticklabels(labels, fontsize=8)
    axes[0].invert_yaxis()
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    fig.legend(*axes[0].get_legend_handles_labels(), loc="lower center", ncol=4, fontsize=7, frameon=False)
    fig.savefig(path, dpi=100)


if __name__ == "__main__":
    sys.exit(run(main))
