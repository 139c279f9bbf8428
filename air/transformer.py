"""The spatial transformer of AIR (Jaderberg et al. 2015) without rotation, as separable bilinear kernels.

A window of P x P pixels is placed on a canvas of W x W pixels by a scale s = exp(log_scale) and a
shift (tx, ty), in the seed's convention: in normalised canvas coordinates u in [-1, 1] (pixel centres,
corners aligned) the window covers [tx - s, tx + s] x [ty - s, ty + s]. A canvas pixel at u reads the window at
window-pixel coordinate ((u - tx) / s + 1) (P - 1) / 2, bilinearly, with zeros outside the window.

Without rotation the bilinear sampler factorises over rows and columns. With the tent kernel
K[i, j] = max(0, 1 - |src(i) - j|), rendering is two batched matmuls, canvas = K_y @ window @ K_x^T, whose
backward pass autograd records as two matmuls more, instead of the scatter (np.add.at) of a gather-based
sampler. A gather-based sampler is kept in tests/ as the reference this one must equal.

Layout, chosen for the cost of autograd's backward pass: the kernels of both axes are built together as one
(2, n_target, N, n_source) array (axis 0 is x, y; element [a, j, n, i] = K_a[n][i, j]). The broadcast that
forms src(i) - j then repeats contiguous rows, and its gradient is a sum over a leading axis of long rows,
which numpy does fast (a sum over a short axis, e.g. a last axis of 16, is several times slower). The
batched matmuls read the kernels through strided views, which BLAS accepts without a copy.
"""
import math

import autograd.numpy as np


def _grid(n, dtype):
    """Normalised coordinates of n pixel centres, corners aligned: -1 ... 1."""
    return np.linspace(-1.0, 1.0, n).astype(dtype)


def _tent(distance):
    """max(0, 1 - |distance|) elementwise, recorded by autograd as one multiply and one add.

    Inside the support 1 - |d| = 1 + d * (-sign d) exactly, and outside the kernel is 0 + d * 0. The mask and
    the slope are piecewise constant in d and are computed from its value by comparisons, which autograd does
    not trace; the backward pass is then the one product g * slope, the tent's derivative. (The direct form's
    np.abs costs several passes over the array in the backward pass, and the ReLU one more.)
    """
    inside = (distance > -1.0) & (distance < 1.0)
    # slope = -sign(d) inside the support, built from boolean masks (np.sign and np.where with a scalar
    # are 5-10 times slower on these arrays).
    slope = (inside & (distance < 0.0)).astype(distance.dtype)
    slope -= inside & (distance > 0.0)
    return distance * slope + inside


def _kernels(src, n_target):
    """src (2, 1, N, n) fractional target-pixel coordinates, for x and y, measured from the target's centre
    pixel (n_target - 1) / 2 -> the kernels (K_x, K_y), each (1, n_target, N, n), laid out as in the module
    docstring."""
    # Target pixels j measured like src, so the centre offset folds into this constant.
    offsets = np.arange(n_target, dtype=src.dtype).reshape(n_target, 1, 1) - 0.5 * (n_target - 1)
    k_x, k_y = np.split(_tent(src - offsets), 2)
    return k_x, k_y


def _placement(log_scale, shift, image_size, window_size, dtype):
    """The kernels (K_x, K_y), each (1, P, N, W), of windows at log_scale (N,) or (B, T), shift (..., 2)."""
    n = log_scale.size
    u = _grid(image_size, dtype)
    # A canvas pixel at u reads the window ((u - t) / s) (P - 1) / 2 window pixels from its centre.
    pixels_per_unit = np.exp(math.log(0.5 * (window_size - 1)) - log_scale.reshape(n, 1))
    shift_xy = np.moveaxis(shift, -1, 0).reshape(2, 1, n, 1)
    return _kernels((u - shift_xy) * pixels_per_unit, window_size)


def _separable(k_x, k_y, images):
    """K_y[n] @ images[n] @ K_x[n]^T for kernels (1, n_target, N, n) and images (N, n_target, n_target)."""
    n, size = images.shape[0], k_x.shape[-1]
    out = np.matmul(np.transpose(k_y, (0, 2, 3, 1)), np.matmul(images, np.transpose(k_x, (0, 2, 1, 3))))
    return out.reshape(n, size, size)


def window_to_image(windows, log_scale, shift, image_size):
    """Render windows (N, P, P) at log_scale (N,) and shift (N, 2) = (tx, ty) onto (N, W, W) canvases."""
    k_x, k_y = _placement(log_scale, shift, image_size, windows.shape[-1], windows.dtype)
    return _separable(k_x, k_y, windows)


def compose_windows(windows, log_scale, shift, image_size):
    """sum_t window_to_image(windows of step t): windows (B T, P, P) in (b, t) order, at log_scale (B, T) and
    shift (B, T, 2), onto (B, W, W) canvases.

    The sum over steps is folded into the second matmul: canvas_b = sum_t K_y,t @ (window_t @ K_x,t^T)
    = [K_y,1 ... K_y,T] @ [M_1; ...; M_T], one (W, T P) @ (T P, W) product per image.
    """
    (b, t), p, w = log_scale.shape, windows.shape[-1], image_size
    k_x, k_y = _placement(log_scale, shift, image_size, p, windows.dtype)
    placed = np.matmul(windows, np.transpose(k_x, (0, 2, 1, 3))).reshape(b, t * p, w)
    # [K_y,1 ... K_y,T] of image b, (W, T P): element [i, (t, j)] = k_y[0, j, (b, t), i].
    k_y_steps = np.transpose(k_y.reshape(p, b, t, w), (1, 3, 2, 0)).reshape(b, w, t * p)
    return np.matmul(k_y_steps, placed)


def image_to_window(images, log_scale, shift, window_size):
    """Crop (N, W, W) images to (N, P, P) windows: the inverse of window_to_image where it is defined."""
    n, size = images.shape[0], images.shape[-1]
    v = _grid(window_size, images.dtype)
    # A window pixel at v reads the canvas at (t + s v) (W - 1) / 2 canvas pixels from its centre.
    scale = np.exp(log_scale).reshape(n, 1)
    shift_xy = np.moveaxis(shift, -1, 0).reshape(2, 1, n, 1)
    k_x, k_y = _kernels((shift_xy + scale * v) * (0.5 * (size - 1)), size)
    return _separable(k_x, k_y, images)


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


def box_where(boxes, image_size, window_size):
    """window_boxes inverted for square boxes: (..., 4) boxes (x0, y0, x1, y1) in canvas pixels -> (log_scale
    (...,), shift (..., 2)) of the window covering each (a non-square box gets the mean of its two sides)."""
    boxes = np.asarray(boxes, dtype=np.float64)
    side = 0.5 * (boxes[..., 2] - boxes[..., 0] + boxes[..., 3] - boxes[..., 1])
    # A window of scale s covers s (W - 1) P / (P - 1) canvas pixels (see window_boxes).
    log_scale = np.log(side * (window_size - 1) / ((image_size - 1) * window_size))
    centre = 0.5 * (boxes[..., :2] + boxes[..., 2:])
    return log_scale, (centre - 0.5) / (0.5 * (image_size - 1)) - 1.0
