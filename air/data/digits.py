"""MNIST digits from idx files: the full set shipped with air, or the folder named by $AIR_MNIST_DIR."""
import gzip
import hashlib
import math
import os
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

DIGIT_SIDE = 28  # MNIST digits are 28 x 28 pixels
MNIST_FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
               "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
# The full MNIST ships inside the package (11 MB), so every run has the same 70,000 digits and none needs a
# network. SHA256SUMS there is checked on every load (about 15 ms); a folder a user names is checked for its
# idx structure only, since a copy re-gzipped elsewhere holds the same digits in other bytes.
SHIPPED_DIR = Path(__file__).with_name("mnist")
CHECKSUMS = "SHA256SUMS"

_IDX_TYPES = {0x08: "uint8", 0x09: "int8", 0x0B: "int16", 0x0C: "int32", 0x0D: "float32", 0x0E: "float64"}


class DataError(Exception):
    """A data file is missing, malformed or corrupt. `path` names it, `problem` says what is wrong."""

    def __init__(self, path, problem):
        super().__init__(f"{path}: {problem}")
        self.path = str(path)
        self.problem = problem

    def __reduce__(self):
        # Rebuilt from (path, problem), not from the message, so it crosses to a sweep's worker processes and back.
        return type(self), (self.path, self.problem)


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
    """MNIST training digits, test digits and one line saying where they came from."""

    train: Digits
    test: Digits
    source: str


def _count(n, noun):
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def _describe(a):
    if isinstance(a, np.ndarray):
        return f"{a.dtype} array of shape {a.shape}"
    return type(a).__name__


# --- idx files -------------------------------------------------------------------------------------------------


def read_idx(path, ndim=None):
    """An idx file (gzip-compressed if the name ends in .gz) -> read-only uint8 array of the header's shape."""
    path = Path(path)
    return _idx_array(path, _read_bytes(path), ndim)


def _read_bytes(path):
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError(path, "missing file") from None
    except OSError as e:
        raise DataError(path, f"cannot read the file ({e.strerror or e})") from None
    if not raw:
        raise DataError(path, "empty file (0 bytes)")
    return raw


def _idx_array(path, raw, ndim):
    """The array held by the bytes `raw` of the idx file `path` (gunzipped first if its name ends in .gz)."""
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
        raise DataError(path, f"truncated: {_count(len(raw), 'byte')}, shorter than the 4-byte idx magic number")
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
        raise DataError(path, f"truncated: the header says {shape} = {_count(size, 'byte')} of data, "
                              f"but only {_count(payload, 'byte')} {'follows' if payload == 1 else 'follow'} it")
    if payload > size:
        raise DataError(path, f"trailing bytes: the header says {shape} = {_count(size, 'byte')} of data, "
                              f"but {payload:,} bytes follow it ({payload - size:,} extra)")
    return np.frombuffer(raw, np.uint8, count=size, offset=header).reshape(dims)


def _read_digits(images_path, labels_path, read):
    """A pair of idx files (images, labels) -> Digits, their bytes from read(path); DataError if either is bad
    or they disagree."""
    images = _idx_array(images_path, read(images_path), ndim=3)
    labels = _idx_array(labels_path, read(labels_path), ndim=1)
    if images.shape[1:] != (DIGIT_SIDE, DIGIT_SIDE):
        raise DataError(images_path, f"images are {images.shape[1]} x {images.shape[2]} pixels, MNIST's are 28 x 28")
    if len(labels) != len(images):
        raise DataError(labels_path, f"count mismatch: the file holds {_count(len(labels), 'label')} "
                                     f"but {Path(images_path).name} holds {_count(len(images), 'image')}")
    if len(labels) and labels.max() > 9:
        raise DataError(labels_path, f"labels must be digits 0..9, found {labels.max()}")
    return Digits(images, labels.astype(np.int64))


# --- MNIST sources ---------------------------------------------------------------------------------------------


def load_mnist(data_dir=None):
    """MNIST from data_dir or $AIR_MNIST_DIR if either is given, else the full set shipped with air.

    Nothing is downloaded. A named folder must hold the four idx files (MNIST_FILES), each checked for its idx
    structure: a missing or bad one is a DataError naming it, never a silent fallback to the shipped copy. The
    shipped files are checked against their SHA256SUMS too.
    """
    if data_dir is None:
        data_dir = os.environ.get("AIR_MNIST_DIR") or None
    if data_dir is not None:
        folder = Path(data_dir).expanduser()
        train, test = _read_mnist_folder(folder)
        return MnistData(train, test, f"MNIST idx files in {folder} ({_sizes(train, test)})")
    train, test = _read_shipped(SHIPPED_DIR)
    return MnistData(train, test, f"MNIST shipped with air ({_sizes(train, test)})")


def _sizes(train, test):
    return f"{len(train):,} train + {len(test):,} test digits"


def _read_mnist_folder(folder, read=_read_bytes):
    """(train, test) Digits from the four idx files of `folder`; DataError naming a missing or bad file."""
    if not folder.is_dir():
        raise DataError(folder, f"no such folder; it should hold the four MNIST files {', '.join(MNIST_FILES)}")
    missing = [name for name in MNIST_FILES if not (folder / name).is_file()]
    if missing:
        others = f" (also missing: {', '.join(missing[1:])})" if len(missing) > 1 else ""
        raise DataError(folder / missing[0], f"missing file; the folder must hold all four MNIST files{others}")
    train = _read_digits(folder / MNIST_FILES[0], folder / MNIST_FILES[1], read)
    test = _read_digits(folder / MNIST_FILES[2], folder / MNIST_FILES[3], read)
    return train, test


def _read_shipped(folder):
    """(train, test) Digits from the copy shipped in `folder`, every file checked against its SHA-256 sum."""
    try:
        expected = _read_checksums(folder / CHECKSUMS)

        def read_checked(path):
            raw = _read_bytes(path)
            got = hashlib.sha256(raw).hexdigest()
            if got != expected[path.name]:
                raise DataError(path, f"checksum mismatch: SHA-256 {got}, {CHECKSUMS} says {expected[path.name]}")
            return raw

        return _read_mnist_folder(folder, read_checked)
    except DataError as e:
        raise DataError(e.path, f"{e.problem}; the MNIST copy shipped with air is damaged: reinstall air, or set "
                                f"AIR_MNIST_DIR to a folder holding the four MNIST idx files") from None


def _read_checksums(path):
    """{file name: SHA-256 hex digest} from a sha256sum-style file, which must list every MNIST file."""
    sums = {}
    for number, line in enumerate(_read_bytes(path).decode("ascii", "replace").splitlines(), 1):
        digest, _, name = line.strip().partition(" ")
        name = name.strip().lstrip("*")  # sha256sum marks binary mode with a '*' before the name
        if line.strip() and (len(digest) != 64 or not name):
            raise DataError(path, f"line {number} is not '<SHA-256 hex digest>  <file name>': {line.strip()!r}")
        if name:
            sums[name] = digest.lower()
    unlisted = [name for name in MNIST_FILES if name not in sums]
    if unlisted:
        raise DataError(path, f"no checksum for {', '.join(unlisted)}")
    return sums
