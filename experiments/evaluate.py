"""Score a trained run on held-out test scenes: python -m experiments.evaluate RUN

Prints count accuracy, per-count accuracy, the confusion matrix, reconstruction MSE and the IoU of the
attention windows with the ground-truth digit boxes; --json prints the same as JSON.
"""
import json
import sys

from experiments.cli import Parser, UsageError, load_data, run


def main(argv=None):
    parser = Parser(prog="python -m experiments.evaluate", description=__doc__.splitlines()[0])
    parser.add_argument("run", help="run folder (or its checkpoint.npz)")
    parser.add_argument("--split", choices=["test", "val"], default="test", help="scenes to score (default: test)")
    parser.add_argument("--json", action="store_true", help="print the scores as JSON")
    parser.add_argument("--quiet", action="store_true", help="do not print the data source")
    args = parser.parse_args(argv)

    from air.checkpoint import CheckpointError, load_checkpoint
    from air.metrics import evaluate
    try:
        params, config = load_checkpoint(args.run)
    except CheckpointError as e:
        raise UsageError(f"RUN: {e}") from None
    datasets = load_data(config, quiet=args.quiet or args.json)
    scenes = getattr(datasets, args.split)
    scores = evaluate(params, config, scenes)
    if args.json:
        print(json.dumps(scores, indent=2))
        return 0
    print(f"{args.split} scenes: {len(scenes)}")
    print(f"count accuracy   {scores['count_acc']:.4f}")
    print("per-count acc    " + "  ".join(f"{i}: {a:.3f}" for i, a in enumerate(scores["per_class_acc"])))
    print(f"recon MSE        {scores['recon_mse']:.5f}")
    print(f"box IoU          {scores['box_iou']:.3f}   (digits of correctly counted scenes)")
    print("confusion (rows: true count, columns: inferred count)")
    for i, row in enumerate(scores["confusion"]):
        print(f"  {i}: " + " ".join(f"{v:5d}" for v in row))
    return 0


if __name__ == "__main__":
    sys.exit(run(main))
