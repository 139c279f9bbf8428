"""Pyro's scene family (air.data.pyro): Pillow's resize bit for bit, the generator's sizes, placement and overlap
rule, and the Config switch that draws it."""
import dataclasses
import json

import numpy as np
import pytest
from PIL import Image  # Pillow comes with matplotlib

import air
from air.config import ConfigError
from air.data import config_scenes, digit_pools, make_pyro_scenes
from air.data.pyro import MIN_CANVAS, draw_sizes, pyro_layers, resize_uint8
from experiments import pyro_family


@pytest.mark.parametrize("size", [7, 17, 19, 21, 23, 25, 28, 30])
def test_resize_is_pillows_default_resize_bit_for_bit(mnist, size):
    digits = mnist.train.images[:40]
    expected = np.stack([np.array(Image.fromarray(d).resize((size, size))) for d in digits])
    assert np.array_equal(resize_uint8(digits, size), expected)


def test_resize_of_random_bytes_matches_pillow_too():
    # Full-range noise drives the fixed-point sums to both clamps, which smooth digits rarely reach.
    noise = np.random.default_rng(3).integers(0, 256, size=(20, 28, 28), dtype=np.uint8)
    for size in (13, 21, 29):
        expected = np.stack([np.array(Image.fromarray(d).resize((size, size))) for d in noise])
        assert np.array_equal(resize_uint8(noise, size), expected)


def test_frame_sides_follow_int_28_over_a_normal_scale():
    sizes = draw_sizes(np.random.default_rng(0), 20_000, 50)
    scale = 1.3 + 0.1 * np.random.default_rng(1).standard_normal(200_000)
    expected = np.bincount(np.trunc(28 / scale).astype(int), minlength=40)[:40] / 200_000
    observed = np.bincount(sizes, minlength=40)[:40] / 20_000
    assert np.abs(observed - expected).max() < 0.012  # ~4 binomial sds of the largest bin (p ~ 0.23, n = 20,000)
    assert sizes.min() >= 1 and sizes.max() < 50


def test_sizes_that_do_not_fit_are_drawn_again():
    sizes = draw_sizes(np.random.default_rng(0), 5000, 22)  # about half the draws (int(28 / s) >= 22) redrawn
    assert sizes.max() == 21 and sizes.min() >= 15 and np.mean(sizes == 21) > 0.2  # the mode, no longer cut


def test_scenes_never_pile_ink_and_frames_never_touch_the_far_edges(mnist):
    pool = digit_pools(mnist)["test"]
    scenes = make_pyro_scenes(np.random.default_rng(0), pool, 300, canvas_size=50, max_digits=3)
    layers, _, _ = pyro_layers(np.random.default_rng(0), pool, scenes.counts, 50)
    assert np.all(layers.sum(axis=1, dtype=np.int64) <= 255)
    assert scenes.images.dtype == np.float32 and scenes.images.max() <= 1.0
    present = ~np.isnan(scenes.boxes[..., 0])
    assert np.array_equal(present.sum(axis=1), scenes.counts)
    frames = scenes.boxes[present]
    assert frames[:, :2].min() >= 0 and frames[:, 2:].max() <= 49  # randint(0, padding) excludes the far edge
    assert np.all(frames[:, 2] - frames[:, 0] == frames[:, 3] - frames[:, 1])
    assert np.array_equal(scenes.labels >= 0, present)
    assert set(np.unique(scenes.counts)) == {0, 1, 2, 3}


def test_the_scene_is_its_digits_resized_and_placed_at_their_frames(mnist):
    pool = digit_pools(mnist)["test"]
    layers, which, boxes = pyro_layers(np.random.default_rng(5), pool, np.array([1, 2, 2]), 50)
    for scene in range(3):
        for slot in range(2):
            if which[scene, slot] < 0:
                continue
            x0, y0, x1, y1 = boxes[scene, slot].astype(int)
            patch = resize_uint8(pool.images[which[scene, slot]][None], x1 - x0)[0]
            assert np.array_equal(layers[scene, slot, y0:y1, x0:x1], patch)
            assert layers[scene, slot].sum() == patch.sum()  # nothing outside the frame


def test_pyro_scenes_are_reproducible_and_counts_can_be_given(mnist):
    pool = digit_pools(mnist)["val"]
    a = make_pyro_scenes(np.random.default_rng(4), pool, 50, counts=np.full(50, 2))
    b = make_pyro_scenes(np.random.default_rng(4), pool, 50, counts=np.full(50, 2))
    assert np.array_equal(a.images, b.images) and np.all(a.counts == 2)
    with pytest.raises(ValueError, match="canvas_size"):
        make_pyro_scenes(np.random.default_rng(4), pool, 5, canvas_size=MIN_CANVAS - 1)


def test_config_draws_the_family_it_names(mnist):
    pool = digit_pools(mnist)["test"]
    config = dataclasses.replace(air.preset("paper"), scene_family="pyro")
    ours = config_scenes(config, np.random.default_rng(0), pool, 20)
    direct = make_pyro_scenes(np.random.default_rng(0), pool, 20, canvas_size=50, max_digits=2)
    assert np.array_equal(ours.images, direct.images)
    own = config_scenes(air.preset("paper"), np.random.default_rng(0), pool, 20)
    assert not np.array_equal(own.images, ours.images)
    with pytest.raises(ConfigError, match="canvas_size"):
        dataclasses.replace(air.preset("seed"), canvas_size=28, window_size=16, digit_size=(8, 12),
                            scene_family="pyro")


def test_kolmogorov_smirnov_statistic_and_p_value():
    rng = np.random.default_rng(0)
    same = pyro_family.ks_test(rng.normal(size=4000), rng.normal(size=4000))
    shifted = pyro_family.ks_test(rng.normal(size=4000), rng.normal(0.2, 1.0, size=4000))
    assert same[1] > 0.01 and shifted[1] < 1e-6
    assert pyro_family.ks_test(np.array([0.0, 1.0]), np.array([2.0, 3.0]))[0] == 1.0


def test_check_against_a_generator_file_written_like_pyros(tmp_path, capsys):
    # A stand-in for Pyro's file with its functions' names and signatures, drawing from air.data.pyro itself, so
    # the comparison's plumbing (wrapping, recording layers, the statistics) is checked without Pyro's code.
    (tmp_path / "multi_mnist.py").write_text('''
import numpy as np
from pyro.contrib.examples.util import get_data_loader
from air.data.pyro import resize_uint8

def imresize(arr, size):
    return resize_uint8(arr[None], size[0])[0]

def sample_one(canvas_size, mnist):
    i = np.random.randint(mnist["digits"].shape[0])
    w = int(28 / (0.1 * np.random.randn() + 1.3))
    resized = imresize(mnist["digits"][i], (w, w))
    top, left = np.random.randint(0, canvas_size - w, size=2)
    out = np.zeros((canvas_size, canvas_size), np.uint8)
    out[top:top + w, left:left + w] = resized
    return out, int(mnist["labels"][i])

def sample_multi(num_digits, canvas_size, mnist):
    canvas = np.zeros((canvas_size, canvas_size))
    for _ in range(num_digits):
        canvas += sample_one(canvas_size, mnist)[0]
    if canvas.max() > 255:
        return sample_multi(num_digits, canvas_size, mnist)
    return canvas, []
''')
    assert pyro_family.main(["--pyro-file", str(tmp_path / "multi_mnist.py"), "--n", "400",
                             "--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "frame side (px)" in out and (tmp_path / "out" / "pyro_family.png").exists()
    stats = json.loads((tmp_path / "out" / "pyro_family.json").read_text())["statistics"]
    assert abs(stats["frame side (px)"]["ours_mean"] - stats["frame side (px)"]["pyro_mean"]) < 0.5
    assert all(row["ks_p"] > 1e-4 for row in stats.values())
