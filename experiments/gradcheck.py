"""Check autograd's gradient of air.loss against central finite differences, per parameter group.

python -m experiments.gradcheck --preset NAME

In float64, at a freshly initialised point with the noise fixed, on a few scenes: per parameter group,
random unit directions and single coordinates. Prints a table (group, checks, max relative error,
pass/fail; how many checks needed a smaller step to clear a kink of the sampler, and how many passed
only because their whole disagreement is within the difference's measured rounding error), draws the
relative error against the step size (the V-shaped curve), and exits with status 1
if any group fails. Every Config field is also a flag, e.g. --inference residual --pres-estimator reinforce.
"""
import sys
from pathlib import Path

import numpy as np

from air.data import config_scenes, digit_pools, load_mnist
from air.gradcheck import check_gradients, group_slices, problem, step_size_curve
from air.viz import figure
from experiments.cli import Parser, UsageError, add_config_flags, config_from_args, preset_help, run

STEPS = np.logspace(-1, -11, 21)  # step sizes of the curve


def parse_args(argv):
    """The command line, checked: steps and tolerance positive, at least one scene, no negative counts."""
    parser = Parser(prog="python -m experiments.gradcheck", description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="seed", help=preset_help("named configuration to check", "seed"))
    parser.add_argument("--params", default=None,
                        help="comma-separated parameter groups to check, e.g. encoder,decoder (default: all)")
    parser.add_argument("--eps", type=float, default=1e-5,
                        help="finite-difference step (default: 1e-5, near the bottom of the V for every preset)")
    parser.add_argument("--tol", type=float, default=1e-5, help="largest relative error that passes (default: 1e-5)")
    parser.add_argument("--batch", type=int, default=4, help="scenes the loss is evaluated on (default: 4)")
    parser.add_argument("--directions", type=int, default=2, help="random directions per group (default: 2)")
    parser.add_argument("--coordinates", type=int, default=3, help="single coordinates per group (default: 3)")
    parser.add_argument("--check-seed", type=int, default=0, help="seeds the point, noise, scenes and directions")
    parser.add_argument("--plot", default=None,
                        help="where to draw the error against the step size (default: runs/gradcheck-PRESET.png)")
    parser.add_argument("--no-plot", action="store_true", help="skip the step-size curve")
    add_config_flags(parser)
    args = parser.parse_args(argv)
    for name in ("eps", "tol"):
        if not getattr(args, name) > 0:
            raise UsageError(f"--{name}: must be positive, got {getattr(args, name)}")
    for name in ("batch", "directions", "coordinates"):
        if getattr(args, name) < (1 if name == "batch" else 0):
            raise UsageError(f"--{name}: must be {'positive' if name == 'batch' else 'zero or more'}, "
                             f"got {getattr(args, name)}")
    return args


def main(argv=None):
    args = parse_args(argv)
    config, _ = config_from_args(args)
    rng = np.random.default_rng(args.check_seed)
    pool = digit_pools(load_mnist())["train"]
    images = config_scenes(config, rng, pool, args.batch, dtype=np.float64).images
    f, g, theta, layout = problem(config, images, seed=args.check_seed)
    groups = None if args.params is None else [g.strip() for g in args.params.split(",") if g.strip()]
    try:
        checks = check_gradients(f, g, theta, layout, groups, args.eps, args.directions, args.coordinates,
                                 seed=args.check_seed, tol=args.tol)
    except ValueError as e:
        raise UsageError(f"--params: {e}") from None
    print(f"preset {args.preset}: {len(theta):,} parameters in float64, batch {args.batch}, eps {args.eps:g}, "
          f"tolerance {args.tol:g}", flush=True)
    failed = print_table(checks, args.eps, args.tol)
    if not args.no_plot:
        path = Path(args.plot or f"runs/gradcheck-{args.preset}.png")
        curves = step_size_curve(f, g, theta, layout, STEPS, groups or list(group_slices(layout)), seed=args.check_seed)
        _plot(path, curves, args)
        print(f"step-size curve: {path}", flush=True)
    print("all groups pass" if not failed else f"FAILED: {', '.join(failed)}", flush=True)
    return 1 if failed else 0


def print_table(checks, eps, tol):
    """Print a row a parameter group (its checks, largest relative error, how many needed a smaller step, how many
    passed only within rounding, pass or FAIL), then every failing check; returns the groups that failed."""
    print(f"{'group':<16} {'checks':>6} {'max rel error':>14} {'retried':>8} {'rounding':>9}  result", flush=True)
    failed = []
    for group in dict.fromkeys(c.group for c in checks):
        mine = [c for c in checks if c.group == group]
        retried = sum(c.step != eps for c in mine)
        rounding = sum(c.within_rounding and c.rel_error > tol for c in mine)
        ok = all(c.passes(tol) for c in mine)
        failed += [] if ok else [group]
        print(f"{group:<16} {len(mine):>6} {max(c.rel_error for c in mine):>14.2e} {retried:>8} {rounding:>9}  "
              f"{'pass' if ok else 'FAIL'}", flush=True)
    for c in checks:
        if not c.passes(tol):
            print(f"  {c.group} {c.kind} {c.where}: autograd {c.analytic:.10g}, finite difference {c.numeric:.10g} "
                  f"(best of steps {eps:g}, {eps / 10:g}, {eps / 100:g})", flush=True)
    return failed


def _plot(path, curves, args):
    fig = figure(6, 4)  # no pyplot, so no backend is switched
    ax = fig.subplots()
    for group, errors in curves.items():
        ax.loglog(STEPS, np.maximum(errors, 1e-17), marker="o", markersize=3, label=group)
    ax.axvline(args.eps, color="grey", linestyle=":", label=f"--eps {args.eps:g}")
    ax.axhline(args.tol, color="red", linestyle="--", linewidth=0.8, label=f"--tol {args.tol:g}")
    ax.set_xlabel("finite-difference step eps")
    ax.set_ylabel("relative error vs autograd")
    ax.set_title(f"{args.preset}: central differences along a random direction per group", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    sys.exit(run(main))
