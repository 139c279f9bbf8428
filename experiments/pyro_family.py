"""Check Pyro's scene family against Pyro's own generator: python -m experiments.pyro_family --pyro-file PATH

Draws --n scenes with air.data.pyro and --n with the functions of Pyro's `pyro/contrib/examples/multi_mnist.py`
(the file at PATH, e.g. from a clone of pyro-ppl/pyro, run unmodified; Pyro itself need not be installed, the
file's one import of Pyro is stood in for, and Pillow comes with matplotlib), both from the MNIST test digits,
and compares what both produce: the digits' frame sides, the distance between the ink centres of a two-digit
scene's digits, how many pixels their ink shares, each digit's ink box, the scene's total ink, and the mean
scene. Each distribution is compared by the two-sample Kolmogorov-Smirnov statistic and its asymptotic p-value.
Writes pyro_family.json and pyro_family.png into --out.
"""
import importlib.util
import json
import sys
import types
from pathlib import Path

import numpy as np

from air.data import digit_pools, load_mnist
from air.data.pyro import pyro_layers
from air.runtime import environment
from experiments.cli import Parser, UsageError, run


def load_pyro_generator(path):
    """Pyro's multi_mnist.py as a module, its `from pyro.contrib.examples.util import get_data_loader` given a
    stand-in when Pyro is not installed (the scene functions never call it)."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"--pyro-file: no file {path} (pyro/contrib/examples/multi_mnist.py of a Pyro clone)")
    stand_ins = {}
    try:
        import pyro.contrib.examples.util  # noqa: F401
    except ImportError:
        for name in ("pyro", "pyro.contrib", "pyro.contrib.examples", "pyro.contrib.examples.util"):
            stand_ins[name] = sys.modules.get(name)
            sys.modules[name] = types.ModuleType(name)
        sys.modules["pyro.contrib.examples.util"].get_data_loader = None
    try:
        spec = importlib.util.spec_from_file_location("pyro_multi_mnist", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        for name, old in stand_ins.items():
            if old is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = old
    if not all(hasattr(module, f) for f in ("sample_multi", "sample_one", "imresize")):
        raise UsageError(f"--pyro-file: {path} has no sample_multi, sample_one and imresize: not Pyro's generator")
    return module


def pyro_draws(module, digits, counts, canvas_size, seed):
    """Pyro's scenes of these counts, one digit layer each: (layers (n, K, C, C) uint8, frame sides (m,)).
    Pyro's functions are wrapped, not changed: sample_one's output and imresize's size are recorded, and
    the layers of a scene's accepted draw (its last num_digits digits) are kept."""
    np.random.seed(seed)
    recorded, sizes = [], []
    one, resize = module.sample_one, module.imresize

    def record_one(canvas, mnist):
        positioned, label = one(canvas, mnist)
        recorded.append(positioned)
        return positioned, label

    def record_resize(arr, size):
        sizes.append(size[0])
        return resize(arr, size)

    module.sample_one, module.imresize = record_one, record_resize
    mnist = {"digits": digits.images, "labels": digits.labels}
    k = int(max(counts))
    layers = np.zeros((len(counts), k, canvas_size, canvas_size), np.uint8)
    kept = []
    try:
        for i, n in enumerate(counts):
            recorded.clear()
            start = len(sizes)
            canvas, _ = module.sample_multi(int(n), canvas_size, mnist)
            if n:
                layers[i, :n] = np.stack(recorded[-n:])
                kept.extend(sizes[len(sizes) - n:])
            assert np.array_equal(layers[i].sum(axis=0, dtype=np.int64), canvas), "recorded layers != Pyro's scene"
            del sizes[start:]
    finally:
        module.sample_one, module.imresize = one, resize
    return layers, np.array(kept)


def statistics(layers, counts, frames):
    """The distributions compared, each a 1-d array: frame side, ink box side, ink centre distance and shared ink
    pixels of two-digit scenes, total ink per scene."""
    present = layers[counts > 0].reshape(-1, *layers.shape[2:])
    present = present[present.reshape(len(present), -1).max(axis=1) > 0]
    ink = present > 0
    rows, cols = ink.any(axis=2), ink.any(axis=1)
    extent = lambda m: m.shape[1] - np.argmax(m[:, ::-1], axis=1) - np.argmax(m, axis=1)
    pairs = layers[counts == 2][:, :2].astype(np.float64)
    grid = np.arange(layers.shape[-1])
    weight = pairs.sum(axis=(2, 3))
    cy = (pairs.sum(axis=3) * grid).sum(axis=2) / weight
    cx = (pairs.sum(axis=2) * grid).sum(axis=2) / weight
    return {"frame side (px)": np.asarray(frames, np.float64),
            "ink box side (px)": np.maximum(extent(rows), extent(cols)).astype(np.float64),
            "ink centre distance, two digits (px)": np.hypot(cy[:, 0] - cy[:, 1], cx[:, 0] - cx[:, 1]),
            "pixels both digits ink, two digits": ((pairs[:, 0] > 0) & (pairs[:, 1] > 0)).sum(axis=(1, 2)) * 1.0,
            "total ink per scene (grey levels / 255)": layers.sum(axis=(1, 2, 3), dtype=np.int64) / 255.0}


def ks_test(a, b):
    """(D, p): the two-sample Kolmogorov-Smirnov statistic and its asymptotic p-value (Kolmogorov's series)."""
    grid = np.union1d(a, b)
    d = float(np.max(np.abs(np.searchsorted(np.sort(a), grid, "right") / len(a)
                            - np.searchsorted(np.sort(b), grid, "right") / len(b))))
    m = len(a) * len(b) / (len(a) + len(b))
    lam = (np.sqrt(m) + 0.12 + 0.11 / np.sqrt(m)) * d
    j = np.arange(1, 101)
    p = float(np.clip(2 * np.sum((-1) ** (j - 1) * np.exp(-2 * (j * lam) ** 2)), 0.0, 1.0)) if d > 0 else 1.0
    return d, p


def main(argv=None):
    parser = Parser(prog="python -m experiments.pyro_family", description=__doc__.splitlines()[0])
    parser.add_argument("--pyro-file", required=True, metavar="PATH",
                        help="Pyro's pyro/contrib/examples/multi_mnist.py")
    parser.add_argument("--n", type=int, default=10_000, help="scenes from each generator (default 10,000)")
    parser.add_argument("--canvas-size", type=int, default=50, help="canvas side in px (default 50, Pyro's)")
    parser.add_argument("--seed", type=int, default=0, help="seeds both generators (default 0)")
    parser.add_argument("--out", default="runs/pyro_family", help="folder for pyro_family.json and .png")
    args = parser.parse_args(argv)
    if args.n < 10:
        raise UsageError(f"--n: expected at least 10 scenes, got {args.n}")
    module = load_pyro_generator(args.pyro_file)
    digits = digit_pools(load_mnist())["test"]
    rng = np.random.default_rng(args.seed)
    # One draw of counts for both generators: the comparison is of what a count looks like.
    counts = rng.integers(0, 3, size=args.n)
    ours, _, boxes = pyro_layers(rng, digits, counts, args.canvas_size)
    frames = (boxes[..., 2] - boxes[..., 0])[~np.isnan(boxes[..., 0])]
    theirs, their_frames = pyro_draws(module, digits, counts, args.canvas_size, args.seed)
    mine, pyro = statistics(ours, counts, frames), statistics(theirs, counts, their_frames)
    rows = {}
    for name in mine:
        d, p = ks_test(mine[name], pyro[name])
        rows[name] = {"ours_mean": float(mine[name].mean()), "pyro_mean": float(pyro[name].mean()),
                      "ours_sd": float(mine[name].std(ddof=1)), "pyro_sd": float(pyro[name].std(ddof=1)),
                      "n_ours": len(mine[name]), "n_pyro": len(pyro[name]), "ks_d": d, "ks_p": p}
        print(f"{name:42s} ours {rows[name]['ours_mean']:8.3f} +- {rows[name]['ours_sd']:6.3f}   Pyro "
              f"{rows[name]['pyro_mean']:8.3f} +- {rows[name]['pyro_sd']:6.3f}   KS D {d:.4f}  p {p:.3f}", flush=True)
    mean_gap = float(np.abs(ours.sum(axis=1).mean(axis=0) - theirs.sum(axis=1).mean(axis=0)).max() / 255.0)
    print(f"mean scene: largest pixel difference {mean_gap:.4f} (grey levels / 255)")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    result = {"command": "python -m experiments.pyro_family " + " ".join(argv if argv is not None else sys.argv[1:]),
              "n": args.n, "canvas_size": args.canvas_size, "seed": args.seed, "digits": "MNIST test",
              "statistics": rows, "mean_scene_max_abs_difference": mean_gap, "environment": environment()}
    (out / "pyro_family.json").write_text(json.dumps(result, indent=2) + "\n")
    _figure(mine, pyro, out / "pyro_family.png")
    print(f"wrote {out / 'pyro_family.json'} and pyro_family.png")
    return 0


def _figure(mine, pyro, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, len(mine), figsize=(4 * len(mine), 3.2))
    for ax, name in zip(axes, mine):
        both = np.concatenate([mine[name], pyro[name]])
        bins = np.histogram_bin_edges(both, bins=min(40, len(np.unique(both))))
        ax.hist(pyro[name], bins=bins, histtype="stepfilled", alpha=0.35, label="Pyro's multi_mnist.py")
        ax.hist(mine[name], bins=bins, histtype="step", lw=1.5, label="air.data.pyro")
        ax.set_title(name, fontsize=9)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(run(main))
