"""Score a trained run on held-out test scenes: python -m experiments.evaluate RUN (or --pretrained NAME)

Prints count accuracy with its binomial standard error and the number of scenes, per-count accuracy, the
confusion matrix, reconstruction MSE and the IoU of the attention windows with the ground-truth digit boxes, and,
for a model whose objective is an ELBO, the test ELBO and the importance-weighted bound on log p(x) with
--evidence-k samples (air.evidence), in nats per scene with their standard errors; --json prints the same as
JSON. A run is scored on its own n_test scenes (1,000 for the presets), a shipped model on
as many as its card quotes (5,000); --n-test chooses another number.

The scenes are the run's own held-out family unless told otherwise: --digit-size, --overlap, --max-digits and
--n-test draw another family from the same held-out digits without retraining, e.g. Pyro's multi-MNIST scale
(digit frames of about 19-25 px on 50 px) with `--digit-size 12,16` for a 50-px run, or `--scene-family pyro`
for the scenes of Pyro's own generator, the peers' benchmark.

--search also counts by the model's own evidence where the guide may be wrong (air.search) and prints that
accuracy beside the guide's, with how many scenes it fixed and broke and what it cost; --search-figure draws the
scenes it changed.
"""
import dataclasses
import json
import sys
from pathlib import Path

from air.marginal import NotALikelihood, evidence_summary
from air.metrics import evaluate, search_scores
from air.model import infer
from air.shipped import card
from air.viz import search_figure
from experiments.cli import (Parser, UsageError, add_family_flags, add_search_flags, load_data, load_model, run,
                             scene_family, search_options)


def main(argv=None):
    parser = Parser(prog="python -m experiments.evaluate", description=__doc__.splitlines()[0])
    parser.add_argument("run", nargs="?", help="run folder (or its checkpoint.npz)")
    parser.add_argument("--pretrained", default=None, metavar="NAME",
                        help="score a model shipped with air instead of a run (seed, best or paper)")
    parser.add_argument("--split", choices=["test", "val"], default="test", help="scenes to score (default: test)")
    parser.add_argument("--json", action="store_true", help="print the scores as JSON")
    parser.add_argument("--quiet", action="store_true", help="do not print the data source")
    parser.add_argument("--evidence-k", type=int, default=100, metavar="K",
                        help="importance samples for the bound on log p(x) (default 100; 0 skips it)")
    add_family_flags(parser)
    add_search_flags(parser)
    parser.add_argument("--search-figure", default=None, metavar="PATH",
                        help="with --search, draw scenes whose count the search changed into this PNG")
    args = parser.parse_args(argv)
    options = search_options(args)
    if args.search_figure and not options:
        raise UsageError("--search-figure: needs --search")
    if args.evidence_k < 0:
        raise UsageError(f"--evidence-k: expected 0 or more samples, got {args.evidence_k}")

    params, config = load_model(args)
    if args.pretrained and args.n_test is None and args.split == "test" and _own_family(args):
        args.n_test = _card_scenes(args.pretrained)  # the card's own-family figure is scored on as many
    config = scene_family(config, args)
    if args.split == "val" and args.n_test is not None:  # --n-test counts the scenes of whichever split is scored
        config = dataclasses.replace(config, n_val=args.n_test)
    datasets = load_data(config, quiet=args.quiet or args.json)
    scenes = getattr(datasets, args.split)
    scores = evaluate(params, config, scenes)
    scores.update(n_scenes=len(scenes), count_acc_stderr=stderr(scores["count_acc"], len(scenes)))
    if args.evidence_k:
        scores.update(evidence_summary(params, config, scenes.images, args.evidence_k))
    if options:
        try:
            scores["search"], out = search_scores(params, config, scenes, options)
        except NotALikelihood as error:
            raise UsageError(f"--search: {error}") from None
        scores["search"]["options"] = dataclasses.asdict(options)
        if args.search_figure:
            amortised = infer(params, config, scenes.images)
            Path(args.search_figure).parent.mkdir(parents=True, exist_ok=True)
            search_figure(scenes.images, scenes.counts, amortised, out).savefig(args.search_figure, dpi=100)
    if args.json:
        print(json.dumps(scores, indent=2))
        return 0
    print(f"{'validation' if args.split == 'val' else 'test'} scenes: {len(scenes)} (--n-test N scores another "
          "number)")
    print(f"count accuracy   {scores['count_acc']:.4f} +- {scores['count_acc_stderr']:.4f}   (binomial standard "
          f"error over {len(scenes)} scenes)")
    print("per-count acc    " + "  ".join(f"{i}: {a:.3f}" for i, a in enumerate(scores["per_class_acc"])))
    print(f"recon MSE        {scores['recon_mse']:.5f}")
    print(f"box IoU          {scores['box_iou']:.3f}   (digits of correctly counted scenes)")
    print("confusion (rows: true count, columns: inferred count)")
    for i, row in enumerate(scores["confusion"]):
        print(f"  {i}: " + " ".join(f"{v:5d}" for v in row))
    if "no_evidence" in scores:
        print(f"log p(x)         none: {scores['no_evidence']}")
    elif "log_px" in scores:
        k = scores["evidence_k"]
        print(f"test ELBO        {scores['elbo']:.2f} +- {scores['elbo_stderr']:.2f} nats per scene")
        print(f"log p(x) >=      {scores['log_px']:.2f} +- {scores['log_px_stderr']:.2f} nats per scene "
              f"(importance-weighted, k = {k}; comparable only between models of one likelihood)")
    if options:
        found = scores["search"]
        print(f"searched count   {found['count_acc']:.4f} +- {found['stderr']:.4f}   "
              f"(guide alone {found['amortised_acc']:.4f}; "
              f"{found['fixed']} fixed, {found['broken']} broken; {100 * found['searched_share']:.1f}% of scenes "
              f"searched; {found['seconds']:.1f} s of process time, {found['ms_per_scene']:.2f} ms a scene)")
        if args.search_figure:
            print(f"figure: {args.search_figure}")
    return 0


def stderr(accuracy, n):
    """The binomial standard error of an accuracy measured on n scenes."""
    return float((accuracy * (1.0 - accuracy) / n) ** 0.5) if n else float("nan")


def _own_family(args):
    return args.digit_size is None and args.overlap is None and args.max_digits is None


def _card_scenes(name):
    """How many test scenes the shipped model's card scored its own family on."""
    return int(card(name)["test"]["own"]["n_test"])


if __name__ == "__main__":
    sys.exit(run(main))
