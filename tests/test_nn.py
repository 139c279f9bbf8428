"""air.nn's building blocks against plain-numpy references, and the conv decoder built from them."""
import dataclasses

import numpy as np
import pytest

import air
from air.config import ConfigError
from air.generative import decode
from air.nn import conv3x3, upsample2


def test_conv3x3_is_a_zero_padded_cross_correlation():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 4, 5, 3))
    params = {"w": rng.standard_normal((27, 2)), "b": rng.standard_normal(2)}
    kernel = params["w"].reshape(3, 3, 3, 2)  # (row offset, column offset, in, out)
    expected = np.zeros((2, 4, 5, 2)) + params["b"]
    for n in range(2):
        for r in range(4):
            for c in range(5):
                for i in range(3):
                    for j in range(3):
                        rr, cc = r + i - 1, c + j - 1
                        if 0 <= rr < 4 and 0 <= cc < 5:
                            expected[n, r, c] += x[n, rr, cc] @ kernel[i, j]
    np.testing.assert_allclose(conv3x3(params, x), expected, rtol=1e-12, atol=1e-12)


def test_upsample2_repeats_each_pixel_in_a_2x2_block():
    x = np.arange(6.0).reshape(1, 2, 3, 1)
    up = upsample2(x)
    assert up.shape == (1, 4, 6, 1)
    np.testing.assert_array_equal(up[0, ::2, ::2, 0], x[0, :, :, 0])
    np.testing.assert_array_equal(up[0, 1::2, 1::2, 0], x[0, :, :, 0])


def test_conv_decoder_draws_dark_windows_of_the_right_size():
    config = dataclasses.replace(air.preset("seed"), decoder="conv")
    params = air.init_params(np.random.default_rng(0), config)
    z_what = np.random.default_rng(1).standard_normal((5, 3, config.what_dim)).astype(np.float32)
    windows = decode(params, config, z_what)
    assert windows.shape == (5, 3, 16, 16) and windows.dtype == np.float32
    assert 0.0 < windows.min() and windows.max() < 1.0
    # Near sigmoid(decoder_bias = -2) ~ 0.12 at the start: one draw of the conv stack moves its level (medians of
    # 0.03-0.27 over twelve draws), so the level is checked over eight initialisations.
    levels = [np.median(decode(air.init_params(np.random.default_rng(seed), config), config, z_what))
              for seed in range(8)]
    assert 0.05 < np.median(levels) < 0.3


def test_conv_decoder_needs_a_window_divisible_by_4():
    with pytest.raises(ConfigError, match="window_size: the conv decoder upsamples"):
        dataclasses.replace(air.preset("seed"), decoder="conv", window_size=18)
