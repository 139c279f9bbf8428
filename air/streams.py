"""Named random streams: each part of the model draws from a generator of its own, keyed by its name.

A run's randomness starts from one generator (its seed's); `named(rng)` takes a single number from it and returns
a function that gives, for any name, an independent generator derived from that number and the name alone
(numpy's SeedSequence with the name in its spawn key). So what one part draws never depends on which other parts
exist or in which order they draw: switching on a stochastic z_where, the glimpse encoder or REINFORCE's baseline
adds streams and leaves every other part's draws as they were.
"""
import zlib

import numpy


def name_key(name):
    """A stable 32-bit number for `name` (Python's hash() changes between processes; CRC-32 does not)."""
    return zlib.crc32(name.encode("utf-8"))


def named(rng):
    """stream(name) -> numpy Generator, independent across names, all derived from one draw of `rng`."""
    entropy = int(rng.integers(2 ** 63))

    def stream(name):
        return numpy.random.default_rng(numpy.random.SeedSequence(entropy, spawn_key=(name_key(name),)))

    return stream
