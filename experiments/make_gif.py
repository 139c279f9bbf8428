"""Train AIR with snapshots and animate them: python -m experiments.make_gif --out runs/gif

Writes the run folder that experiments.train writes (model, metrics, figures) and RUN/training.gif: six fixed
validation scenes (two of each count) with every step's attention box, and their reconstructions, as training
goes on. Every Config field is a flag, as for experiments.train.
"""
import sys
from pathlib import Path

from air import viz
from air.runtime import tune_allocator
from air.schedules import steps_per_epoch
from air.train import NonFiniteError, snapshot_recorder, train
from experiments.cli import (Parser, UsageError, add_config_flags, add_run_flags, check_run_folder, claim_run_folder,
                             config_from_args, load_data, plural, run)

FRAMES = 24  # the default --snapshot-every gives about this many frames, whatever the run's length
SCENES_PER_COUNT = 2


def parse_args(argv):
    parser = Parser(prog="python -m experiments.make_gif", description=__doc__.splitlines()[0])
    add_run_flags(parser, "runs/<preset>-seed<seed>-gif")
    parser.add_argument("--snapshot-every", type=int, default=None, metavar="STEPS",
                        help=f"optimisation steps between frames (default: about {FRAMES} frames in all)")
    parser.add_argument("--fps", type=int, default=6, help="frames per second of the GIF (default: 6)")
    add_config_flags(parser)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    config, _ = config_from_args(args)
    if args.snapshot_every is not None and args.snapshot_every < 1:
        raise UsageError(f"--snapshot-every: must be positive, got {args.snapshot_every}")
    if args.fps < 1:
        raise UsageError(f"--fps: must be positive, got {args.fps}")
    out = Path(args.out or f"runs/{args.preset}-seed{config.seed}-gif")
    check_run_folder(out, args.overwrite)

    tune_allocator()
    datasets = load_data(config, quiet=args.quiet)
    claim_run_folder(out, args.overwrite)
    total_steps = config.n_epochs * steps_per_epoch(config)
    every = args.snapshot_every or max(1, round(total_steps / FRAMES))
    scenes = viz.pick_scenes(datasets.val.counts, SCENES_PER_COUNT)
    images, counts = datasets.val.images[scenes], datasets.val.counts[scenes]
    on_step, snapshots = snapshot_recorder(config, images, every, total_steps)
    try:
        metrics = train(config, datasets, out_dir=out, progress=not args.quiet and sys.stderr.isatty(),
                        on_step=on_step)
    except NonFiniteError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"\ninterrupted; no GIF written (the checkpoint of the last finished epoch is in {out})",
              file=sys.stderr)
        return 130
    gif = out / viz.GIF_NAME
    viz.write_training_gif(gif, snapshots, images, counts, config, fps=args.fps)
    if not args.no_figures:
        viz.write_figures(out, datasets=datasets)
    # --quiet drops the progress bar, not the summary (as for experiments.train)
    print(f"best val count acc {metrics['best_val_count_acc']:.3f} (epoch {metrics['best_epoch']}), "
          f"test count acc {metrics['test_count_acc']:.3f}; run folder {out}", flush=True)
    print(f"{gif}: {plural(len(snapshots), 'frame')}, one every {plural(every, 'step') if every > 1 else 'step'}, "
          f"{args.fps} fps", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(run(main))
