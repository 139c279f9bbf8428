"""Shared fixtures: a small synthetic MNIST folder, a tiny config, and no network anywhere."""
import dataclasses
import gzip
import ipaddress
import socket

import numpy as np
import pytest

import air
from air import data


def _idx(array):
    """The bytes of a uint8 idx file holding `array`."""
    header = bytes([0, 0, 8, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


def blob_digits(rng, n):
    """n 28x28 uint8 'digits': two or three soft strokes inside the central 20x20 box, as in MNIST."""
    yy, xx = np.mgrid[0:28, 0:28]
    images = np.zeros((n, 28, 28))
    for _ in range(3):
        cy, cx = rng.uniform(8, 20, size=(2, n, 1, 1))
        sy, sx = rng.uniform(1.5, 4.0, size=(2, n, 1, 1))
        images = np.maximum(images, np.exp(-((yy - cy) ** 2 / sy ** 2 + (xx - cx) ** 2 / sx ** 2)))
    return (255 * images).astype(np.uint8), rng.integers(0, 10, n)


def write_synthetic_mnist(folder):
    """Write the four MNIST idx files into `folder`, with 600 training and 120 test synthetic digits."""
    rng = np.random.default_rng(7)
    for prefix, n in (("train", 600), ("t10k", 120)):
        images, labels = blob_digits(rng, n)
        (folder / f"{prefix}-images-idx3-ubyte.gz").write_bytes(gzip.compress(_idx(images)))
        (folder / f"{prefix}-labels-idx1-ubyte.gz").write_bytes(gzip.compress(_idx(labels)))
    return folder


@pytest.fixture(scope="session")
def mnist_dir(tmp_path_factory):
    """A folder holding the four MNIST idx files with 600 training and 120 test synthetic digits."""
    return write_synthetic_mnist(tmp_path_factory.mktemp("mnist"))


def _loopback(host):
    """Whether `host` (an address or a name) is this machine's loopback; names other than localhost are not."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Tests never reach past this machine (a socket connected to any address but loopback fails the test), and
    read the MNIST copy shipped with air unless they name a folder."""
    def guarded(connect):
        def guard(sock, address):
            if sock.family in (socket.AF_INET, socket.AF_INET6) and not _loopback(address[0]):
                raise AssertionError(f"a test tried to reach {address[0]} over the network")
            return connect(sock, address)
        return guard
    monkeypatch.setattr(socket.socket, "connect", guarded(socket.socket.connect))
    monkeypatch.setattr(socket.socket, "connect_ex", guarded(socket.socket.connect_ex))
    monkeypatch.delenv("AIR_MNIST_DIR", raising=False)


@pytest.fixture(scope="session")
def mnist(mnist_dir):
    return data.load_mnist(data_dir=mnist_dir)


TINY = dict(n_train=64, n_val=32, n_test=32, n_epochs=3, batch_size=16)


@pytest.fixture
def tiny_config():
    """The seed model on a tiny schedule: 3 epochs of 4 steps."""
    return dataclasses.replace(air.preset("seed"), **TINY)


@pytest.fixture
def seeded_global_random():
    """check_grads draws its directions from numpy's global generator: pin it so a failure reproduces."""
    state = np.random.get_state()
    np.random.seed(0)
    yield
    np.random.set_state(state)
