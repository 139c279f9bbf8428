"""A gather-based bilinear sampler: the reference that air.transformer's separable tent-kernel matmuls must equal.

Every output pixel reads its source image at a fractional pixel coordinate (row, col): the four surrounding
pixels (floor and floor + 1 in each direction) are gathered by fancy indexing and blended with the bilinear
weights; a corner that falls outside the source reads zero. It is slow and obvious on purpose.

Coordinates follow the seed's convention: normalised coordinates in [-1, 1] address pixel centres, corners
aligned (pixel i of n sits at -1 + 2 i / (n - 1)); a window of scale s = exp(log_scale) and shift (tx, ty)
covers [tx - s, tx + s] x [ty - s, ty + s] of the canvas.
"""
import numpy as np


def pixel_centres(n):
    """Normalised coordinates of the n pixel centres: -1 + 2 i / (n - 1)."""
    return -1.0 + 2.0 * np.arange(n) / (n - 1)


def bilinear_sample(source, rows, cols):
    """source (N, H, W); rows (N, R) and cols (N, C) fractional pixel coordinates -> (N, R, C), zeros outside."""
    n, height, width = source.shape
    top, left = np.floor(rows).astype(np.int64), np.floor(cols).astype(np.int64)
    down, right = rows - top, cols - left  # weight of the lower row / right column
    batch = np.arange(n)[:, None, None]
    out = np.zeros((n, rows.shape[1], cols.shape[1]), dtype=source.dtype)
    for row_offset, row_weight in ((0, 1.0 - down), (1, down)):
        for col_offset, col_weight in ((0, 1.0 - right), (1, right)):
            r, c = top + row_offset, left + col_offset
            valid = ((r >= 0) & (r < height))[:, :, None] & ((c >= 0) & (c < width))[:, None, :]
            value = source[batch, np.clip(r, 0, height - 1)[:, :, None], np.clip(c, 0, width - 1)[:, None, :]]
            out += row_weight[:, :, None] * col_weight[:, None, :] * np.where(valid, value, 0.0)
    return out


def window_to_image(windows, log_scale, shift, image_size):
    """Render windows (N, P, P) at log_scale (N,), shift (N, 2) = (tx, ty) onto (N, W, W) canvases.

    Canvas pixel (i, k) reads the window at ((u_i - ty) / s + 1) (P - 1) / 2, ((u_k - tx) / s + 1) (P - 1) / 2.
    """
    p = windows.shape[-1]
    s = np.exp(log_scale)[:, None]
    u = pixel_centres(image_size)
    cols = ((u - shift[:, 0:1]) / s + 1.0) * (p - 1) / 2
    rows = ((u - shift[:, 1:2]) / s + 1.0) * (p - 1) / 2
    return bilinear_sample(windows, rows, cols)


def image_to_window(images, log_scale, shift, window_size):
    """Crop (N, W, W) images to (N, P, P) windows: window pixel j reads the canvas at (t + s v_j + 1) (W - 1) / 2."""
    w = images.shape[-1]
    s = np.exp(log_scale)[:, None]
    v = pixel_centres(window_size)
    cols = (shift[:, 0:1] + s * v + 1.0) * (w - 1) / 2
    rows = (shift[:, 1:2] + s * v + 1.0) * (w - 1) / 2
    return bilinear_sample(images, rows, cols)
