"""The scenes a Config describes: its scene family ("own", air.data.scenes; or "pyro", air.data.pyro), drawn
from one digit pool."""
import numpy as np

from air.data.pyro import make_pyro_scenes
from air.data.scenes import make_scenes


def config_scenes(config, rng, pool, n, counts=None, dtype=None):
    """n scenes of config's family from the digits `pool`: canvas_size and max_digits, and for the own family
    digit_size and overlap (which Pyro's family does not read). dtype defaults to config.dtype."""
    dtype = np.dtype(config.dtype if dtype is None else dtype)
    if config.scene_family == "pyro":
        return make_pyro_scenes(rng, pool, n, config.canvas_size, config.max_digits, counts=counts, dtype=dtype)
    return make_scenes(rng, pool, n, config.canvas_size, config.max_digits, config.digit_size, counts=counts,
                       dtype=dtype, overlap=config.overlap)
