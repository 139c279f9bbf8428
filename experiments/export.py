"""Ship a finished run as a trained model: python -m experiments.export RUN --name NAME

Writes air/models/NAME.npz (the run's scored parameters in float32, its config and a model card) and NAME.md,
the card for reading. The card holds the command that trained the run, its seed, the commit it was exported
at, the data, the wall time, and test scores measured here, on --n-test scenes of the run's own family and of
Pyro's generator (air.data.pyro), so that the shipped model's test can check them: count accuracy, and for a
model whose objective is an ELBO the count by search and the test ELBO and log-likelihood bound. `--rescore
--name NAME` re-measures a shipped model's scores in place, its parameters and provenance unchanged.
"""
import dataclasses
import json
import subprocess
import sys
from pathlib import Path

from air import shipped
from air.checkpoint import CheckpointError, checkpoint_path, load_checkpoint
from air.config import PRESETS
from air.marginal import NotALikelihood, check_likelihood, evidence_summary
from air.metrics import family_scores, search_scores
from air.search import Search
from air.tree import leaves, nest
from experiments.cli import Parser, UsageError, flag_text, load_data, run

def train_command(config):
    """The experiments.train command line that trains `config`: its preset (the first whose fields it matches
    most) and a flag for every field that differs from it."""
    fields = [f.name for f in dataclasses.fields(config) if f.name != "seed"]
    name = min(PRESETS, key=lambda p: sum(getattr(PRESETS[p], f) != getattr(config, f) for f in fields))
    flags = [f"--{f.replace('_', '-')} {flag_text(getattr(config, f))}" for f in fields
             if getattr(config, f) != getattr(PRESETS[name], f)]
    return " ".join(["python -m experiments.train --preset", name, "--seed", str(config.seed), *flags])


def commit():
    """The repository's commit (with '+changes' if the tree is dirty), or 'unknown' outside a git checkout."""
    root = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head.stdout.strip() + ("+changes" if dirty.stdout.strip() else "")


FAMILIES = (("own", {}), ("pyro", {"scene_family": "pyro"}))  # the card's test families: the run's, Pyro's generator's
PYRO_CANVAS = 50  # Pyro's generator draws 50x50 scenes: a card scores its family only for models of that canvas
EVIDENCE_SCENES = 1000  # the card's evidence: the k = 100 bound on this many own-family test scenes


def test_scores(params, config, n_test):
    """The card's "test" entry: per family (FAMILIES; Pyro's only on its 50-px canvas) count accuracy and its
    standard error, the two-digit scenes
    merged, the box IoU and, for a model whose objective is an ELBO, the count by search (air.search, default
    Search); and "evidence", the test ELBO and k = 100 bound on log p(x) (air.marginal.evidence_summary)."""
    try:
        check_likelihood(config)
        elbo_model = True
    except NotALikelihood:
        elbo_model = False
    scores = {}
    for family, changes in FAMILIES:
        if family == "pyro" and config.canvas_size != PYRO_CANVAS:
            continue
        family_config = dataclasses.replace(config, n_test=n_test, **changes)
        scenes = load_data(family_config, quiet=True).test
        s = family_scores(params, family_config, scenes)
        scores[family] = {k: s[k] for k in ("digit_size", "n_test", "count_acc", "stderr", "merged_two", "box_iou")}
        if not elbo_model:
            continue
        found, _ = search_scores(params, family_config, scenes, Search())
        scores[family].update(searched_acc=found["count_acc"], searched_stderr=found["stderr"])
        if family == "own":
            scores["evidence"] = evidence_summary(params, config, scenes.images[:EVIDENCE_SCENES], k=100)
    return scores


def model_card(name, folder, params, config, n_test, trained=None):
    """The card of `params` under `config` (as shipped); `trained` is the config the run trained with."""
    metrics = json.loads((folder / "metrics.json").read_text())
    if metrics.get("status") != "complete":
        raise UsageError(f"RUN: {folder} is not a finished run (status {metrics.get('status')!r})")
    return {"name": name, "command": train_command(trained or config), "seed": config.seed, "commit": commit(),
            "canvas_size": config.canvas_size, "max_digits": config.max_digits, "overlap": config.overlap,
            "data": metrics.get("data_source", ""), "wall_minutes": round(metrics["wall_s"] / 60, 1),
            "steps": metrics.get("n_steps"), "run_test_count_acc": metrics["test_count_acc"],
            "test": test_scores(params, config, n_test), "environment": metrics.get("environment", {})}


def card_markdown(card):
    def sides(digit_size):  # digit sides are given on 32 px; the card states them on the model's canvas
        if digit_size == "pyro":
            return "Pyro's generator: int(28 / s) px, s ~ N(1.3, 0.1^2)"
        canvas = card["canvas_size"]
        return "-".join(f"{float(v) * canvas / 32:.0f}" for v in digit_size.split("-")) + f" px on {canvas}"
    searched = lambda s: f"{s['searched_acc']:.4f} +- {s['searched_stderr']:.4f}" if "searched_acc" in s else "-"
    families = {k: v for k, v in card["test"].items() if k != "evidence"}
    rows = [f"| {family} | {sides(s['digit_size'])} | {s['n_test']} | {s['count_acc']:.4f} +- {s['stderr']:.4f} | "
            f"{searched(s)} | {s['merged_two']:.3f} | {s['box_iou']:.3f} |" for family, s in families.items()]
    evidence = card["test"].get("evidence", {})
    likelihood = (f"Test ELBO {evidence['elbo']:.1f} +- {evidence['elbo_stderr']:.1f} and log p(x) >= "
                  f"{evidence['log_px']:.1f} +- {evidence['log_px_stderr']:.1f} nats per scene (k = "
                  f"{evidence['evidence_k']} importance samples, {evidence['evidence_scenes']} own scenes)."
                  if "log_px" in evidence else "No log-likelihood: the objective is not an ELBO.")
    rescored = [f"- test scores re-measured at commit {card['rescored_at']}"] if "rescored_at" in card else []
    pyro_scenes = " and the scenes of Pyro's multi-MNIST generator (air.data.pyro)" if "pyro" in families else ""
    return "\n".join([
        f"# Model card: `{card['name']}`", "",
        f"Load it with `params, config = air.pretrained({card['name']!r})`.", "",
        f"- trained by: `{card['command']}`",
        f"- seed {card['seed']}, {card['steps']:,} steps, {card['wall_minutes']} minutes of training",
        f"- data: {card['data']}",
        f"- exported at commit {card['commit']}", *rescored, "",
        f"Test scenes are {card['canvas_size']}x{card['canvas_size']} with 0-{card['max_digits']} digits, drawn from "
        f"MNIST test digits the model never saw: the model's own family (ink overlap {card['overlap']})"
        f"{pyro_scenes}. Scored at export; \"searched\" is "
        f"`air.infer(..., search=True)`:", "",
        "| scenes | digit sides | scenes scored | count accuracy | searched | two-digit scenes merged | box IoU |",
        "| --- | --- | --- | --- | --- | --- | --- |", *rows, "", likelihood, ""])


def rescore(name, n_test, out):
    """Re-measure a shipped model's test scores in its card (the parameters, command and provenance unchanged)."""
    try:
        params, config, card = shipped.load(name if out is None else str(out / f"{name}.npz"))
    except shipped.PretrainedError as e:
        raise UsageError(f"--rescore: {e}") from None
    card = {**card, "test": test_scores(params, config, n_test), "rescored_at": commit()}
    return params, config, card


def main(argv=None):
    parser = Parser(prog="python -m experiments.export", description=__doc__.splitlines()[0])
    parser.add_argument("run", nargs="?", help="a finished run folder")
    parser.add_argument("--name", required=True, help="the model's name, e.g. paper (air.pretrained('paper'))")
    parser.add_argument("--rescore", action="store_true",
                        help="no RUN: re-measure the shipped model NAME's test scores in its card, nothing else "
                             "changed")
    parser.add_argument("--n-test", type=int, default=5000, help="test scenes a family for the card (default 5000)")
    parser.add_argument("--out", default=None, help="folder for NAME.npz and NAME.md (default: air/models)")
    args = parser.parse_args(argv)
    if not args.name.isidentifier():
        raise UsageError(f"--name: a plain name such as paper, got {args.name!r}")
    if (args.run is None) != args.rescore:
        raise UsageError("give a RUN folder to export, or --rescore to re-measure a shipped model (one of them)")
    out = Path(args.out) if args.out else shipped.MODELS_DIR
    if args.rescore:
        params, config, card = rescore(args.name, args.n_test, Path(args.out) if args.out else None)
    else:
        try:
            folder = checkpoint_path(args.run).parent
            params, config = load_checkpoint(folder)
        except CheckpointError as e:
            raise UsageError(f"RUN: {e}") from None
        # Scored as shipped: float32 parameters under a float32 config.
        params = nest({k: v.astype("float32") for k, v in leaves(params)})
        trained, config = config, dataclasses.replace(config, dtype="float32")
        card = model_card(args.name, folder, params, config, args.n_test, trained)
    out.mkdir(parents=True, exist_ok=True)
    shipped.save(out / f"{args.name}.npz", params, config, card)
    (out / f"{args.name}.md").write_text(card_markdown(card))
    size = (out / f"{args.name}.npz").stat().st_size
    pyro = f", Pyro's scenes {card['test']['pyro']['count_acc']:.4f}" if "pyro" in card["test"] else ""
    print(f"{out / (args.name + '.npz')}: {size / 1e6:.1f} MB; own scenes {card['test']['own']['count_acc']:.4f}{pyro}",
          flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(run(main))
