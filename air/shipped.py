"""Trained models shipped with the package: air.pretrained(name) -> (params, config), no network, no training.

Each model is one file, air/models/NAME.npz: its scored parameters in float32 (the best validation epoch's, or
their running average where the preset averages; no optimiser state), the run's config, and a model card (the
command that trained it, seed, commit, data, test scores on its own and on Pyro-scale scenes, wall time), also
written beside it as NAME.md for reading. `python -m experiments.export RUN --name NAME` writes both.
"""
import dataclasses
import json
import zipfile
import zlib
from pathlib import Path

import numpy as np

from air.config import Config, ConfigError
from air.files import write_atomically
from air.model import init_params
from air.tree import leaves, nest

MODELS_DIR = Path(__file__).parent / "models"
FORMAT_VERSION = 1


class PretrainedError(Exception):
    """A shipped model that is unknown, missing, damaged or from an incompatible version; one line, naming it."""


def names():
    """The shipped models' names, sorted."""
    return sorted(p.stem for p in MODELS_DIR.glob("*.npz"))


def model_path(name):
    """The file of a shipped model (a name) or any exported model file (a path ending in .npz)."""
    if str(name).endswith(".npz"):
        return Path(name)
    if not isinstance(name, str) or not name or "/" in name:
        raise PretrainedError(f"pretrained model name must be a plain name such as 'paper', got {name!r}")
    return MODELS_DIR / f"{name}.npz"


def load(name):
    """(params, config, card) of a shipped model; PretrainedError (one line) if it cannot be used."""
    path = model_path(name)
    if not path.exists():
        known = ", ".join(names()) or "none"
        raise PretrainedError(f"no pretrained model {name!r} (shipped: {known})")
    try:
        with np.load(path, allow_pickle=False) as f:
            data = {k: f[k] for k in f.files}
        meta = json.loads(str(data.pop("meta")))
        if meta.get("format_version") != FORMAT_VERSION:
            raise PretrainedError(f"{path}: model format {meta.get('format_version')}, this version of air reads "
                                  f"{FORMAT_VERSION}; re-export it with experiments.export")
        config = Config.from_dict(meta["config"])
    except ConfigError as e:
        raise PretrainedError(f"{path}: its config does not fit this version of air ({e})") from None
    except OSError as e:
        raise PretrainedError(f"{path}: cannot read the file ({e.strerror or e})") from None
    except (EOFError, ValueError, KeyError, TypeError, zipfile.BadZipFile, zlib.error) as e:
        raise PretrainedError(f"{path}: not a readable model file, damaged or truncated ({type(e).__name__}: {e})"
                              ) from None
    params = nest(data, "params/")
    _check_shapes(path, params, config)
    return params, config, meta["card"]


def pretrained(name):
    """(params, config) of the shipped model `name` ('seed', 'best' or 'paper'): ready for air.infer."""
    params, config, _ = load(name)
    return params, config


def card(name):
    """The model card of a shipped model, a dict (see the module docstring)."""
    return load(name)[2]


def save(path, params, config, card):
    """Write a model file: params cast to float32 (config.dtype set to match), the config and the card."""
    config = dataclasses.replace(config, dtype="float32")
    arrays = {f"params/{k}": np.asarray(v, dtype=np.float32) for k, v in leaves(params)}
    meta = {"format_version": FORMAT_VERSION, "config": json.loads(config.to_json()), "card": card}
    arrays["meta"] = np.array(json.dumps(meta))
    write_atomically(path, lambda f: np.savez_compressed(f, **arrays))
    return config


def _check_shapes(path, params, config):
    """PretrainedError if params do not have the shapes config's model draws (a file from another version)."""
    expected = dict(leaves(init_params(np.random.default_rng(0), config)))
    held = dict(leaves(params))
    if set(held) != set(expected):
        missing, extra = sorted(set(expected) - set(held)), sorted(set(held) - set(expected))
        raise PretrainedError(f"{path}: its parameters do not fit its config (missing {missing[:3]}, "
                              f"unexpected {extra[:3]}): a file from another version of air?")
    for key, value in expected.items():
        if held[key].shape != value.shape:
            raise PretrainedError(f"{path}: parameter {key} has shape {held[key].shape}, its config needs "
                                  f"{value.shape}")
