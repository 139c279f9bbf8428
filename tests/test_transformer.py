"""air.transformer: equal to the gather-based reference sampler, exact where window and canvas pixels coincide,
boxes that match the rendered ink, and gradients that pass a finite-difference check off the pixel grid."""
import numpy as np
import pytest
from autograd.test_util import check_grads

from air import transformer
from tests import reference_sampler

SIZES = [(16, 32), (5, 9), (12, 12), (7, 20)]  # (window P, canvas W); the first is the seed's


def random_placements(rng, n):
    """log_scale (n,) in [-1.5, 0.5] and shift (n, 2) in [-1, 1]^2: many windows partly off the canvas."""
    return rng.uniform(-1.5, 0.5, n), rng.uniform(-1.0, 1.0, (n, 2))


def partly_off_canvas(log_scale, shift):
    """Windows that overlap the canvas [-1, 1]^2 but do not lie inside it."""
    s = np.exp(log_scale)[:, None]
    overlaps = np.all(np.abs(shift) - s < 1.0, axis=1)
    inside = np.all(np.abs(shift) + s <= 1.0, axis=1)
    return overlaps & ~inside


def aligned_placement(p, w, corner):
    """log_scale and shift that put window pixel (0, 0) exactly on canvas pixel `corner` = (column, row).

    Window pixels are 2 s / (P - 1) apart in normalised units and canvas pixels 2 / (W - 1), so the grids
    coincide at s = (P - 1) / (W - 1); window pixel 0 then sits at canvas pixel (t + 1) (W - 1) / 2 - (P - 1) / 2.
    """
    corner = np.asarray(corner, dtype=float)
    log_scale = np.full(corner.shape[:-1], np.log((p - 1) / (w - 1)))
    shift = (2 * corner + p - 1) / (w - 1) - 1.0
    return log_scale, shift


# --- equal to the reference ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("p, w", SIZES)
def test_window_to_image_equals_reference(p, w):
    rng = np.random.default_rng(p * 100 + w)
    n = 64
    windows = rng.uniform(0.0, 1.0, (n, p, p))
    log_scale, shift = random_placements(rng, n)
    assert np.count_nonzero(partly_off_canvas(log_scale, shift)) >= 10
    expected = reference_sampler.window_to_image(windows, log_scale, shift, w)
    got = transformer.window_to_image(windows, log_scale, shift, w)
    assert got.shape == (n, w, w) and got.dtype == np.float64
    assert np.count_nonzero(np.max(expected, axis=(1, 2)) > 0.1) >= n // 2  # not a comparison of empty canvases
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("p, w", SIZES)
def test_window_to_image_equals_reference_on_the_pixel_grid(p, w):
    """Source coordinates exactly on integers (where floor and the tent kernel meet their kinks)."""
    rng = np.random.default_rng(p * 100 + w + 1)
    n = 32
    windows = rng.uniform(0.0, 1.0, (n, p, p))
    log_scale, shift = aligned_placement(p, w, rng.integers(-p, w + 1, (n, 2)))
    expected = reference_sampler.window_to_image(windows, log_scale, shift, w)
    got = transformer.window_to_image(windows, log_scale, shift, w)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("p, w", SIZES)
def test_image_to_window_equals_reference(p, w):
    rng = np.random.default_rng(p * 100 + w + 2)
    n = 64
    images = rng.uniform(0.0, 1.0, (n, w, w))
    log_scale, shift = random_placements(rng, n)
    assert np.count_nonzero(partly_off_canvas(log_scale, shift)) >= 10
    expected = reference_sampler.image_to_window(images, log_scale, shift, p)
    got = transformer.image_to_window(images, log_scale, shift, p)
    assert got.shape == (n, p, p) and got.dtype == np.float64
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)


def test_float32_stays_float32():
    rng = np.random.default_rng(5)
    windows = rng.uniform(0.0, 1.0, (8, 16, 16)).astype(np.float32)
    log_scale, shift = (a.astype(np.float32) for a in random_placements(rng, 8))
    canvases = transformer.window_to_image(windows, log_scale, shift, 32)
    assert canvases.dtype == np.float32
    assert transformer.image_to_window(canvases, log_scale, shift, 16).dtype == np.float32
    expected = reference_sampler.window_to_image(windows.astype(np.float64), log_scale.astype(np.float64),
                                                 shift.astype(np.float64), 32)
    np.testing.assert_allclose(canvases, expected, rtol=0, atol=1e-4)


# --- exact where the pixel grids coincide ---------------------------------------------------------------------------


@pytest.mark.parametrize("p, w", SIZES)
def test_render_then_crop_returns_the_window(p, w):
    rng = np.random.default_rng(p * 100 + w + 3)
    n = 24
    windows = rng.uniform(0.0, 1.0, (n, p, p))
    log_scale, shift = aligned_placement(p, w, rng.integers(0, w - p + 1, (n, 2)))
    canvases = transformer.window_to_image(windows, log_scale, shift, w)
    np.testing.assert_allclose(transformer.image_to_window(canvases, log_scale, shift, p), windows,
                               rtol=0, atol=1e-12)


@pytest.mark.parametrize("p, w", SIZES)
def test_render_then_crop_keeps_the_part_on_the_canvas(p, w):
    """A window hanging over the canvas edge comes back with the part that was off the canvas zeroed."""
    rng = np.random.default_rng(p * 100 + w + 4)
    n = 24
    windows = rng.uniform(0.0, 1.0, (n, p, p))
    corners = rng.integers(-p + 1, w, (n, 2))
    log_scale, shift = aligned_placement(p, w, corners)
    canvases = transformer.window_to_image(windows, log_scale, shift, w)
    cropped = transformer.image_to_window(canvases, log_scale, shift, p)
    j = np.arange(p)
    on_canvas = lambda start: (start[:, None] + j >= 0) & (start[:, None] + j < w)  # (n, P)
    mask = on_canvas(corners[:, 1])[:, :, None] & on_canvas(corners[:, 0])[:, None, :]
    assert np.any(~mask) and np.any(mask)
    np.testing.assert_allclose(cropped, np.where(mask, windows, 0.0), rtol=0, atol=1e-12)


@pytest.mark.parametrize("p, w", SIZES)
def test_window_boxes_frame_the_rendered_ink(p, w):
    """On the canvas pixel grid, an all-ones window renders a P x P block of ones; its box is that block's
    edges (pixel c spans [c, c + 1]), and the ink on the canvas is exactly the box clipped to the canvas."""
    corners = np.array([(x, y) for x in range(-p + 1, w) for y in (-2, 0, (w - p) // 2, w - p, w - 3)])
    log_scale, shift = aligned_placement(p, w, corners)
    boxes = transformer.window_boxes(log_scale, shift, w, p)
    assert boxes.shape == (len(corners), 4)
    np.testing.assert_allclose(boxes, np.concatenate([corners, corners + p], axis=1), rtol=0, atol=1e-9)

    ink = transformer.window_to_image(np.ones((len(corners), p, p)), log_scale, shift, w)
    x0, y0, x1, y1 = np.clip(np.rint(boxes), 0, w).astype(int).T
    pixel = np.arange(w)
    inside = (((pixel >= y0[:, None]) & (pixel < y1[:, None]))[:, :, None]
              & ((pixel >= x0[:, None]) & (pixel < x1[:, None]))[:, None, :])
    assert np.all(np.abs(ink[inside] - 1.0) <= 1e-12)
    assert np.all(np.abs(ink[~inside]) <= 1e-12)


def test_window_boxes_scale_and_centre():
    """Any window: P cells of s (W - 1) / (P - 1) canvas pixels, centred where t lands in pixel-edge coordinates."""
    rng = np.random.default_rng(6)
    p, w = 16, 32
    log_scale, shift = rng.uniform(-1.5, 0.5, (3, 5)), rng.uniform(-1.0, 1.0, (3, 5, 2))
    boxes = transformer.window_boxes(log_scale, shift, w, p)
    assert boxes.shape == (3, 5, 4)
    width = p * np.exp(log_scale) * (w - 1) / (p - 1)
    np.testing.assert_allclose(boxes[..., 2] - boxes[..., 0], width, rtol=1e-12)
    np.testing.assert_allclose(boxes[..., 3] - boxes[..., 1], width, rtol=1e-12)
    centre = (shift + 1.0) * (w - 1) / 2 + 0.5
    np.testing.assert_allclose((boxes[..., 0:2] + boxes[..., 2:4]) / 2, centre, rtol=1e-12)


def test_box_where_inverts_window_boxes():
    """The window placed on a box covers that box: box_where then window_boxes is the identity on square boxes,
    and a non-square box gets the window of its mean side at its centre."""
    rng = np.random.default_rng(7)
    p, w = 28, 50
    log_scale, shift = rng.uniform(-1.5, 0.0, (4, 2)), rng.uniform(-1.0, 1.0, (4, 2, 2))
    boxes = transformer.window_boxes(log_scale, shift, w, p)
    back_scale, back_shift = transformer.box_where(boxes, w, p)
    np.testing.assert_allclose(back_scale, log_scale, rtol=0, atol=1e-12)
    np.testing.assert_allclose(back_shift, shift, rtol=0, atol=1e-12)
    wide = np.array([10.0, 20.0, 30.0, 26.0])  # 20 x 6 px: mean side 13 px, centre (20, 23)
    square = transformer.window_boxes(*transformer.box_where(wide, w, p), w, p)
    np.testing.assert_allclose(square, [13.5, 16.5, 26.5, 29.5], rtol=0, atol=1e-12)


# --- gradients -----------------------------------------------------------------------------------------------------


GRID_MARGIN = 1e-3  # every source coordinate keeps this far from an integer (the tent kernels' kinks)


def off_grid_placements(rng, n, source_coordinates):
    """n random placements whose source coordinates (by the reference's formula) all avoid the pixel grid."""
    log_scales, shifts = [], []
    while len(log_scales) < n:
        log_scale, shift = random_placements(rng, 1)
        src = source_coordinates(log_scale, shift)
        if np.min(np.abs(src - np.round(src))) >= GRID_MARGIN:
            log_scales.append(log_scale[0])
            shifts.append(shift[0])
    return np.array(log_scales), np.array(shifts)


def render_sources(p, w):
    """Window-pixel coordinates read by the canvas columns and rows: ((u - t) / s + 1) (P - 1) / 2."""
    u = reference_sampler.pixel_centres(w)
    return lambda log_scale, shift: (((u - shift[:, :, None]) / np.exp(log_scale)[:, None, None] + 1.0)
                                     * (p - 1) / 2)


def crop_sources(p, w):
    """Canvas-pixel coordinates read by the window columns and rows: (t + s v + 1) (W - 1) / 2."""
    v = reference_sampler.pixel_centres(p)
    return lambda log_scale, shift: (shift[:, :, None] + np.exp(log_scale)[:, None, None] * v + 1.0) * (w - 1) / 2


@pytest.mark.parametrize("argnum, name", [(0, "windows"), (1, "log_scale"), (2, "shift")])
def test_window_to_image_gradient(seeded_global_random, argnum, name):
    rng = np.random.default_rng(7)
    p, w, n = 16, 32, 4
    sources = render_sources(p, w)
    log_scale, shift = off_grid_placements(rng, n, sources)
    src = sources(log_scale, shift)
    assert np.min(np.abs(src - np.round(src))) >= GRID_MARGIN
    windows = rng.uniform(0.0, 1.0, (n, p, p))
    render = lambda *args: transformer.window_to_image(*args, w)
    check_grads(render, argnum=argnum, modes=["rev"], order=1)(windows, log_scale, shift)


@pytest.mark.parametrize("argnum, name", [(0, "images"), (1, "log_scale"), (2, "shift")])
def test_image_to_window_gradient(seeded_global_random, argnum, name):
    rng = np.random.default_rng(8)
    p, w, n = 16, 32, 4
    sources = crop_sources(p, w)
    log_scale, shift = off_grid_placements(rng, n, sources)
    src = sources(log_scale, shift)
    assert np.min(np.abs(src - np.round(src))) >= GRID_MARGIN
    images = rng.uniform(0.0, 1.0, (n, w, w))
    crop = lambda *args: transformer.image_to_window(*args, p)
    check_grads(crop, argnum=argnum, modes=["rev"], order=1)(images, log_scale, shift)
