"""air.data: idx parsing, the MNIST sources (the shipped copy, a named folder), digit pools and scenes."""
import gzip
import hashlib
import itertools

import numpy as np
import pytest

from air import data
from air.data import DataError, Digits, digit_pools, load_mnist, make_scenes, read_idx

TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS = data.MNIST_FILES


# --- helpers -----------------------------------------------------------------------------------------------------


def idx_bytes(array, type_code=0x08):
    """The idx encoding of a uint8 array: magic, big-endian dims, then the raw bytes."""
    header = bytes([0, 0, type_code, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return header + np.ascontiguousarray(array, np.uint8).tobytes()


def write_file(path, raw):
    """Write raw bytes, gzip-compressed first when the name ends in .gz."""
    path.write_bytes(gzip.compress(raw) if path.name.endswith(".gz") else raw)
    return path


def synthetic_digits(seed, n, side=28):
    """n random (hence distinct) uint8 images with labels 0..9."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, side, side), dtype=np.uint8), rng.integers(0, 10, n)


def write_mnist_folder(folder, n_train=60, n_test=10):
    """The four idx files of a small synthetic MNIST; returns (train, test) as Digits."""
    folder.mkdir(parents=True, exist_ok=True)
    train_x, train_y = synthetic_digits(1, n_train)
    test_x, test_y = synthetic_digits(2, n_test)
    write_file(folder / TRAIN_IMAGES, idx_bytes(train_x))
    write_file(folder / TRAIN_LABELS, idx_bytes(train_y.astype(np.uint8)))
    write_file(folder / TEST_IMAGES, idx_bytes(test_x))
    write_file(folder / TEST_LABELS, idx_bytes(test_y.astype(np.uint8)))
    return Digits(train_x, train_y.astype(np.int64)), Digits(test_x, test_y.astype(np.int64))


def image_keys(digits):
    return {image.tobytes() for image in digits.images}


@pytest.fixture(scope="module")
def shipped():
    """The full MNIST shipped with air, as load_mnist reads it by default."""
    return load_mnist()


@pytest.fixture(scope="module")
def pool(shipped):
    """5,000 real training digits: enough for every scene test, small enough to search."""
    train = digit_pools(shipped)["train"]
    return Digits(train.images[:5000], train.labels[:5000])


def shipped_copy(folder):
    """A stand-in for the shipped folder: links to the shipped files, so a test can replace one of them."""
    folder.mkdir()
    for name in (*data.MNIST_FILES, data.CHECKSUMS, "README.md"):
        (folder / name).symlink_to(data.SHIPPED_DIR / name)
    return folder


def replace_file(path, raw):
    """Put `raw` where `path` was (a link to a shipped file), leaving the shipped file alone."""
    path.unlink()
    path.write_bytes(raw)


# --- idx files ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["images-idx3-ubyte.gz", "images-idx3-ubyte", "labels-idx1-ubyte.gz",
                                  "labels-idx1-ubyte"])
def test_read_idx_round_trips_images_and_labels(tmp_path, name):
    images, labels = synthetic_digits(0, 7)
    array = images if name.startswith("images") else labels.astype(np.uint8)
    got = read_idx(write_file(tmp_path / name, idx_bytes(array)))
    assert got.dtype == np.uint8 and got.shape == array.shape
    np.testing.assert_array_equal(got, array)


def test_read_idx_checks_the_expected_dimensionality(tmp_path):
    path = write_file(tmp_path / "labels.gz", idx_bytes(np.arange(5, dtype=np.uint8)))
    assert read_idx(path, ndim=1).shape == (5,)
    with pytest.raises(DataError, match="bad magic number 0x00000801, expected 0x00000803"):
        read_idx(path, ndim=3)


GOOD = idx_bytes(synthetic_digits(0, 3)[0])


@pytest.mark.parametrize("name, raw, phrase", [
    ("x.gz", b"\x12\x34\x08\x03" + GOOD[4:], "bad magic number 0x12340803"),
    ("x.gz", b"\0\0\x08\0" + GOOD[4:], "bad magic number"),
    ("x.gz", GOOD[:-5], "truncated: the header says 3 x 28 x 28 = 2,352 bytes of data, but only 2,347"),
    ("x.gz", GOOD + b"abc", "trailing bytes"),
    ("x.gz", GOOD[:10], "truncated: a 3-dimensional idx header needs 16 bytes"),
    ("x.gz", b"\0\0", "truncated"),
    ("x.gz", b"\0\0\x0d\x03" + GOOD[4:], "only uint8"),
    ("x", b"", "empty file"),
])
def test_read_idx_rejects_malformed_content(tmp_path, name, raw, phrase):
    path = write_file(tmp_path / name, raw)
    with pytest.raises(DataError, match=phrase) as caught:
        read_idx(path)
    assert str(path) in str(caught.value) and caught.value.path == str(path)


@pytest.mark.parametrize("raw, phrase", [
    (b"", "empty file"),
    (GOOD, "not a gzip file"),
    (gzip.compress(GOOD)[:40], "corrupt gzip file: truncated"),
    (gzip.compress(GOOD)[:-8] + b"\0" * 8, "corrupt gzip file"),  # zeroed CRC and length
])
def test_read_idx_rejects_bad_gzip_files(tmp_path, raw, phrase):
    path = tmp_path / "images.gz"
    path.write_bytes(raw)
    with pytest.raises(DataError, match=phrase) as caught:
        read_idx(path)
    assert str(path) in str(caught.value)


def test_read_idx_hints_at_an_uncompressed_name_for_gzip_bytes(tmp_path):
    path = tmp_path / "images"
    path.write_bytes(gzip.compress(GOOD))
    with pytest.raises(DataError, match="look gzip-compressed"):
        read_idx(path)


def test_read_idx_reports_a_missing_file(tmp_path):
    with pytest.raises(DataError, match="missing file"):
        read_idx(tmp_path / "nothing.gz")


def test_digits_validates_shapes():
    images, labels = synthetic_digits(0, 4)
    assert len(Digits(images, labels.astype(np.int64))) == 4
    with pytest.raises(ValueError, match="images"):
        Digits(images[:, :20], labels.astype(np.int64))
    with pytest.raises(ValueError, match="labels"):
        Digits(images, labels.astype(np.int64)[:3])
    with pytest.raises(ValueError, match="labels"):
        Digits(images, labels.astype(np.float64))


# --- MNIST from a folder -----------------------------------------------------------------------------------------


def test_load_mnist_reads_an_explicit_folder(tmp_path):
    train, test = write_mnist_folder(tmp_path / "mnist")
    mnist = load_mnist(data_dir=tmp_path / "mnist")
    np.testing.assert_array_equal(mnist.train.images, train.images)
    np.testing.assert_array_equal(mnist.train.labels, train.labels)
    np.testing.assert_array_equal(mnist.test.images, test.images)
    assert mnist.train.labels.dtype == np.int64
    assert mnist.source == f"MNIST idx files in {tmp_path / 'mnist'} (60 train + 10 test digits)"


def test_load_mnist_reads_the_folder_named_by_the_environment(tmp_path, monkeypatch):
    train, _ = write_mnist_folder(tmp_path / "env")
    monkeypatch.setenv("AIR_MNIST_DIR", str(tmp_path / "env"))
    mnist = load_mnist()
    np.testing.assert_array_equal(mnist.train.images, train.images)
    assert str(tmp_path / "env") in mnist.source and len(mnist.test) == 10


@pytest.mark.parametrize("via_env", [False, True])
def test_an_explicit_folder_missing_a_file_is_an_error_not_a_fallback(tmp_path, monkeypatch, via_env):
    write_mnist_folder(tmp_path / "mnist")
    (tmp_path / "mnist" / TEST_LABELS).unlink()
    if via_env:
        monkeypatch.setenv("AIR_MNIST_DIR", str(tmp_path / "mnist"))
    with pytest.raises(DataError, match="missing file") as caught:
        load_mnist(data_dir=None if via_env else tmp_path / "mnist")
    assert caught.value.path == str(tmp_path / "mnist" / TEST_LABELS)


def test_an_explicit_folder_that_does_not_exist_is_an_error(tmp_path, monkeypatch):
    monkeypatch.setenv("AIR_MNIST_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(DataError, match="no such folder") as caught:
        load_mnist()
    assert str(tmp_path / "nowhere") in str(caught.value)


def test_images_and_labels_of_different_counts_are_an_error(tmp_path):
    write_mnist_folder(tmp_path)
    write_file(tmp_path / TRAIN_LABELS, idx_bytes(np.zeros(59, np.uint8)))
    with pytest.raises(DataError, match="count mismatch: the file holds 59 labels but .* holds 60 images") as caught:
        load_mnist(data_dir=tmp_path)
    assert TRAIN_LABELS in str(caught.value) and TRAIN_IMAGES in str(caught.value)


@pytest.mark.parametrize("name, raw, phrase", [
    (TEST_IMAGES, idx_bytes(np.zeros((10, 20, 20), np.uint8)), "28 x 28"),
    (TRAIN_LABELS, idx_bytes(np.full(60, 10, np.uint8)), "labels must be digits 0..9"),
    (TRAIN_IMAGES, idx_bytes(np.zeros(60, np.uint8)), "bad magic number"),
])
def test_a_bad_file_in_an_explicit_folder_is_named(tmp_path, name, raw, phrase):
    write_mnist_folder(tmp_path)
    write_file(tmp_path / name, raw)
    with pytest.raises(DataError, match=phrase) as caught:
        load_mnist(data_dir=tmp_path)
    assert caught.value.path == str(tmp_path / name)


# --- the shipped copy --------------------------------------------------------------------------------------------


def test_without_a_folder_load_mnist_reads_the_full_mnist_shipped_with_air(shipped):
    assert shipped.source == "MNIST shipped with air (60,000 train + 10,000 test digits)"
    assert shipped.train.images.shape == (60_000, 28, 28) and shipped.test.images.shape == (10_000, 28, 28)
    assert shipped.train.images.dtype == np.uint8 and shipped.train.labels.dtype == np.int64
    # MNIST's own label counts: the test set holds 980 zeros and 1,135 ones; every digit appears.
    assert np.bincount(shipped.test.labels)[:2].tolist() == [980, 1135]
    assert np.bincount(shipped.train.labels).min() > 5000
    assert shipped.train.images.max() == 255 and shipped.train.images.mean() == pytest.approx(33.3, abs=0.1)


def test_the_shipped_files_match_their_checksums_and_name_their_authors():
    sums = dict(reversed(line.split()) for line in (data.SHIPPED_DIR / data.CHECKSUMS).read_text().splitlines())
    assert sorted(sums) == sorted(data.MNIST_FILES)
    for name, digest in sums.items():
        assert hashlib.sha256((data.SHIPPED_DIR / name).read_bytes()).hexdigest() == digest
    readme = (data.SHIPPED_DIR / "README.md").read_text()
    for phrase in ("Yann LeCun", "Corinna Cortes", "Christopher J. C. Burges", "CC BY-SA 3.0"):
        assert phrase in readme


def test_a_named_folder_wins_over_the_shipped_copy(tmp_path, monkeypatch):
    train, _ = write_mnist_folder(tmp_path / "env")
    monkeypatch.setenv("AIR_MNIST_DIR", str(tmp_path / "env"))
    assert len(load_mnist().train) == 60
    monkeypatch.setenv("AIR_MNIST_DIR", "")  # empty counts as unset
    assert len(load_mnist().train) == 60_000


def damage(folder, name):
    """Flip one byte in the middle of `name`: the gzip wrapper may still open, the checksum cannot match."""
    raw = bytearray((folder / name).read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    replace_file(folder / name, bytes(raw))


@pytest.mark.parametrize("name, spoil, phrase", [
    (TEST_LABELS, lambda path: path.unlink(), "missing file"),
    (TRAIN_IMAGES, lambda path: replace_file(path, path.read_bytes()[:100_000]), "checksum mismatch"),
    (TEST_IMAGES, lambda path: damage(path.parent, path.name), "checksum mismatch: SHA-256 "),
    (TRAIN_LABELS, lambda path: replace_file(path, b""), "empty file"),
    (data.CHECKSUMS, lambda path: path.unlink(), "missing file"),
    (data.CHECKSUMS, lambda path: replace_file(path, path.read_bytes().splitlines(True)[0]), "no checksum for"),
    (data.CHECKSUMS, lambda path: replace_file(path, b"not a checksum line\n"), "line 1 is not"),
])
def test_a_missing_or_corrupt_shipped_file_is_named(tmp_path, monkeypatch, name, spoil, phrase):
    folder = shipped_copy(tmp_path / "shipped")
    spoil(folder / name)
    monkeypatch.setattr(data.digits, "SHIPPED_DIR", folder)
    with pytest.raises(DataError, match=phrase) as caught:
        load_mnist()
    assert caught.value.path == str(folder / name)
    assert "shipped with air is damaged" in str(caught.value) and "AIR_MNIST_DIR" in str(caught.value)


def test_a_truncated_shipped_file_is_caught_by_the_idx_checks_too(tmp_path, monkeypatch):
    # Were SHA256SUMS rewritten to match a damaged file, the gzip and idx checks would still name it.
    folder = shipped_copy(tmp_path / "shipped")
    truncated = gzip.compress(gzip.decompress((folder / TEST_LABELS).read_bytes())[:-3])
    replace_file(folder / TEST_LABELS, truncated)
    sums = (folder / data.CHECKSUMS).read_text().splitlines()
    sums = [f"{hashlib.sha256(truncated).hexdigest()}  {TEST_LABELS}" if line.endswith(TEST_LABELS) else line
            for line in sums]
    replace_file(folder / data.CHECKSUMS, "\n".join(sums).encode() + b"\n")
    monkeypatch.setattr(data.digits, "SHIPPED_DIR", folder)
    with pytest.raises(DataError, match="truncated: the header says 10000 = 10,000 bytes of data, but only 9,997"):
        load_mnist()


def test_a_data_error_survives_pickling():
    # A sweep's worker raises it in another process; the launcher must get the same DataError back.
    import pickle
    error = pickle.loads(pickle.dumps(DataError("/somewhere/x.gz", "missing file")))
    assert isinstance(error, DataError) and (error.path, error.problem) == ("/somewhere/x.gz", "missing file")
    assert str(error) == "/somewhere/x.gz: missing file"


# --- digit pools -------------------------------------------------------------------------------------------------


def test_pools_split_train_and_keep_test(tmp_path):
    train, test = write_mnist_folder(tmp_path)
    mnist = load_mnist(data_dir=tmp_path)
    pools = digit_pools(mnist)
    assert {k: len(v) for k, v in pools.items()} == {"train": 50, "val": 10, "test": 10}
    np.testing.assert_array_equal(pools["train"].images, train.images[:50])
    np.testing.assert_array_equal(pools["val"].images, train.images[50:])
    assert pools["test"] is mnist.test
    keys = [image_keys(pools[k]) for k in ("train", "val", "test")]
    assert len(keys[0] | keys[1] | keys[2]) == 70


def test_pools_of_the_full_mnist_have_the_documented_sizes(shipped):
    pools = digit_pools(shipped)
    assert (len(pools["train"]), len(pools["val"]), len(pools["test"])) == (50_000, 10_000, 10_000)
    np.testing.assert_array_equal(pools["train"].labels, shipped.train.labels[:50_000])
    np.testing.assert_array_equal(pools["val"].images, shipped.train.images[50_000:])
    assert pools["test"] is shipped.test


def test_pools_of_the_tests_synthetic_folder(mnist):
    # conftest's folder: 600 training digits (500 train, 100 validation) and 120 test digits.
    assert {k: len(v) for k, v in digit_pools(mnist).items()} == {"train": 500, "val": 100, "test": 120}


# --- scenes ------------------------------------------------------------------------------------------------------


def box_mask(scenes):
    """(n, H, W) bool: inside any of the scene's ground-truth boxes."""
    n, h, w = scenes.images.shape
    mask = np.zeros((n, h, w), bool)
    for i, k in zip(*np.nonzero(~np.isnan(scenes.boxes[..., 0]))):
        x0, y0, x1, y1 = scenes.boxes[i, k].astype(int)
        mask[i, y0:y1, x0:x1] = True
    return mask


def test_scene_invariants(pool):
    scenes = make_scenes(np.random.default_rng(0), pool, 3000)
    n = 3000
    assert len(scenes) == n
    assert scenes.images.shape == (n, 32, 32) and scenes.images.dtype == np.float32
    assert scenes.counts.dtype == np.int64 and scenes.boxes.dtype == np.float64 and scenes.labels.dtype == np.int64
    assert scenes.boxes.shape == (n, 2, 4) and scenes.labels.shape == (n, 2)
    assert scenes.images.min() >= 0 and scenes.images.max() <= 1
    share = np.bincount(scenes.counts, minlength=3) / n
    assert len(share) == 3 and np.all((share > 0.29) & (share < 0.38))

    present = ~np.isnan(scenes.boxes[..., 0])
    assert np.array_equal(present, ~np.isnan(scenes.boxes).any(-1))  # boxes are whole rows or NaN rows
    assert np.array_equal(present.sum(1), scenes.counts)
    assert np.array_equal(present, scenes.labels >= 0)
    assert np.array_equal(present, np.arange(2) < scenes.counts[:, None])  # present digits come first
    assert np.all(scenes.labels[~present] == -1) and np.all(scenes.labels[present] <= 9)

    boxes = scenes.boxes[present]
    assert np.array_equal(boxes, np.round(boxes))
    assert np.all(boxes[:, :2] >= 0) and np.all(boxes[:, 2:] <= 32)
    side = boxes[:, 2] - boxes[:, 0]
    assert np.array_equal(side, boxes[:, 3] - boxes[:, 1])
    assert side.min() == 12 and side.max() == 18

    mask = box_mask(scenes)
    assert np.all(scenes.images[~mask] == 0)  # no ink outside the boxes
    assert np.all(scenes.images[scenes.counts == 0] == 0)
    # Every digit leaves ink in its box (point-sampled bilinear can thin a "1" at 12 px, so no higher bar).
    for i, k in zip(*np.nonzero(present)):
        x0, y0, x1, y1 = scenes.boxes[i, k].astype(int)
        assert scenes.images[i, y0:y1, x0:x1].max() > 0.2


def test_scenes_paste_solid_digits_into_exactly_their_boxes():
    solid = Digits(np.full((1, 28, 28), 255, np.uint8), np.array([3]))
    scenes = make_scenes(np.random.default_rng(1), solid, 500, max_digits=3, dtype=np.float64)
    assert scenes.images.dtype == np.float64
    # Pixel-edge boxes: the ink is exactly 1 on the union of the boxes and 0 elsewhere, overlaps included.
    np.testing.assert_array_equal(scenes.images, box_mask(scenes).astype(np.float64))
    assert np.all(scenes.labels[scenes.labels >= 0] == 3)


def boxes_intersect(scenes):
    """Per scene, whether any two of its digit boxes share a pixel."""
    hit = np.zeros(len(scenes), bool)
    for i, j in itertools.combinations(range(scenes.boxes.shape[1]), 2):
        a, b = scenes.boxes[:, i], scenes.boxes[:, j]
        both = (scenes.labels[:, i] >= 0) & (scenes.labels[:, j] >= 0)
        hit |= both & (np.minimum(a[:, 2], b[:, 2]) > np.maximum(a[:, 0], b[:, 0])) \
            & (np.minimum(a[:, 3], b[:, 3]) > np.maximum(a[:, 1], b[:, 1]))
    return hit


def test_rejected_overlap_keeps_the_ink_of_digits_apart():
    # Solid digits pile ink wherever their boxes meet, so "rejected" must keep every pair of boxes apart,
    # while the seed's scenes ("allowed") let many of them cross.
    solid = Digits(np.full((1, 28, 28), 255, np.uint8), np.array([3]))
    kwargs = dict(n=400, max_digits=3, digit_size=(8, 10), dtype=np.float64)  # three always fit apart on 32 px
    crossed = make_scenes(np.random.default_rng(1), solid, **kwargs)
    apart = make_scenes(np.random.default_rng(1), solid, overlap="rejected", **kwargs)
    assert boxes_intersect(crossed).mean() > 0.2
    assert not boxes_intersect(apart).any()
    np.testing.assert_array_equal(apart.images, box_mask(apart).astype(np.float64))  # boxes still tell the ink
    np.testing.assert_array_equal(apart.counts, crossed.counts)


def grey_l_digit():
    """A 28x28 'digit' whose ink fills a corner of its box only: a stroke at 0.6 (two of them sum to 1.2) and a
    faint foot at 0.3 (on a stroke: 0.9, on another foot: 0.6); the upper right is empty."""
    image = np.zeros((1, 28, 28), np.uint8)
    image[0, 2:26, 2:8] = 153  # 0.6
    image[0, 20:26, 8:26] = 77  # 0.302
    return Digits(image, np.array([7]))


def ink_layers(scenes, source):
    """(n, K, H, W): each digit's own ink on the canvas, the source pasted at its box (28-px boxes: no resizing)."""
    n, k = scenes.boxes.shape[:2]
    size = scenes.images.shape[-1]
    layers = np.zeros((n, k, size, size))
    for i, j in zip(*np.nonzero(scenes.labels >= 0)):
        x0, y0, x1, y1 = scenes.boxes[i, j].astype(int)
        layers[i, j, y0:y1, x0:x1] = source * (1 / 255)
    return layers


def test_rejected_overlap_keeps_grey_ink_from_summing_above_one_but_lets_boxes_and_faint_ink_cross():
    # The rule is Pyro's: a position is redrawn while some pixel's two intensities sum above 1, nothing stricter.
    # Grey strokes pile to 1.2 (so a threshold above 1.2 would let them through), and most of each box is empty,
    # so boxes, and even a stroke and a faint foot (0.9), may share pixels (a rule rejecting any ink inside
    # another digit's box, or crossing boxes, would forbid that).
    digit = grey_l_digit()
    kwargs = dict(n=300, canvas_size=64, digit_size=(14, 14), counts=np.full(300, 2), dtype=np.float64)  # 28 px
    crossed = make_scenes(np.random.default_rng(5), digit, **kwargs)
    apart = make_scenes(np.random.default_rng(5), digit, overlap="rejected", **kwargs)
    assert np.all(apart.boxes[..., 2] - apart.boxes[..., 0] == 28)
    summed = lambda scenes: ink_layers(scenes, digit.images[0]).sum(axis=1).max(axis=(1, 2))
    assert (summed(crossed) > 1.1).mean() > 0.1, "the allowed scenes should pile strokes to 1.2 now and then"
    worst = summed(apart)
    assert worst.max() <= 1.0, f"rejected overlap left {np.sum(worst > 1.0)} scenes whose ink sums to {worst.max()}"
    layers = ink_layers(apart, digit.images[0])
    np.testing.assert_allclose(apart.images, layers.max(axis=1), rtol=0, atol=1e-12)  # the boxes tell the ink
    shared = np.any((layers[:, 0] > 0) & (layers[:, 1] > 0), axis=(1, 2))
    assert shared.mean() > 0.3, f"only {shared.mean():.0%} of the scenes let faint ink cross another digit's ink"
    assert boxes_intersect(apart).mean() > 0.6, "rejected overlap should still let boxes cross where ink does not pile"


def test_rejected_overlap_gives_up_politely_when_digits_cannot_fit_apart():
    # Two 32-px digits on a 32-px canvas must overlap: after PLACEMENT_TRIES draws the scene is still made.
    solid = Digits(np.full((1, 28, 28), 255, np.uint8), np.array([3]))
    scenes = make_scenes(np.random.default_rng(0), solid, 3, digit_size=(32, 32), counts=np.full(3, 2),
                         overlap="rejected")
    assert np.all(scenes.images == 1.0)


def test_a_full_size_digit_is_copied_unchanged(pool):
    # Canvas 28 scales (32, 32) to 28: corner-aligned interpolation is then the identity.
    scenes = make_scenes(np.random.default_rng(2), pool, 20, canvas_size=28, max_digits=1, digit_size=(32, 32),
                         counts=np.ones(20, np.int64), dtype=np.float64)
    assert np.all(scenes.boxes[:, 0] == [0, 0, 28, 28])
    for image, label in zip(scenes.images, scenes.labels[:, 0]):
        matches = np.flatnonzero(np.all(pool.images == np.round(image * 255).astype(np.uint8), axis=(1, 2)))
        assert len(matches) >= 1 and label in pool.labels[matches]
        assert np.allclose(image * 255, np.round(image * 255), atol=1e-9)


def test_bilinear_matrix_aligns_corners_and_preserves_constants():
    for size in (1, 5, 12, 18, 28, 40):
        m = data.bilinear_matrix(size)
        assert m.shape == (size, 28) and np.allclose(m.sum(1), 1) and m.min() >= 0
    m = data.bilinear_matrix(10)
    assert m[0, 0] == 1 and m[-1, -1] == 1
    assert np.allclose(m @ np.arange(28.0), np.arange(10) * 27 / 9)  # linear ramps are resampled exactly


def test_three_digits_and_a_larger_canvas(pool):
    scenes = make_scenes(np.random.default_rng(3), pool, 600, canvas_size=50, max_digits=3)
    assert scenes.images.shape == (600, 50, 50) and scenes.boxes.shape == (600, 3, 4)
    assert set(np.unique(scenes.counts)) == {0, 1, 2, 3}
    boxes = scenes.boxes[scenes.labels >= 0]
    side = boxes[:, 2] - boxes[:, 0]
    assert (side.min(), side.max()) == (19, 28) == data.digit_size_range(50, (12, 18))
    assert np.all(boxes[:, 2:] <= 50) and np.all(scenes.images[~box_mask(scenes)] == 0)


def test_scenes_are_determined_by_the_rng(pool):
    a = make_scenes(np.random.default_rng(7), pool, 50)
    b = make_scenes(np.random.default_rng(7), pool, 50)
    c = make_scenes(np.random.default_rng(8), pool, 50)
    for field in ("images", "counts", "boxes", "labels"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    assert not np.array_equal(a.images, c.images)


def test_given_counts_are_respected_and_empty_pools_allowed_without_digits(pool):
    counts = np.array([2, 0, 1, 2, 0])
    scenes = make_scenes(np.random.default_rng(4), pool, 5, counts=counts)
    np.testing.assert_array_equal(scenes.counts, counts)
    np.testing.assert_array_equal((scenes.labels >= 0).sum(1), counts)
    empty = Digits(np.zeros((0, 28, 28), np.uint8), np.zeros(0, np.int64))
    blank = make_scenes(np.random.default_rng(4), empty, 3, counts=np.zeros(3, np.int64))
    assert np.all(blank.images == 0) and np.all(blank.labels == -1)
    assert len(make_scenes(np.random.default_rng(4), pool, 0)) == 0


@pytest.mark.parametrize("kwargs, argument", [
    (dict(n=-1), "n"),
    (dict(n=2.5), "n"),
    (dict(n=True), "n"),
    (dict(max_digits=-1), "max_digits"),
    (dict(canvas_size=0), "canvas_size"),
    (dict(digit_size=(12, 40)), "digit_size"),
    (dict(digit_size=(18, 12)), "digit_size"),
    (dict(digit_size=(0, 12)), "digit_size"),
    (dict(counts=[1, 1]), "counts"),
    (dict(counts=[0, 1, 3, 0]), "counts"),
    (dict(counts=[0, 1, -1, 0]), "counts"),
    (dict(counts=[0.0, 1.0, 1.0, 0.0]), "counts"),
    (dict(dtype=np.int32), "dtype"),
    (dict(overlap="never"), "overlap"),
])
def test_make_scenes_rejects_bad_arguments(pool, kwargs, argument):
    args = dict(n=4) | kwargs
    with pytest.raises(ValueError, match=f"^{argument}:"):
        make_scenes(np.random.default_rng(0), pool, **args)


def test_make_scenes_needs_digits_when_scenes_hold_some():
    empty = Digits(np.zeros((0, 28, 28), np.uint8), np.zeros(0, np.int64))
    with pytest.raises(ValueError, match="^digits:.*empty"):
        make_scenes(np.random.default_rng(0), empty, 3, counts=np.array([0, 1, 0]))
    with pytest.raises(TypeError, match="rng"):
        make_scenes(np.random.RandomState(0), empty, 3)
