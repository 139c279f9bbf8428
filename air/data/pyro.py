"""Scenes drawn the way Pyro's multi-MNIST generator draws them, the scenes its AIR example and its peers report on.

Pyro's `pyro/contrib/examples/multi_mnist.py` (read, not copied; this is our own code for the same distribution)
draws a scene of n digits, n uniform over 0..max_digits, one digit at a time:

- a digit shrinks by a factor scale ~ N(1.3, 0.1^2) to a frame of int(28 / scale) px (about 19-25 px, mode
  21), resized by Pillow's default filter for 8-bit images (bicubic with a = -0.5, widened when shrinking, in
  fixed point and rounded to 8 bits after each of its two passes);
- the frame's top and left are uniform over 0..C - size - 1 (numpy's randint excludes its upper end, so a
  frame never touches the bottom or right edge);
- the digits' grey levels (0-255) are added; if any pixel then exceeds 255 the whole scene is drawn again,
  digits, sizes and positions alike.

Two things our code adds where Pyro's would stop: a scale that gives no frame fitting the canvas (size >= C,
which Pyro's randint(0, 0) rejects; a 7-sd event on 50 px) is drawn again, and so is a scene after
MAX_REDRAWS rejections (unreachable in practice: a two-digit scene is redrawn about one time in four).
Pixel values are the 8-bit grey levels / 255.
"""
import numpy as np

from air.config import PYRO_MIN_CANVAS
from air.data.digits import DIGIT_SIDE
from air.data.scenes import Scenes, scene_counts

PRECISION_BITS = 22  # Pillow's fixed-point resampling keeps 32 - 8 - 2 fractional bits
SCALE_MEAN, SCALE_SD = 1.3, 0.1
MAX_REDRAWS = 10_000
MIN_CANVAS = PYRO_MIN_CANVAS  # frames of int(28 / scale) px reach 28 once scale <= 1 (a 3-sd draw)


def bicubic(x):
    """The cubic convolution kernel with a = -0.5 (Keys 1981), which Pillow's BICUBIC filter uses; support 2."""
    a, x = -0.5, np.abs(x)
    near = ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0
    far = (((x - 5.0) * x + 8.0) * x - 4.0) * a
    return np.where(x < 1.0, near, np.where(x < 2.0, far, 0.0))


def resize_weights(size, source=DIGIT_SIDE):
    """(size, source) int64 fixed-point weights (sum about 2**PRECISION_BITS a row) resampling a length-`source`
    signal to `size` samples as Pillow resamples an 8-bit image: output pixel i is centred at (i + 1/2) source /
    size, the kernel is stretched by the shrink factor when shrinking, the taps within reach are normalised to
    sum to 1, then rounded half away from zero to fixed point."""
    ratio = source / size
    stretch = max(ratio, 1.0)
    reach = 2.0 * stretch
    weights = np.zeros((size, source))
    for i in range(size):
        centre = (i + 0.5) * ratio
        first = max(int(centre - reach + 0.5), 0)
        last = min(int(centre + reach + 0.5), source)
        taps = bicubic((np.arange(first, last) - centre + 0.5) / stretch)
        total = taps.sum()
        weights[i, first:last] = taps / total if total != 0.0 else taps
    scaled = weights * (1 << PRECISION_BITS)
    return np.trunc(scaled + np.where(scaled < 0, -0.5, 0.5)).astype(np.int64)


def _pass(values, weights):
    """One fixed-point pass along the last axis: round to nearest, floor-shift, clamp to 0..255."""
    total = values @ weights.T + (1 << (PRECISION_BITS - 1))
    return np.clip(total >> PRECISION_BITS, 0, 255)


def resize_uint8(images, size):
    """uint8 (k, s, s) -> uint8 (k, size, size), bit for bit as Pillow's Image.resize((size, size)) with its
    default filter: a horizontal pass, rounded to 8 bits, then a vertical one."""
    images = np.asarray(images)
    w = resize_weights(size, images.shape[-1])
    rows = _pass(images.astype(np.int64), w)  # (k, s, size)
    return _pass(rows.swapaxes(-1, -2), w).swapaxes(-1, -2).astype(np.uint8)


def draw_sizes(rng, m, canvas_size):
    """m digit frame sides int(28 / scale), scale ~ N(1.3, 0.1^2), each drawn again until it fits the canvas with
    room to move (1 <= size < canvas_size)."""
    sizes = np.zeros(m, np.int64)
    todo = np.arange(m)
    while len(todo):
        scale = SCALE_MEAN + SCALE_SD * rng.standard_normal(len(todo))
        with np.errstate(divide="ignore", invalid="ignore"):
            size = np.where(scale > 0, np.trunc(DIGIT_SIDE / np.where(scale > 0, scale, 1.0)), 0).astype(np.int64)
        fits = (size >= 1) & (size < canvas_size)
        sizes[todo[fits]] = size[fits]
        todo = todo[~fits]
    return sizes


def pyro_layers(rng, digits, counts, canvas_size=50):
    """Each scene's digits on their own canvas: (layers uint8 (n, K, C, C), which (n, K) digit indices or -1,
    boxes (n, K, 4) x0, y0, x1, y1 px or NaN), K = max(counts); every scene's layers sum to at most 255."""
    n, k = len(counts), int(max(counts, default=0))
    layers = np.zeros((n, k, canvas_size, canvas_size), np.uint8)
    which = np.full((n, k), -1, np.int64)
    boxes = np.full((n, k, 4), np.nan)
    todo = np.flatnonzero(counts > 0)
    for _ in range(MAX_REDRAWS):
        if not len(todo):
            break
        for slot in range(k):
            rows = todo[counts[todo] > slot]
            m = len(rows)
            index = rng.integers(0, len(digits), size=m)
            sizes = draw_sizes(rng, m, canvas_size)
            tops = rng.integers(0, canvas_size - sizes)
            lefts = rng.integers(0, canvas_size - sizes)
            layers[rows, slot] = 0
            for size in np.unique(sizes):
                group = np.flatnonzero(sizes == size)
                patches = resize_uint8(digits.images[index[group]], int(size))
                offsets = np.arange(size)
                r = rows[group, None, None]
                layers[r, slot, tops[group, None, None] + offsets[None, :, None],
                       lefts[group, None, None] + offsets[None, None, :]] = patches
            which[rows, slot] = index
            boxes[rows, slot] = np.stack([lefts, tops, lefts + sizes, tops + sizes], axis=1)
        piled = layers[todo].sum(axis=1, dtype=np.int64).max(axis=(1, 2)) > 255
        todo = todo[piled]
    else:
        if len(todo):
            raise RuntimeError(f"{len(todo)} scenes still pile ink above 255 after {MAX_REDRAWS} draws")
    return layers, which, boxes


def make_pyro_scenes(rng, digits, n, canvas_size=50, max_digits=2, counts=None, dtype=np.float32):
    """n scenes of 0..max_digits digits drawn as Pyro's generator draws them (module docstring): an air.data.Scenes
    with images (n, C, C) of grey level / 255, counts (n,), boxes (n, K, 4) of the digits' frames, labels (n, K)."""
    if canvas_size < MIN_CANVAS:
        raise ValueError(f"canvas_size: Pyro's digits reach 28 px and need room to move; the canvas must be at least "
                         f"{MIN_CANVAS} px, got {canvas_size}")
    counts = scene_counts(rng, n, max_digits, counts)
    if counts.sum() and len(digits) == 0:
        raise ValueError("digits: the pool is empty")
    layers, which, frames = pyro_layers(rng, digits, counts, canvas_size)
    k = max_digits
    boxes = np.full((n, k, 4), np.nan)
    labels = np.full((n, k), -1, np.int64)
    used = which.shape[1]
    boxes[:, :used] = frames
    labels[:, :used] = np.where(which >= 0, digits.labels[np.maximum(which, 0)], -1)
    images = (layers.sum(axis=1, dtype=np.int64) * (1.0 / 255)).astype(dtype)
    return Scenes(images, counts, boxes, labels)
