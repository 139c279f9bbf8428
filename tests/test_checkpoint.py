"""air.checkpoint: what save_checkpoint writes read_checkpoint returns; a damaged file is a CheckpointError naming it,
and reading it changes nothing."""
import numpy as np
import pytest

import air
from air.checkpoint import CheckpointError, read_checkpoint, save_checkpoint
from air.optim import adam_init
from air.tree import Layout, leaves


@pytest.fixture
def checkpoint(tmp_path, tiny_config):
    params = air.init_params(np.random.default_rng(0), tiny_config)
    flat = Layout(params).flatten(params)
    path = tmp_path / "checkpoint.npz"
    save_checkpoint(path, params=params, best_params=params, adam=adam_init(flat),
                    rng_state=np.random.default_rng(1).bit_generator.state, config=tiny_config, history=[], epoch=0,
                    best={"val_count_acc": 0.5, "epoch": 1}, complete=False)
    return path


def test_a_checkpoint_reads_back(checkpoint, tiny_config):
    state = read_checkpoint(checkpoint)
    assert state["config"] == tiny_config and state["epoch"] == 0 and state["best"]["epoch"] == 1
    assert state["adam"]["step"] == 0 and state["average_params"] is None
    assert read_checkpoint(checkpoint.parent)["config"] == tiny_config  # the run folder names it too


def assert_same_leaves(got, want):
    """Two parameter trees hold the same paths and bit-identical arrays of the same dtype."""
    got, want = dict(leaves(got)), dict(leaves(want))
    assert got.keys() == want.keys()
    for path in want:
        assert got[path].dtype == want[path].dtype and np.array_equal(got[path], want[path]), f"{path} differs"


def test_a_checkpoint_round_trip_returns_every_array_it_was_given(tmp_path, tiny_config):
    """Current, best and averaged parameters and Adam's moments all differ here, so an entry written or read
    in another's place shows."""
    params, best, average = (air.init_params(np.random.default_rng(seed), tiny_config) for seed in (0, 1, 2))
    flat = Layout(params).flatten(params)
    rng = np.random.default_rng(3)
    adam = {"step": 7, "params": flat, "m": rng.normal(size=flat.shape).astype(flat.dtype),
            "v": rng.random(flat.shape).astype(flat.dtype)}
    path = tmp_path / "checkpoint.npz"
    save_checkpoint(path, params=params, best_params=best, adam=adam, rng_state=rng.bit_generator.state,
                    config=tiny_config, history=[{"epoch": 1}], epoch=1, best={"val_count_acc": 0.5, "epoch": 1},
                    complete=False, signal_stats=[0.25, 2.0], average_params=average)
    state = read_checkpoint(path)
    assert_same_leaves(state["params"], params)
    assert_same_leaves(state["best_params"], best)
    assert_same_leaves(state["average_params"], average)
    for key in ("m", "v"):
        assert state["adam"][key].dtype == flat.dtype and np.array_equal(state["adam"][key], adam[key]), key
    assert state["adam"]["step"] == 7 and state["rng_state"] == rng.bit_generator.state
    assert state["history"] == [{"epoch": 1}] and state["signal_stats"] == [0.25, 2.0]


def flip_byte(raw, where):
    raw = bytearray(raw)
    raw[where] ^= 0xFF
    return bytes(raw)


@pytest.mark.parametrize("damage, phrase", [
    (lambda raw: raw[:len(raw) // 2], "BadZipFile"),  # a copy or a write cut short
    (lambda raw: raw[:-1], "BadZipFile"),
    (lambda raw: b"", "an empty file"),
    (lambda raw: flip_byte(raw, len(raw) // 3), "BadZipFile: Bad CRC-32"),  # one entry's bytes garbled
    (lambda raw: b"not a checkpoint at all", "ValueError"),
])
def test_a_damaged_checkpoint_is_a_checkpoint_error_and_stays_as_it_was(checkpoint, damage, phrase):
    damaged = damage(checkpoint.read_bytes())
    checkpoint.write_bytes(damaged)
    with pytest.raises(CheckpointError, match=phrase) as caught:
        read_checkpoint(checkpoint)
    assert str(caught.value).startswith(f"{checkpoint}: not a readable checkpoint, damaged or truncated")
    assert checkpoint.read_bytes() == damaged
    assert [p.name for p in checkpoint.parent.iterdir()] == ["checkpoint.npz"]


def test_a_checkpoint_missing_an_entry_is_a_checkpoint_error(checkpoint):
    with np.load(checkpoint) as f:
        arrays = {k: f[k] for k in f.files if k != "adam/m"}
    np.savez(checkpoint, **arrays)
    with pytest.raises(CheckpointError, match="KeyError"):
        read_checkpoint(checkpoint)


def test_a_checkpoint_of_another_version_says_so(checkpoint):
    with np.load(checkpoint) as f:
        arrays = {k: f[k] for k in f.files}
    arrays["config"] = np.array(str(arrays["config"]).replace('"seed":', '"no_such_field": 1, "seed":'))
    np.savez(checkpoint, **arrays)
    with pytest.raises(CheckpointError, match="does not fit this version of air .*no_such_field"):
        read_checkpoint(checkpoint)
