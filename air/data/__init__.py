"""MNIST digits (the full set shipped in air/data/mnist/, or $AIR_MNIST_DIR) and Multi-MNIST scenes.

digits.py reads idx files and knows the two sources; scenes.py cuts the digits into disjoint pools and pastes
them into scenes; pyro.py draws scenes as Pyro's generator does; families.py draws the family a Config names.
All are re-exported here: `from air.data import load_mnist, make_scenes`.
"""
from air.data.digits import (CHECKSUMS, DIGIT_SIDE, MNIST_FILES, SHIPPED_DIR, DataError, Digits, MnistData,
                             load_mnist, read_idx)
from air.data.scenes import (OVERLAPS, PLACEMENT_TRIES, Scenes, bilinear_matrix, digit_pools, digit_size_range,
                             make_scenes)
from air.data.pyro import make_pyro_scenes
from air.data.families import config_scenes

__all__ = ["CHECKSUMS", "DIGIT_SIDE", "MNIST_FILES", "SHIPPED_DIR", "DataError", "Digits", "MnistData", "load_mnist",
           "read_idx", "OVERLAPS", "PLACEMENT_TRIES", "Scenes", "bilinear_matrix", "digit_pools", "digit_size_range",
           "make_scenes", "make_pyro_scenes", "config_scenes"]
