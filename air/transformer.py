"""The spatial transformer of AIR (Jaderberg et al. 2015) without rotation, as separable bilinear kernels.

A window of P x P pixels is placed on a canvas of W x W pixels by a scale s = exp(log_scale) and a
shift (tx, ty), in the seed's convention: in normalised canvas coordinates u in [-1, 1] (pixel centres,
corners aligned) the window covers [tx - s, tx + s] x [ty - s, ty + s]. A canvas pixel at u reads the window at
window-pixel coordinate ((u - tx) / s + 1) (P - 1) / 2, bilinearly, with zeros outside the window.

Without rotation the bilinear sampler factorises over rows and columns. With the tent kernel
K[i, j] = max(0, 1 - |src(i) - j|), rendering is two batched matmuls, canvas = K_y @ window @ K_x^T, whose
backward pass autograd records as two matmuls more, instead of the scatter (np.add.at) of a gather-based
sampler. A gather-based sampler is kept in tests/ as the reference this one must equal.
"""
import autograd.numpy as np


def _grid(n, dtype):
    """Normalised coordinates of n pixel centres, corners aligned: -1 ... 1."""
    return np.linspace(-1.0, 1.0, n).astype(dtype)


def _tent_kernels(src, n_target):
    """src (N, 2, n) fractional target-pixel coordinates -> (K_x, K_y), each (N, n, n_target)."""
    target = np.arange(n_target, dtype=src.dtype)
    distance = src.reshape(src.shape + (1,)) - target
    weight = 1.0 - np.abs(distance)
    kernels = weight * (weight > 0)
    n, rows = src.shape[0], src.shape[2]
    k_x, k_y = np.split(kernels, 2, axis=1)
    return k_x.reshape(n, rows, n_target), k_y.reshape(n, rows, n_target)


def window_to_image(windows, log_scale, shift, image_size):
    """Render windows (N, P, P) at log_scale (N,) and shift (N, 2) = (tx, ty) onto (N, W, W) canvases."""
    n, size = windows.shape[0], windows.shape[-1]
    u = _grid(image_size, windows.dtype)
    # Window-pixel coordinate read by each canvas row / column: ((u - t) / s + 1) (P - 1) / 2.
    pixels_per_unit = (0.5 * (size - 1)) * np.exp(-log_scale).reshape(n, 1, 1)
    src = (u - shift.reshape(n, 2, 1)) * pixels_per_unit + 0.5 * (size - 1)
    k_x, k_y = _tent_kernels(src, size)
    return np.matmul(np.matmul(k_y, windows), np.swapaxes(k_x, 1, 2))


def image_to_window(images, log_scale, shift, window_size):
    """Crop (N, W, W) images to (N, P, P) windows: the inverse of window_to_image where it is defined."""
    n, size = images.shape[0], images.shape[-1]
    v = _grid(window_size, images.dtype)
    # Canvas-pixel coordinate read by each window row / column: (t + s v + 1) (W - 1) / 2.
    scale = np.exp(log_scale).reshape(n, 1, 1)
    src = (shift.reshape(n, 2, 1) + scale * v + 1.0) * (0.5 * (size - 1))
    k_x, k_y = _tent_kernels(src, size)
    return np.matmul(np.matmul(k_y, images), np.swapaxes(k_x, 1, 2))


def window_boxes(log_scale, shift, image_size, window_size):
    """(..., 4) boxes (x0, y0, x1, y1) in canvas pixels (edges at integers) covered by each window.

    The window's P pixel centres span [t - s, t + s] in normalised units; each covers a cell of
    s (W - 1) / (P - 1) canvas pixels, half of which lies beyond the first and last centre.
    """
    s = np.exp(log_scale)
    half_cell = 0.5 * s * (image_size - 1) / (window_size - 1)
    to_pixels = lambda v: (v + 1.0) * 0.5 * (image_size - 1) + 0.5  # normalised -> pixel-edge coordinates
    tx, ty = shift[..., 0], shift[..., 1]
    return np.stack([to_pixels(tx - s) - half_cell, to_pixels(ty - s) - half_cell,
                     to_pixels(tx + s) + half_cell, to_pixels(ty + s) + half_cell], axis=-1)
