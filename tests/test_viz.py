"""Figures and the training GIF, read back: sizes, frame counts, ink, nothing past a figure's edge, and every box
drawn where air.infer (or the ground truth) puts it, checked on the artists and on the PNG's pixels."""
import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import air
from air import train as air_train
from air import viz
from air.guide import head_columns
from air.model import init_params
from experiments import cli, make_gif, visualize
from tests.conftest import TINY

ROOT = Path(__file__).resolve().parents[1]
TINY_FLAGS = ["--n-train", "64", "--n-val", "32", "--n-test", "32", "--n-epochs", "3", "--batch-size", "16"]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, mnist):
    """A finished tiny run folder (3 epochs of 4 steps), its config and its scenes."""
    config = dataclasses.replace(air.preset("seed"), **TINY)
    datasets = air_train.build_datasets(config, mnist)
    out = tmp_path_factory.mktemp("viz") / "run"
    air_train.train(config, datasets, out_dir=out)
    return out, config, datasets


def steered_params(config):
    """Parameters whose presence and where heads ignore the scene: step 0 present at the upper left, the other
    steps absent at their own places, each box inside the canvas and apart from the others."""
    params = init_params(np.random.default_rng(3), config)
    width = 4 + 2 * config.what_dim
    columns = head_columns(config)
    places = [(-0.8, -0.35, -0.35), (-1.0, 0.45, 0.3), (-1.2, 0.3, -0.55)]  # (log s, tx, ty) per step
    for t in range(config.max_steps):
        start = t * width
        for cols in (columns["pres_logit"], columns["log_scale"], columns["shift"]):
            params["heads"]["w"][:, start + cols.start:start + cols.stop] = 0.0
        params["heads"]["b"][start] = 6.0 if t == 0 else -6.0
        params["heads"]["b"][start + 1:start + 4] = places[t]
    return params


def rgb(color):
    from matplotlib.colors import to_rgb
    return np.array(to_rgb(color)) * 255


def nearest_color_distance(pixels, row, col, color, radius=2):
    """The smallest distance between `color` (0-255 RGB) and a pixel within `radius` of (row, col)."""
    patch = pixels[row - radius:row + radius + 1, col - radius:col + radius + 1, :3].astype(float)
    return np.sqrt(((patch - rgb(color)) ** 2).sum(axis=-1)).min()


def pixel_of(ax, x, y, height):
    """The (row, col) in a saved PNG of data point (x, y) of `ax` (figure saved at its own dpi, uncropped)."""
    px, py = ax.transData.transform((x, y))
    return int(round(height - py)), int(round(px))


def assert_readable_png(path, min_size=(300, 200)):
    image = np.asarray(Image.open(path).convert("RGB"))
    assert image.shape[1] >= min_size[0] and image.shape[0] >= min_size[1], f"{path.name}: {image.shape}"
    assert image.std() > 20, f"{path.name} is nearly blank"
    packed = (image[..., 0].astype(np.int64) << 16) | (image[..., 1].astype(np.int64) << 8) | image[..., 2]
    assert len(np.unique(packed)) > 50, f"{path.name} has almost no distinct colours"


def test_pick_scenes_is_fixed_and_covers_every_count():
    counts = np.array([2, 0, 0, 1, 2, 0, 2, 1])
    assert viz.pick_scenes(counts, 2) == [1, 2, 3, 7, 0, 4]
    assert viz.pick_scenes(counts, 1) == [1, 3, 0]


def test_attention_boxes_are_drawn_where_infer_puts_them(tiny_run, tmp_path):
    _, config, datasets = tiny_run
    params = steered_params(config)
    scenes = datasets.val
    out = air.infer(params, config, scenes.images)
    assert (out["z_pres"] == [1, 0, 0]).all()
    fig = viz.attention_figure(params, config, scenes)
    ax = fig.axes[0]
    artists = {a.get_gid(): a for a in ax.get_children() if a.get_gid()}
    picked = viz.pick_scenes(scenes.counts, 4)
    assert set(np.unique(scenes.counts[picked])) == set(np.unique(scenes.counts))
    for i in picked:
        left, _, _, top = artists[f"scene{i}"].get_extent()
        for t in range(config.max_steps):
            rect = artists[f"scene{i}/step{t}"]
            x0, y0, x1, y1 = out["boxes"][i, t]
            assert rect.get_xy() == pytest.approx((left + x0, top + y0), abs=1e-4)
            assert (rect.get_width(), rect.get_height()) == pytest.approx((x1 - x0, y1 - y0), abs=1e-4)
            assert np.allclose(rect.get_edgecolor()[:3], rgb(viz.step_color(t)) / 255)
            assert (rect.get_linestyle() == "-") == bool(out["z_pres"][i, t])

    # The PNG: step 0's solid box shows in step 0's colour halfway along each of its edges, and nothing
    # of that colour is at the centre of its box.
    path = tmp_path / "attention.png"
    fig.savefig(path, dpi=viz.DPI)
    pixels = np.asarray(Image.open(path).convert("RGB"))
    for i in picked:
        left, _, _, top = artists[f"scene{i}"].get_extent()
        x0, y0, x1, y1 = out["boxes"][i, 0] + [left, top, left, top]
        edges = [((x0 + x1) / 2, y0), ((x0 + x1) / 2, y1), (x0, (y0 + y1) / 2), (x1, (y0 + y1) / 2)]
        for x, y in edges:
            assert nearest_color_distance(pixels, *pixel_of(ax, x, y, pixels.shape[0]), viz.step_color(0)) < 40
        centre = pixel_of(ax, (x0 + x1) / 2, (y0 + y1) / 2, pixels.shape[0])
        assert nearest_color_distance(pixels, *centre, viz.step_color(0)) > 100


def test_ground_truth_boxes_are_the_scenes_boxes(tiny_run):
    _, _, datasets = tiny_run
    scenes = datasets.train
    fig = viz.scenes_figure(scenes)
    artists = fig.axes[0].get_children()
    images = {a.get_gid(): a for a in artists if a.get_gid() and "/" not in a.get_gid()}
    truth = [a for a in artists if (a.get_gid() or "").endswith("/truth")]
    picked = viz.pick_scenes(scenes.counts, 4)
    assert len(truth) == scenes.counts[picked].sum() > 0
    for i in picked:
        left, _, _, top = images[f"scene{i}"].get_extent()
        drawn = sorted(tuple(np.round(np.subtract(r.get_xy(), (left, top)), 6)) + (r.get_width(), r.get_height())
                       for r in truth if r.get_gid() == f"scene{i}/truth")
        boxes = scenes.boxes[i, :scenes.counts[i]]
        assert drawn == sorted((x0, y0, x1 - x0, y1 - y0) for x0, y0, x1, y1 in boxes)
        assert all(np.allclose(r.get_edgecolor()[:3], 1.0) for r in truth)


def test_training_curves_mark_the_best_epoch(tiny_run):
    out, _, _ = tiny_run
    metrics = json.loads((out / "metrics.json").read_text())
    fig = viz.training_curves(metrics["history"], best_epoch=2, chance=1 / 3)
    marks = [line for ax in fig.axes for line in ax.get_lines() if line.get_gid() == "best-epoch"]
    assert len(marks) == len(fig.axes) == 6
    assert all(list(line.get_xdata()) == [2, 2] for line in marks)


def handmade_history(n_epochs, loss=14.0, **extra):
    """metrics.json's history of an n-epoch run, every term constant but the loss and reconstruction, which fall
    by 10 an epoch from `loss`; `extra` (key -> one value an epoch) adds terms."""
    return [{"epoch": e, "step": 4 * e, "temperature": 0.5, "kl_scale": 1.0, "pres_prior": [0.5, 0.4, 0.2],
             "loss": loss - 10 * e, "recon": loss - 12 - 10 * e, "kl_what": 6.0, "kl_pres": 0.5,
             "val_count_acc": 0.6, "val_recon_mse": 0.014, "val_per_class_acc": [1.0, 0.6, 0.2],
             "val_mean_pres_prob": [0.8, 0.4, 0.2], "val_mean_scale": [0.4, 0.4, 0.4], "wall_s": float(e),
             **{k: v[e - 1] for k, v in extra.items()}} for e in range(1, n_epochs + 1)]


def visible_tick_labels(fig, axis):
    """The drawn tick labels of `axis` (those inside its view), with their extents in display pixels."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    low, high = sorted(axis.get_view_interval())
    return [(label.get_text(), label.get_window_extent(renderer)) for tick, label in
            zip(axis.get_majorticklocs(), axis.get_majorticklabels()) if low <= tick <= high and label.get_text()]


def test_training_curves_show_the_minus_sign_of_a_negative_loss():
    # The paper preset's Gaussian likelihood makes the loss negative, about -500 to -1,300 a scene: its tick
    # labels are wider than a positive loss's and must still lie inside the figure, minus sign included.
    fig = viz.training_curves(handmade_history(8, loss=-1200.0), best_epoch=5)
    labels = visible_tick_labels(fig, fig.axes[0].yaxis)
    assert len(labels) >= 3 and all(text.startswith("\N{MINUS SIGN}") for text, _ in labels)
    assert min(extent.x0 for _, extent in labels) >= 0
    bbox = fig.get_tightbbox(fig.canvas.get_renderer())
    assert bbox.x0 >= 0 and bbox.x1 <= fig.get_figwidth()


@pytest.mark.parametrize("n_epochs", [1, 2, 3])
def test_training_curves_of_a_short_run_tick_whole_epochs(n_epochs):
    fig = viz.training_curves(handmade_history(n_epochs), best_epoch=1)
    for ax in fig.axes:
        assert [text for text, _ in visible_tick_labels(fig, ax.xaxis)] == [str(e) for e in range(1, n_epochs + 1)]


def kl_lines(fig):
    """label -> line of the KL panel."""
    return {line.get_label(): line for line in fig.axes[1].get_lines() if not line.get_label().startswith("_")}


def test_training_curves_draw_a_stochastic_z_wheres_kl():
    fig = viz.training_curves(handmade_history(3, kl_where=[2.0, 1.5, 1.2]))
    lines = kl_lines(fig)
    assert set(lines) == {"KL z_what", "KL z_pres", "KL z_where"}
    assert list(lines["KL z_where"].get_ydata()) == [2.0, 1.5, 1.2]
    # The legend sits above every curve (a third curve runs mid-panel, where the legend once was).
    ax = fig.axes[1]
    fig.canvas.draw()
    legend = ax.get_legend()
    assert "KL z_where" in [text.get_text() for text in legend.get_texts()]
    highest = max(ax.transData.transform(line.get_xydata())[:, 1].max() for line in lines.values())
    assert legend.get_window_extent(fig.canvas.get_renderer()).y0 > highest


def test_training_curves_without_kl_where_draw_two_kl_terms():
    assert set(kl_lines(viz.training_curves(handmade_history(3)))) == {"KL z_what", "KL z_pres"}


def test_training_curves_of_a_history_where_kl_where_arrives_late():
    # A run resumed after the history learnt kl_where: the older epochs have none, and are a gap in its curve.
    history = handmade_history(3, kl_where=[0.0, 1.5, 1.2])
    del history[0]["kl_where"]
    line = kl_lines(viz.training_curves(history))["KL z_where"]
    assert np.isnan(line.get_ydata()[0]) and list(line.get_ydata()[1:]) == [1.5, 1.2]


def test_confusion_figure_shows_counts_and_per_count_accuracy():
    fig = viz.confusion_figure({"test": [[5, 1, 0, 0], [2, 6, 2, 0], [0, 0, 0, 0]]})
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert texts.count("0") == 7 and {"5", "1", "2", "6"} <= set(texts)
    assert {"0.83", "0.60", "–"} <= set(texts)  # 5/6, 6/10, a count with no scenes; (5 + 6) / 16 in all
    assert "accuracy 0.688" in fig.axes[0].get_title()


def test_every_figure_fits_inside_its_canvas(tiny_run):
    out, config, datasets = tiny_run
    params, _ = air.load_checkpoint(out)
    metrics = json.loads((out / "metrics.json").read_text())
    figures = viz.draw_figures(params, config, datasets, metrics)
    assert list(figures) == list(viz.FIGURES)
    for name, fig in figures.items():
        fig.canvas.draw()
        bbox = fig.get_tightbbox(fig.canvas.get_renderer())
        width, height = fig.get_size_inches()
        assert bbox.x0 >= 0 and bbox.y0 >= 0 and bbox.x1 <= width and bbox.y1 <= height, f"{name}: {bbox}"


@pytest.mark.parametrize("split, name", [("val", "validation"), ("test", "test")])
def test_figures_name_the_scenes_they_show(tiny_run, split, name):
    out, config, datasets = tiny_run
    params, _ = air.load_checkpoint(out)
    figures = viz.draw_figures(params, config, datasets, split=split)  # no metrics: the confusion is scored here
    assert figures["attention"]._suptitle.get_text() == f"Attention steps on {name} scenes"
    scenes = getattr(datasets, split)
    assert figures["count_confusion"].axes[0].get_title().startswith(f"{name}: {len(scenes)} scenes")
    wrong = "validation" if split == "test" else "test"
    for figure in figures.values():
        texts = [figure._suptitle.get_text() if figure._suptitle else ""] + [ax.get_title() for ax in figure.axes]
        assert not any(wrong in text for text in texts), texts


def test_visualize_writes_six_readable_pngs(tiny_run, mnist_dir, monkeypatch, capsys):
    out, _, _ = tiny_run
    monkeypatch.setenv("AIR_MNIST_DIR", str(mnist_dir))
    assert cli.run(visualize.main, [str(out), "--quiet"]) == 0
    assert capsys.readouterr().out == ""
    written = sorted((out / "figures").glob("*.png"))
    assert [p.stem for p in written] == sorted(viz.FIGURES)
    for path in written:
        assert_readable_png(path)


@pytest.mark.parametrize("make_run, problem", [(lambda tmp: tmp / "missing", "no checkpoint found"),
                                               (lambda tmp: tmp, "no checkpoint found")])
def test_visualize_names_a_bad_run_in_one_line(tmp_path, capsys, make_run, problem):
    status = cli.run(visualize.main, [str(make_run(tmp_path))])
    err = capsys.readouterr().err.strip()
    assert status == 2 and len(err.splitlines()) == 1 and problem in err and "RUN" in err


def test_make_gif_writes_the_run_and_an_animation(tmp_path, mnist_dir, monkeypatch):
    monkeypatch.setenv("AIR_MNIST_DIR", str(mnist_dir))
    out = tmp_path / "gif"
    argv = TINY_FLAGS + ["--out", str(out), "--snapshot-every", "5", "--fps", "5", "--quiet", "--no-figures"]
    assert cli.run(make_gif.main, argv) == 0
    assert {p.name for p in out.iterdir()} >= {"config.json", "metrics.json", "checkpoint.npz", "training.gif"}
    gif = Image.open(out / "training.gif")
    assert gif.n_frames == 3  # 12 steps: snapshots at steps 5, 10 and the last, 12
    assert gif.info["duration"] == 200 and gif.info["loop"] == 0
    frames = []
    for k in range(gif.n_frames):
        gif.seek(k)
        frames.append(np.asarray(gif.convert("RGB"), dtype=float))
    assert gif.size[0] > 500 and gif.size[1] > 200
    assert all(frame.std() > 20 for frame in frames)
    assert all(np.abs(a - b).max() > 0 for a, b in zip(frames, frames[1:]))


def test_gif_frames_draw_each_snapshots_boxes(tiny_run, tmp_path):
    _, config, datasets = tiny_run
    params = steered_params(config)
    picked = viz.pick_scenes(datasets.val.counts, 2)
    images, counts = datasets.val.images[picked], datasets.val.counts[picked]
    total = 12
    on_step, snapshots = air_train.snapshot_recorder(config, images, 6, total)
    for step in range(1, total + 1):
        on_step(step, lambda: params)
    assert [s["step"] for s in snapshots] == [6, 12]
    # The second snapshot moves every box 3 pixels right and 2 down: its frame must follow.
    snapshots[1] = dict(snapshots[1], boxes=snapshots[1]["boxes"] + [3.0, 2.0, 3.0, 2.0])
    board = viz.write_training_gif(tmp_path / "t.gif", snapshots, images, counts, config, fps=4)
    gif = Image.open(tmp_path / "t.gif")
    assert gif.n_frames == 2
    for k, snap in enumerate(snapshots):
        gif.seek(k)
        pixels = np.asarray(gif.convert("RGB"))
        for scene in range(len(images)):
            left, top = board.origin(0, scene)
            x0, y0, x1, y1 = snap["boxes"][scene, 0] + [left, top, left, top]
            for x, y in [((x0 + x1) / 2, y0), ((x0 + x1) / 2, y1), (x0, (y0 + y1) / 2), (x1, (y0 + y1) / 2)]:
                row, col = pixel_of(board.ax, x, y, pixels.shape[0])
                assert nearest_color_distance(pixels, row, col, viz.step_color(0)) < 45


@pytest.mark.parametrize("flag", ["--snapshot-every", "--fps"])
def test_make_gif_refuses_non_positive_settings(tmp_path, capsys, flag):
    status = cli.run(make_gif.main, [flag, "0", "--out", str(tmp_path / "gif")])
    err = capsys.readouterr().err.strip()
    assert status == 2 and flag in err and "must be positive" in err
    assert not (tmp_path / "gif").exists()


def test_importing_viz_does_not_load_matplotlib():
    code = "import sys, air.viz, experiments.train; assert 'matplotlib' not in sys.modules, 'matplotlib loaded'"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60,
                          env={"PYTHONPATH": str(ROOT), "PATH": ""})
    assert done.returncode == 0, done.stderr
