"""Train AIR and write a run folder: python -m experiments.train --preset seed --out runs/seed

Every Config field is a flag (python -m experiments.train --help lists them); --preset picks the defaults.
"""
import contextlib
import json
import signal
import sys
from pathlib import Path

from tqdm import tqdm

from air import viz
from air.checkpoint import CheckpointError, read_checkpoint
from air.config import Config, ConfigError
from air.runtime import tune_allocator
from air.train import NonFiniteError, train
from experiments.cli import (Parser, UsageError, add_config_flags, add_run_flags, check_run_folder, claim_run_folder,
                             config_from_args, load_data, plural, run, unstarted_run)


def parse_args(argv):
    parser = Parser(prog="python -m experiments.train", description=__doc__.splitlines()[0])
    run_flags = add_run_flags(parser, "runs/<preset>-seed<seed>")
    run_flags.add_argument("--resume", action="store_true", help="continue the interrupted run in --out")
    add_config_flags(parser)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    config, given = config_from_args(args)
    out = Path(args.out or f"runs/{args.preset}-seed{config.seed}")
    existing = out / "checkpoint.npz"
    resume = args.resume
    if resume and not existing.exists():
        if not unstarted_run(out):
            raise UsageError(f"--resume: {out} holds no run to resume (no {existing})")
        # Stopped before its first epoch ended: nothing to continue from, so the same run starts again.
        config = _same_config(_started_config(out), given)
        resume = False
        if not args.quiet:
            print(f"{out}: the run there finished no epoch; starting it from the beginning", flush=True)
    elif resume:
        saved = _checkpoint(existing)
        config = _same_config(saved["config"], given)
        if saved["complete"]:
            return _already_finished(out, saved)
    else:
        check_run_folder(out, args.overwrite, resumable=True)
        if unstarted_run(out) and not args.quiet:
            print(f"{out}: the run there finished no epoch; starting over", flush=True)

    tune_allocator()
    datasets = load_data(config, quiet=args.quiet)
    if not resume:
        claim_run_folder(out, args.overwrite or args.resume, resumable=True)
    show_progress = not args.quiet and sys.stderr.isatty()
    on_epoch = None if args.quiet else lambda record: _print_epoch(record, show_progress)
    try:
        with stop_between_steps() as on_step:
            metrics = train(config, datasets, out_dir=out, resume=resume, progress=show_progress, on_epoch=on_epoch,
                            on_step=on_step)
    except NonFiniteError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        if existing.exists():
            print(f"\ninterrupted; the checkpoint of the last finished epoch is {existing} "
                  f"(continue with --resume --out {out})", file=sys.stderr)
        else:
            print(f"\ninterrupted before the first epoch finished, so no checkpoint was written; the same command "
                  f"(or --resume --out {out}) starts the run again", file=sys.stderr)
        return 130
    _print_summary(metrics, out)
    if not args.no_figures:
        paths = viz.write_figures(out, datasets=datasets)
        if not args.quiet:
            print(f"figures: {', '.join(str(p) for p in paths)}", flush=True)
    return 0


@contextlib.contextmanager
def stop_between_steps():
    """Ctrl-C (SIGINT) stops training at the end of the step it arrives in: the handler only notes it, and the
    on_step callback this yields raises KeyboardInterrupt in ordinary code. Python would otherwise raise it at
    whatever bytecode runs next, and where that is a finalizer (autograd frees many objects a step) the exception
    is printed and ignored, and the run goes on. A second Ctrl-C stops at once."""
    requested = []

    def note(signum, frame):
        if requested:
            raise KeyboardInterrupt
        requested.append(signum)

    def on_step(step, params_fn):
        if requested:
            raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, note)
    try:
        yield on_step
    finally:
        signal.signal(signal.SIGINT, previous)


def _checkpoint(checkpoint):
    try:
        return read_checkpoint(checkpoint)
    except CheckpointError as e:
        raise UsageError(f"--resume: {e}; nothing was changed") from None


def _already_finished(out, saved):
    """--resume on a run that finished every epoch: say so, print its stored results, train nothing."""
    print(f"{out}: the run finished all its {saved['epoch'] + 1} epochs; nothing to resume", flush=True)
    try:
        metrics = json.loads((out / "metrics.json").read_text())
    except (OSError, ValueError):
        metrics = None
    if metrics and metrics.get("status") == "complete":
        _print_summary(metrics, out)
    return 0


def _started_config(out):
    """The config.json of a run that finished no epoch."""
    path = out / "config.json"
    try:
        return Config.from_dict(json.loads(path.read_text()))
    except (OSError, ValueError, TypeError, ConfigError) as e:
        raise UsageError(f"--resume: {path} is not a readable run config ({e}); nothing was changed") from None


def _same_config(saved, given):
    """The interrupted run's own config; a flag that would change it is an error, not a silent override."""
    for name, value in given.items():
        if getattr(saved, name) != value:
            raise UsageError(f"--{name.replace('_', '-')}: the run being resumed has {getattr(saved, name)!r}, "
                             f"not {value!r}")
    return saved


def _print_epoch(record, above_a_bar):
    line = (f"epoch {record['epoch']:2d}  loss {record['loss']:8.2f}  recon {record['recon']:7.2f}  "
            f"kl_what {record['kl_what']:6.2f}  kl_pres {record['kl_pres']:5.3f}  "
            f"val count acc {record['val_count_acc']:.3f}  val mse {record['val_recon_mse']:.4f}")
    if above_a_bar:  # the progress bar on stderr is cleared and redrawn below the line
        tqdm.write(line, file=sys.stdout)
        sys.stdout.flush()
    else:
        print(line, flush=True)


def _print_summary(metrics, out):
    per_class = " / ".join(f"{a:.2f}" for a in metrics["per_class_acc"])
    print(f"best val count acc {metrics['best_val_count_acc']:.3f} (epoch {metrics['best_epoch']}), "
          f"last epoch {metrics['last_val_count_acc']:.3f}", flush=True)
    print(f"test count acc {metrics['test_count_acc']:.3f} (per count {per_class}), "
          f"recon mse {metrics['test_recon_mse']:.4f}, box IoU {metrics['test_box_iou']:.3f}", flush=True)
    print(f"{plural(metrics['n_steps'], 'step')} in {metrics['wall_s']:.1f} s; run folder {out}", flush=True)


if __name__ == "__main__":
    sys.exit(run(main))
