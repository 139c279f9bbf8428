"""Multi-MNIST scenes: disjoint digit pools for training, validation and test, and scenes of 0..K digits."""
import numbers
import types
from dataclasses import dataclass

import numpy as np

from air.config import scaled_digit_size
from air.data.digits import DIGIT_SIDE, Digits


@dataclass(frozen=True)
class Scenes:
    """images (n, H, W) in [0, 1]; counts (n,); boxes (n, K, 4) x0, y0, x1, y1 px or NaN; labels (n, K) or -1."""

    images: np.ndarray
    counts: np.ndarray
    boxes: np.ndarray
    labels: np.ndarray

    def __post_init__(self):
        n = len(self.counts)
        if self.images.ndim != 3 or len(self.images) != n:
            raise ValueError(f"images must be (n={n}, H, W), got {self.images.shape}")
        if self.boxes.ndim != 3 or self.boxes.shape[0] != n or self.boxes.shape[2] != 4:
            raise ValueError(f"boxes must be (n={n}, max_digits, 4), got {self.boxes.shape}")
        if self.labels.shape != self.boxes.shape[:2]:
            raise ValueError(f"labels must be {self.boxes.shape[:2]} like boxes, got {self.labels.shape}")

    def __len__(self):
        return len(self.counts)


# --- digit pools -----------------------------------------------------------------------------------------------


def digit_pools(mnist):
    """Disjoint digit pools {'train', 'val', 'test'} (each Digits), fixed whatever the training seed.

    train = the first 50,000 MNIST training digits (all but the last sixth when there are fewer than 60,000),
    val = the rest of the training digits, test = the MNIST test digits.
    """
    n = len(mnist.train)
    n_fit = 50_000 if n >= 60_000 else n - n // 6
    return {"train": _subset(mnist.train, slice(0, n_fit)),
            "val": _subset(mnist.train, slice(n_fit, None)),
            "test": mnist.test}


def _subset(digits, index):
    return Digits(digits.images[index], digits.labels[index])


# --- scenes ----------------------------------------------------------------------------------------------------


def digit_size_range(canvas_size, digit_size):
    """(smallest, largest) digit side in px on this canvas; digit_size is given for 32 px (config's rule)."""
    return scaled_digit_size(types.SimpleNamespace(canvas_size=canvas_size, digit_size=tuple(digit_size)))


def bilinear_matrix(size, source=DIGIT_SIDE):
    """(size, source) float64 weights resizing a length-`source` signal to `size` samples, corners aligned."""
    if size == 1:
        position = np.array([(source - 1) / 2])  # no corners to align: sample the centre
    else:
        position = np.arange(size) * ((source - 1) / (size - 1))
    lower = np.minimum(np.floor(position).astype(np.int64), source - 2)
    frac = position - lower
    weights = np.zeros((size, source))
    rows = np.arange(size)
    weights[rows, lower] = 1.0 - frac
    weights[rows, lower + 1] += frac
    return weights


def _resize(images, size, dtype):
    """uint8 (k, 28, 28) -> (k, size, size) in [0, 1] of `dtype`, bilinear with corners aligned."""
    r = bilinear_matrix(size).astype(dtype)
    x = images.astype(dtype) * dtype.type(1 / 255)
    out = r @ x @ r.T
    # Weights summing to 1 + ulp could lift a full-ink pixel a hair above 1.
    return np.clip(out, 0.0, 1.0, out=out)


def _require_int(name, value, least):
    if not isinstance(value, numbers.Integral) or isinstance(value, bool):
        raise ValueError(f"{name}: must be an integer, got {value!r}")
    if value < least:
        raise ValueError(f"{name}: must be at least {least}, got {value}")
    return int(value)


def scene_counts(rng, n, max_digits, counts):
    if counts is None:
        return rng.integers(0, max_digits + 1, size=n).astype(np.int64)
    counts = np.asarray(counts)
    if counts.shape != (n,):
        raise ValueError(f"counts: must have shape ({n},) (one per scene), got {counts.shape}")
    if n and counts.dtype.kind not in "iu":
        raise ValueError(f"counts: must hold integers, got dtype {counts.dtype}")
    if n and (counts.min() < 0 or counts.max() > max_digits):
        raise ValueError(f"counts: must lie in 0..{max_digits} (max_digits), got {counts.min()}..{counts.max()}")
    return counts.astype(np.int64)


OVERLAPS = ("allowed", "rejected")
PLACEMENT_TRIES = 100  # with overlap="rejected": positions drawn per digit before its last one is kept


def make_scenes(rng, digits, n, canvas_size=32, max_digits=2, digit_size=(12, 18), counts=None, dtype=np.float32,
                overlap="allowed"):
    """n scenes of 0..K digits: images (n, C, C), counts (n,), boxes (n, K, 4), labels (n, K); K = max_digits.

    overlap="allowed" places every digit uniformly at random, touching and crossing others (the seed's
    scenes). overlap="rejected" redraws a digit's position while its ink would pile onto an earlier
    digit's, i.e. while some pixel's two intensities would sum above 1 (Pyro's multi-MNIST rule, which the
    published 98% figures were measured on); after PLACEMENT_TRIES draws the last position is kept.
    """
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng: must be a numpy.random.Generator, got {type(rng).__name__}")
    if not isinstance(digits, Digits):
        raise TypeError(f"digits: must be Digits, got {type(digits).__name__}")
    n = _require_int("n", n, 0)
    canvas_size = _require_int("canvas_size", canvas_size, 1)
    max_digits = _require_int("max_digits", max_digits, 0)
    if len(digit_size) != 2 or not all(isinstance(d, numbers.Integral) for d in digit_size) \
            or not 0 < digit_size[0] <= digit_size[1]:
        raise ValueError(f"digit_size: must be two integers 0 < smallest <= largest, got {digit_size!r}")
    low, high = digit_size_range(canvas_size, digit_size)
    if high > canvas_size:
        raise ValueError(f"digit_size: digits up to {high} px do not fit a {canvas_size}-px canvas (canvas_size)")
    dtype = np.dtype(dtype)
    if dtype.kind != "f":
        raise ValueError(f"dtype: must be a float type, got {dtype}")
    if overlap not in OVERLAPS:
        raise ValueError(f"overlap: must be one of {', '.join(OVERLAPS)}; got {overlap!r}")
    counts = scene_counts(rng, n, max_digits, counts)
    m = int(counts.sum())
    if m and len(digits) == 0:
        raise ValueError(f"digits: the pool is empty but the scenes need {m} digit{'' if m == 1 else 's'}")

    # One row per pasted digit, scene-major; slot k is the digit's position within its scene.
    scene = np.repeat(np.arange(n), counts)
    slot = np.arange(m) - np.repeat(np.cumsum(counts) - counts, counts)
    which = rng.integers(0, max(len(digits), 1), size=m)
    sizes = rng.integers(low, high + 1, size=m)
    lefts = rng.integers(0, canvas_size - sizes + 1)
    tops = rng.integers(0, canvas_size - sizes + 1)

    images = np.zeros((n, canvas_size, canvas_size), dtype)
    if overlap == "rejected":
        _paste_apart(rng, images, digits.images[which], scene, sizes, lefts, tops, dtype)
    for size in np.unique(sizes) if overlap == "allowed" else ():
        group = np.flatnonzero(sizes == size)
        patches = _resize(digits.images[which[group]], int(size), dtype)
        offsets = np.arange(size)
        # Within one slot no two digits share a scene, so this fancy-indexed read-max-write has no clashing targets.
        for k in np.unique(slot[group]):
            member = slot[group] == k
            g = group[member]
            s = scene[g, None, None]
            rows = tops[g, None, None] + offsets[None, :, None]
            cols = lefts[g, None, None] + offsets[None, None, :]
            images[s, rows, cols] = np.maximum(images[s, rows, cols], patches[member])

    boxes = np.full((n, max_digits, 4), np.nan)
    boxes[scene, slot] = np.stack([lefts, tops, lefts + sizes, tops + sizes], axis=1)
    labels = np.full((n, max_digits), -1, np.int64)
    labels[scene, slot] = digits.labels[which]
    return Scenes(images, counts, boxes, labels)


def _paste_apart(rng, images, sources, scene, sizes, lefts, tops, dtype):
    """Paste digit i (uint8 sources[i]) into images[scene[i]] at a position where its ink does not pile onto
    the ink already there (no pixel summing above 1), redrawing lefts[i], tops[i] in place as needed."""
    canvas_size = images.shape[-1]
    patches = {}
    for size in np.unique(sizes):
        group = np.flatnonzero(sizes == size)
        patches.update(zip(group, _resize(sources[group], int(size), dtype)))
    for i in range(len(scene)):
        size, image = sizes[i], images[scene[i]]
        for _ in range(PLACEMENT_TRIES - 1):
            region = image[tops[i]:tops[i] + size, lefts[i]:lefts[i] + size]
            if not np.any(region + patches[i] > 1.0):
                break
            lefts[i], tops[i] = rng.integers(0, canvas_size - size + 1, size=2)
        region = image[tops[i]:tops[i] + size, lefts[i]:lefts[i] + size]
        np.maximum(region, patches[i], out=region)
