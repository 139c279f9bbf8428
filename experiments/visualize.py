"""Draw a trained run's figures into RUN/figures/: python -m experiments.visualize RUN (or --pretrained NAME)

Six PNGs: training curves, attention boxes, reconstructions, decoded windows, count confusion matrices and
example training scenes. The model is the run's best-validation parameters, shown on its validation scenes.
With --pretrained NAME it is a model shipped with air, shown on its held-out test scenes (no training curves:
the file holds no history), and the figures go to --out (default runs/pretrained-NAME/figures).
"""
import sys
import time
from pathlib import Path

from air.checkpoint import CheckpointError, checkpoint_path, load_checkpoint
from air.viz import save_figures, write_figures
from experiments.cli import Parser, UsageError, load_data, load_model, run


def main(argv=None):
    parser = Parser(prog="python -m experiments.visualize", description=__doc__.splitlines()[0])
    parser.add_argument("run", nargs="?", help="run folder (or its checkpoint.npz); the figures go to RUN/figures/")
    parser.add_argument("--pretrained", default=None, metavar="NAME",
                        help="draw a model shipped with air instead of a run (seed, best or paper)")
    parser.add_argument("--out", default=None, help="with --pretrained: the figures' folder")
    parser.add_argument("--quiet", action="store_true", help="print nothing")
    args = parser.parse_args(argv)
    if args.pretrained is not None or args.run is None:
        return _pretrained(args)
    if args.out is not None:
        raise UsageError("--out: a run's figures always go to RUN/figures/; --out is for --pretrained")

    try:
        folder = checkpoint_path(args.run).parent
        _, config = load_checkpoint(folder)
    except CheckpointError as e:
        raise UsageError(f"RUN: {e}") from None
    datasets = load_data(config, quiet=args.quiet)
    start = time.perf_counter()
    written = write_figures(folder, datasets=datasets)
    if not args.quiet:
        for path in written:
            print(path, flush=True)
        print(f"{len(written)} figures in {Path(folder) / 'figures'} ({time.perf_counter() - start:.1f} s)", flush=True)
    return 0


def _pretrained(args):
    params, config = load_model(args)
    folder = Path(args.out or f"runs/pretrained-{args.pretrained}/figures")
    datasets = load_data(config, quiet=args.quiet)
    start = time.perf_counter()
    written = save_figures(folder, params, config, datasets, split="test")
    if not args.quiet:
        for path in written:
            print(path, flush=True)
        print(f"{len(written)} figures of the shipped {args.pretrained!r} model on its test scenes in {folder} "
              f"({time.perf_counter() - start:.1f} s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(run(main))
