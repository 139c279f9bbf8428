"""Draw a trained run's figures into RUN/figures/: python -m experiments.visualize RUN

Six PNGs: training curves, attention boxes, reconstructions, decoded windows, count confusion matrices and
example training scenes. The model is the run's best-validation parameters, shown on its validation scenes.
"""
import sys
import time
from pathlib import Path

from experiments.cli import Parser, UsageError, load_data, run


def main(argv=None):
    parser = Parser(prog="python -m experiments.visualize", description=__doc__.splitlines()[0])
    parser.add_argument("run", help="run folder (or its checkpoint.npz); the figures go to RUN/figures/")
    parser.add_argument("--quiet", action="store_true", help="print nothing")
    args = parser.parse_args(argv)

    from air.checkpoint import CheckpointError, checkpoint_path, load_checkpoint
    try:
        folder = checkpoint_path(args.run).parent
        _, config = load_checkpoint(folder)
    except CheckpointError as e:
        raise UsageError(f"RUN: {e}") from None
    datasets = load_data(config, quiet=args.quiet)
    start = time.perf_counter()
    from air.viz import write_figures
    written = write_figures(folder, datasets=datasets)
    if not args.quiet:
        for path in written:
            print(path, flush=True)
        print(f"{len(written)} figures in {Path(folder) / 'figures'} ({time.perf_counter() - start:.1f} s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(run(main))
