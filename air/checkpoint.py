"""Run folders: config.json, metrics.json and checkpoint.npz, written atomically.

checkpoint.npz holds everything a resumed run needs to continue bit for bit: the current and the best
parameters, Adam's state, the step and epoch, the training generator's state, the history and the config.
"""
import json
import zipfile
import zlib
from pathlib import Path

import numpy as np

from air.config import Config, ConfigError
from air.files import write_atomically
from air.tree import leaves, nest

CHECKPOINT = "checkpoint.npz"
FORMAT_VERSION = 1


class CheckpointError(Exception):
    """A run folder or checkpoint that cannot be read; the message names the path and the problem."""


def write_json(path, value):
    write_atomically(path, lambda f: f.write((json.dumps(value, indent=2, allow_nan=True) + "\n").encode()))


def save_checkpoint(path, *, params, best_params, adam, rng_state, config, history, epoch, best, complete,
                    signal_stats=None, average_params=None):
    """Write the training state to `path` (a .npz file) atomically; `average_params` is the running average of
    the parameters when config.param_average is on."""
    arrays = {f"params/{k}": v for k, v in leaves(params)}
    arrays.update({f"best_params/{k}": v for k, v in leaves(best_params)})
    if average_params is not None:
        arrays.update({f"average_params/{k}": v for k, v in leaves(average_params)})
    arrays.update({"adam/m": adam["m"], "adam/v": adam["v"], "adam/step": np.array(adam["step"])})
    meta = {"format_version": FORMAT_VERSION, "epoch": epoch, "best": best, "complete": complete,
            "rng_state": rng_state, "history": history, "signal_stats": signal_stats}
    arrays["meta"] = np.array(json.dumps(meta))
    arrays["config"] = np.array(config.to_json())
    write_atomically(path, lambda f: np.savez(f, **arrays))


def checkpoint_path(path):
    """The checkpoint file of a run folder, or the file itself; CheckpointError if there is none."""
    path = Path(path)
    if path.is_dir() or (not path.exists() and path.suffix != ".npz"):  # a run folder, there or not
        path = path / CHECKPOINT
    if not path.exists():
        where = path.parent if path.name == CHECKPOINT else path
        raise CheckpointError(f"{where}: no checkpoint found (expected {path})")
    return path


def read_checkpoint(path):
    """Everything save_checkpoint wrote, as a dict; params are nested dicts again. CheckpointError if the file is
    damaged (a truncated or corrupt zip, a missing entry): it is only read, never changed."""
    path = checkpoint_path(path)
    try:
        with np.load(path, allow_pickle=False) as f:
            data = {k: f[k] for k in f.files}
        meta = json.loads(str(data.pop("meta")))
        config = Config.from_dict(json.loads(str(data.pop("config"))))
        if meta.get("format_version") != FORMAT_VERSION:
            raise CheckpointError(f"{path}: checkpoint format {meta.get('format_version')}, expected {FORMAT_VERSION}")
        return {
            **meta,
            "config": config,
            "params": nest(data, "params/"),
            "best_params": nest(data, "best_params/"),
            "average_params": nest(data, "average_params/") or None,
            "adam": {"m": data["adam/m"], "v": data["adam/v"], "step": int(data["adam/step"])},
        }
    except ConfigError as e:
        raise CheckpointError(f"{path}: its config does not fit this version of air ({e})") from None
    except OSError as e:
        if e.errno is None:  # not the file system's complaint but the file's content
            raise CheckpointError(f"{path}: not a readable checkpoint, damaged or truncated ({e})") from None
        raise CheckpointError(f"{path}: cannot read the file ({e.strerror})") from None
    # np.load raises each of these on a damaged zip: BadZipFile (truncated, bad CRC), EOFError (empty),
    # ValueError (a garbled .npy header), zlib.error (a garbled compressed entry), KeyError (an entry missing).
    except (EOFError, ValueError, KeyError, TypeError, zipfile.BadZipFile, zlib.error) as e:
        problem = "an empty file" if path.stat().st_size == 0 else f"{type(e).__name__}: {e}"
        raise CheckpointError(f"{path}: not a readable checkpoint, damaged or truncated ({problem})") from None


def load_checkpoint(path):
    """(params, config) of a run folder or its checkpoint file: the best-validation parameters, which a finished run
    reports."""
    state = read_checkpoint(path)
    return state["best_params"], state["config"]
