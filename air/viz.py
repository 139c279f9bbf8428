"""Figures and the training animation of AIR: training curves, attention boxes, reconstructions, decoded
windows, the count confusion matrix, example scenes, and a GIF of boxes and reconstructions during training.

Every picture follows the same conventions, so one can be read after another:
- images in gray with a fixed range vmin=0, vmax=1 (the data's own scale), nearest-pixel, square pixels;
  residuals (signed) in a diverging map fixed at -1 ... 1;
- one colour per step, the same in every figure (STEP_COLORS, matplotlib's tab10: step 0 blue, step 1
  orange, step 2 green); a step's box is solid when the step is present and dashed when it is not;
- ground-truth digit boxes in white, never a step colour;
- boxes in the pixel-edge coordinates air.infer and air.data use: an image spans [0, W] x [0, H].

matplotlib is imported only inside the functions that draw (a run without figures never loads it, and a command
starts about 0.8 s sooner), and only its object-oriented API with the Agg canvas: no pyplot, no global figure
registry, no display, and no change to the backend of a session (a notebook) that imports this module. Scenes are
picked deterministically (the first scenes of each count), so the figures of a run are the same every time they
are drawn.
"""
import json
import math
from pathlib import Path

import numpy as np

from air.checkpoint import read_checkpoint
from air.data import load_mnist
from air.metrics import evaluate
from air.model import infer
from air.schedules import steps_per_epoch, temperature
from air.train import build_datasets

# matplotlib's tab10, written out so the colours are known without importing matplotlib.
STEP_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
               "#17becf")
TRUTH_COLOR = "white"
ABSENT_STYLE = (0, (3, 2))  # dashes of an absent step's box: 3 points on, 2 off
DPI = 110
PANEL = 1.45  # side of one image panel, inches
FIGURES = ("training_curves", "attention", "reconstructions", "patches", "count_confusion", "training_scenes")
GIF_NAME = "training.gif"


def step_color(t):
    return STEP_COLORS[t % len(STEP_COLORS)]


# --- choosing scenes -------------------------------------------------------------------------------------------


def pick_scenes(counts, per_count):
    """Indices of the first `per_count` scenes of every count that occurs, ordered by count then position."""
    counts = np.asarray(counts)
    return [int(i) for c in np.unique(counts) for i in np.flatnonzero(counts == c)[:per_count]]


def _rows_by_count(counts, indices):
    """The picked scene indices grouped into one list per count, in order."""
    rows = {}
    for i in indices:
        rows.setdefault(int(counts[i]), []).append(i)
    return list(rows.values())


# --- drawing primitives ----------------------------------------------------------------------------------------


def figure(width, height):
    """A matplotlib Figure on an Agg canvas (no pyplot, no display)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # lazy: see the module docstring
    from matplotlib.figure import Figure
    fig = Figure(figsize=(width, height), dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def _suptitle(fig, text, fontsize=11):
    """A figure title 0.08 inch below the figure's top edge."""
    return fig.suptitle(text, fontsize=fontsize, y=1 - 0.08 / fig.get_figheight(), va="top")


def draw_step_boxes(ax, boxes, z_pres, linewidth=1.6, first_step=0, clip=None, gid=""):
    """Each step's box (T, 4) as a rectangle in its step colour, solid if z_pres[t] else dashed.

    Present steps are drawn above absent ones; `clip` (a patch) bounds them. Returns the rectangles in step order;
    step t's has gid "<gid>step<t>" (steps numbered from `first_step`).
    """
    from matplotlib.patches import Rectangle  # lazy: see the module docstring
    rectangles = []
    for t, ((x0, y0, x1, y1), present) in enumerate(zip(boxes, z_pres), start=first_step):
        rect = Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, edgecolor=step_color(t), linewidth=linewidth,
                         linestyle="-" if present else ABSENT_STYLE, zorder=3 if present else 2, gid=f"{gid}step{t}")
        ax.add_patch(rect)
        if clip is not None:
            rect.set_clip_path(clip)
        rectangles.append(rect)
    return rectangles


def draw_truth_boxes(ax, boxes, linewidth=1.2, clip=None, gid=""):
    """Ground-truth boxes (K, 4) in TRUTH_COLOR, NaN rows skipped; gid "<gid>truth". Returns the rectangles."""
    from matplotlib.patches import Rectangle  # lazy: see the module docstring
    rectangles = []
    for x0, y0, x1, y1 in boxes:
        if np.isnan(x0):
            continue
        rect = Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, edgecolor=TRUTH_COLOR, linewidth=linewidth,
                         zorder=3, gid=f"{gid}truth")
        ax.add_patch(rect)
        if clip is not None:
            rect.set_clip_path(clip)
        rectangles.append(rect)
    return rectangles


def _restyle_step_boxes(rectangles, boxes, z_pres, origin=(0.0, 0.0)):
    """Move and restyle rectangles made by draw_step_boxes (the GIF's frames reuse them)."""
    x, y = origin
    for rect, (x0, y0, x1, y1), present in zip(rectangles, boxes, z_pres):
        rect.set_bounds(x + x0, y + y0, x1 - x0, y1 - y0)
        rect.set_linestyle("-" if present else ABSENT_STYLE)
        rect.set_zorder(3 if present else 2)


class Board:
    """A grid of square image panels drawn on one Axes whose data units are the pixels of a size x size canvas.

    Panel (r, c) has its top-left corner at origin(r, c); gaps and margins are given in inches, so a figure's
    layout is fixed and nothing depends on a layout solver. One Axes for the whole grid draws several times
    faster than one Axes per panel, which matters for the 40-panel figures at the end of every run.
    """

    def __init__(self, n_rows, n_cols, size, panel=PANEL, gaps=0.08, row_gap=0.3, top=0.6, bottom=0.1, left=0.1,
                 right=0.1, min_width=0.0):
        # gaps: inches between columns, one number or one per gap (n_cols - 1); row_gap: between rows.
        # min_width: a narrow grid is centred in a figure this wide, so a title or legend still fits.
        self.size = size
        self.unit = panel / size  # inches per canvas pixel
        col_gaps = np.broadcast_to(np.asarray(gaps, dtype=float), (n_cols - 1,)) / self.unit
        self.x = np.concatenate([[0.0], np.cumsum(size + col_gaps)])
        self.y = np.arange(n_rows) * (size + row_gap / self.unit)
        data_w, data_h = self.x[-1] + size, self.y[-1] + size
        width, height = left + data_w * self.unit + right, top + data_h * self.unit + bottom
        if width < min_width:
            left, right, width = left + 0.5 * (min_width - width), right + 0.5 * (min_width - width), min_width
        self.fig = figure(width, height)
        self.ax = self.fig.add_axes((left / width, bottom / height, data_w * self.unit / width,
                                     data_h * self.unit / height))
        self.ax.set_xlim(0, data_w)
        self.ax.set_ylim(data_h, 0)
        self.ax.set_axis_off()

    def origin(self, r, c):
        return float(self.x[c]), float(self.y[r])

    def image(self, r, c, image, cmap="gray", vmin=0.0, vmax=1.0, gid=None):
        """An image of any resolution stretched over panel (r, c), nearest-pixel."""
        x, y = self.origin(r, c)
        return self.ax.imshow(image, cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest", aspect="auto",
                              extent=(x, x + self.size, y + self.size, y), gid=gid)

    def clip(self, r, c):
        from matplotlib.patches import Rectangle  # lazy: see the module docstring
        x, y = self.origin(r, c)
        return Rectangle((x, y), self.size, self.size, transform=self.ax.transData)

    def step_boxes(self, r, c, boxes, z_pres, first_step=0, gid="", linewidth=1.6):
        x, y = self.origin(r, c)
        return draw_step_boxes(self.ax, np.asarray(boxes) + [x, y, x, y], z_pres, linewidth, first_step,
                               clip=self.clip(r, c), gid=gid)

    def truth_boxes(self, r, c, boxes, gid=""):
        x, y = self.origin(r, c)
        return draw_truth_boxes(self.ax, np.asarray(boxes) + [x, y, x, y], clip=self.clip(r, c), gid=gid)

    def frame(self, r, c, t, present):
        """Outline panel (r, c) in step t's colour, dashed if the step is absent."""
        from matplotlib.patches import Rectangle  # lazy: see the module docstring
        x, y = self.origin(r, c)
        self.ax.add_patch(Rectangle((x, y), self.size, self.size, fill=False, edgecolor=step_color(t),
                                    linewidth=1.6, linestyle="-" if present else ABSENT_STYLE, zorder=4))

    def title(self, r, c, text, color="black", fontsize=8.5):
        x, y = self.origin(r, c)
        return self.ax.text(x + 0.5 * self.size, y - 0.05 / self.unit, text, ha="center", va="bottom",
                            fontsize=fontsize, color=color, linespacing=1.1)

    def row_label(self, r, text, fontsize=8.5):
        x, y = self.origin(r, 0)
        return self.ax.text(x - 0.06 / self.unit, y + 0.5 * self.size, text, ha="right", va="center",
                            rotation=90, fontsize=fontsize, multialignment="center")

    def note(self, r, c, text):
        x, y = self.origin(r, c)
        return self.ax.text(x + 0.5 * self.size, y + 0.5 * self.size, text, ha="center", va="center",
                            fontsize=8, color="0.6")

    def step_legend(self, n_steps, bottom=0.05):
        """The key to step colours and line styles, `bottom` inches above the figure's lower edge."""
        from matplotlib.lines import Line2D  # lazy: see the module docstring
        handles = [Line2D([], [], color=step_color(t), linewidth=2, label=f"step {t}") for t in range(n_steps)]
        handles += [Line2D([], [], color="0.35", linewidth=1.6, label="present"),
                    Line2D([], [], color="0.35", linewidth=1.6, linestyle=ABSENT_STYLE, label="absent")]
        return self.fig.legend(handles=handles, loc="lower center",
                               bbox_to_anchor=(0.5, bottom / self.fig.get_figheight()), ncol=len(handles),
                               fontsize=8, frameon=False, handlelength=2.2, columnspacing=1.2, borderaxespad=0,
                               borderpad=0)


def _count_title(true_count, inferred):
    return f"true {true_count}, inferred {inferred}"


def _count_label(true_count, inferred):
    return f"true {true_count}\ninferred {inferred}"


# --- the six figures -------------------------------------------------------------------------------------------


CURVE = dict(marker="o", markersize=3, linewidth=1.5)  # every curve of training_curves
SECOND_CURVE = dict(color="0.55", linestyle="--")  # a panel's second curve, beside its first in black


def training_curves(history, best_epoch=None, chance=None):
    """Loss terms, KL terms (z_where's too, when the history has it), the temperature and KL schedules, and the
    validation scores, per epoch.

    `history` is metrics.json's list of per-epoch records. The best epoch is a dotted vertical line (gid
    "best-epoch") in every panel and a star on the validation accuracy; `chance` is a gray line there.
    """
    epochs = np.array([h["epoch"] for h in history])
    fig = figure(10.5, 5.8)
    fig.subplots_adjust(left=0.04, right=0.99, bottom=0.08, top=0.88, wspace=0.22, hspace=0.48)
    axes = fig.subplots(2, 3)
    _loss_panel(axes[0, 0], epochs, history)
    _kl_panel(axes[0, 1], epochs, history)
    _schedule_panel(axes[0, 2], epochs, history)
    _count_accuracy_panel(axes[1, 0], epochs, history, best_epoch, chance)
    _mse_panel(axes[1, 1], epochs, history)
    _presence_panel(axes[1, 2], epochs, history)
    for ax in axes.flat:
        _epoch_axes(ax, best_epoch)
    _fit_left_margin(fig, axes[:, 0])
    best = f"; dotted line: best validation epoch ({best_epoch})" if best_epoch is not None else ""
    _suptitle(fig, f"Training curves{best}")
    return fig


def _series(history, key):
    """history's `key`, one float per epoch: (E,)."""
    return np.array([h[key] for h in history], dtype=float)


def _per_epoch(history, key):
    """history's `key`, a list per epoch (per count, per step): (E, K)."""
    return _series(history, key).reshape(len(history), -1)


def _loss_panel(ax, epochs, history):
    """The training loss (the negative ELBO) and its reconstruction term."""
    ax.plot(epochs, _series(history, "loss"), color="black", label="loss (negative ELBO)", **CURVE)
    ax.plot(epochs, _series(history, "recon"), label="reconstruction", **SECOND_CURVE, **CURVE)
    ax.set_title("training loss per scene")
    ax.legend(loc="upper right")


def _kl_panel(ax, epochs, history):
    """The KL terms, unweighted: z_what's, z_pres's and a stochastic z_where's; on a log axis when all are
    positive."""
    # lazy: see the module docstring
    from matplotlib.ticker import FormatStrFormatter, LogLocator, NullFormatter
    kls = [_series(history, "kl_what"), _series(history, "kl_pres")]
    ax.plot(epochs, kls[0], color="black", label="KL z_what", **CURVE)
    ax.plot(epochs, kls[1], label="KL z_pres", **SECOND_CURVE, **CURVE)
    # A stochastic z_where's KL (the objective's fourth term); a history written before train() recorded it has
    # none, and a run resumed across that change has it from some epoch on (NaN before: a gap in the curve).
    kl_where = np.array([h.get("kl_where", np.nan) for h in history], dtype=float)
    if np.isfinite(kl_where).any():
        kls.append(kl_where)
        ax.plot(epochs, kl_where, color="0.3", linestyle="-.", label="KL z_where", **CURVE)
    drawn = np.concatenate(kls)
    if np.all(drawn[np.isfinite(drawn)] > 0):
        # Terms an order of magnitude apart: a log axis, labelled with plain numbers.
        ax.set_yscale("log")
        ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.yaxis.set_major_formatter(FormatStrFormatter("%g"))
        ax.yaxis.set_minor_formatter(NullFormatter())
    ax.set_title("KL terms per scene (unweighted)")
    # Room above the curves for the legend: a third term (z_where's) runs between the other two, where a legend
    # at the side would hide it.
    _room_above(ax, 0.2 if len(kls) == 2 else 0.3)  # one row of legend or two
    ax.legend(loc="upper center", ncol=2, columnspacing=1.0)


def _schedule_panel(ax, epochs, history):
    """The temperature and the KL warm-up scale at the end of each epoch."""
    ax.plot(epochs, _series(history, "temperature"), color="black", label="temperature", **CURVE)
    ax.plot(epochs, _series(history, "kl_scale"), label="KL warm-up scale", **SECOND_CURVE, **CURVE)
    ax.set_ylim(0, 1.08)
    ax.set_title("schedules (at the end of each epoch)")
    ax.legend(loc="lower left")


def _count_accuracy_panel(ax, epochs, history, best_epoch, chance):
    """Validation count accuracy, overall and per true count, with chance and a star at the best epoch."""
    ax.plot(epochs, _series(history, "val_count_acc"), color="black", label="all", **CURVE)
    per_class = _per_epoch(history, "val_per_class_acc")
    styles = ("--", ":", "-.", (0, (5, 1, 1, 1)), (0, (1, 3)))
    for c in range(per_class.shape[1]):
        ax.plot(epochs, per_class[:, c], color="0.45", linestyle=styles[c % len(styles)], linewidth=1.3,
                label=f"count {c}")
    if chance is not None:
        ax.axhline(chance, color="0.75", linewidth=1.2, zorder=0, label="chance")
    if best_epoch is not None and best_epoch in epochs:
        best_acc = _series(history, "val_count_acc")[list(epochs).index(best_epoch)]
        ax.plot([best_epoch], [best_acc], marker="*", markersize=12, color="black", linestyle="none", zorder=4)
    # Room above 1 for the legend, so it never hides a curve.
    ax.set_ylim(-0.03, 1.42)
    ax.set_yticks(np.linspace(0, 1, 6))
    ax.set_title("validation count accuracy")
    ax.legend(loc="upper center", ncol=3, columnspacing=1.0)


def _mse_panel(ax, epochs, history):
    """Validation reconstruction MSE per pixel."""
    ax.plot(epochs, _series(history, "val_recon_mse"), color="black", label="per pixel", **CURVE)
    ax.set_title("validation reconstruction MSE")
    ax.legend(loc="upper right")


def _presence_panel(ax, epochs, history):
    """Each step's mean presence probability on the validation scenes, in its step colour."""
    pres = _per_epoch(history, "val_mean_pres_prob")
    for t in range(pres.shape[1]):
        ax.plot(epochs, pres[:, t], color=step_color(t), label=f"step {t}", **CURVE)
    ax.set_ylim(-0.03, 1.42)
    ax.set_yticks(np.linspace(0, 1, 6))
    ax.set_title("validation mean presence probability")
    ax.legend(loc="upper center", ncol=pres.shape[1])


def _epoch_axes(ax, best_epoch):
    """What every panel of training_curves shares: whole epochs on x, the best epoch's dotted line, a light grid,
    small ticks and a frameless legend."""
    # lazy: see the module docstring
    from matplotlib.ticker import MaxNLocator
    if best_epoch is not None:
        ax.axvline(best_epoch, color="0.3", linestyle=":", linewidth=1.2, zorder=0, gid="best-epoch")
    ax.set_xlabel("epoch", fontsize=9)
    # Whole epochs only, even when the view holds one epoch (MaxNLocator(integer=True) alone falls back to
    # fractional ticks when fewer than two whole numbers are in view).
    ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
    ax.tick_params(labelsize=8)
    ax.title.set_fontsize(10)
    ax.grid(alpha=0.25, linewidth=0.6)
    legend = ax.get_legend()
    legend.set_frame_on(False)
    for text in legend.get_texts():
        text.set_fontsize(7.5)


def _room_above(ax, fraction):
    """Raise the top of ax's y view so that its upper `fraction` holds no data, on a linear or a log axis."""
    scale = ax.yaxis.get_transform()
    low, high = ax.get_ylim()
    bottom, top = scale.transform(np.array([low, high]))
    ax.set_ylim(low, float(scale.inverted().transform(np.array([top + fraction / (1 - fraction) * (top - bottom)]))[0]))


def _fit_left_margin(fig, left_axes, margin=0.05):
    """Widen the figure's left margin until the tick labels of `left_axes` lie `margin` inches inside its edge.

    The loss's labels are as wide as its values: a Gaussian likelihood's negative loss ("−1290") is wider than
    the seed's ("14"), and a fixed margin cut its minus sign off. Measuring costs a layout of two axes' ticks,
    not a draw.
    """
    renderer = fig.canvas.get_renderer()
    overhang = margin * fig.dpi - min(ax.get_tightbbox(renderer).x0 for ax in left_axes)  # display pixels
    if overhang > 0:
        fig.subplots_adjust(left=fig.subplotpars.left + overhang / (fig.dpi * fig.get_figwidth()))


def attention_figure(params, config, scenes, per_count=4, title="Attention steps on validation scenes"):
    """The picked scenes (one row per true count) with every step's box, the true and inferred count above.

    Scene i's image has gid "scene<i>" and its boxes "scene<i>/step<t>".
    """
    indices = pick_scenes(scenes.counts, per_count)
    out = infer(params, config, scenes.images[indices])
    rows = _rows_by_count(scenes.counts, indices)
    board = Board(len(rows), max(map(len, rows)), config.canvas_size, top=0.62, bottom=0.4, min_width=5.0)
    k = 0
    for r, row in enumerate(rows):
        for c, i in enumerate(row):
            board.image(r, c, scenes.images[i], gid=f"scene{i}")
            board.step_boxes(r, c, out["boxes"][k], out["z_pres"][k], gid=f"scene{i}/")
            board.title(r, c, _count_title(scenes.counts[i], out["count"][k]))
            k += 1
    _suptitle(board.fig, title)
    board.step_legend(config.max_steps)
    return board.fig


def _picked_and_inferred(params, config, scenes, per_count):
    """The picked scenes' indices, their images, and air.infer's reading of them."""
    indices = pick_scenes(scenes.counts, per_count)
    images = scenes.images[indices]
    return indices, images, infer(params, config, images)


def reconstruction_figure(params, config, scenes, per_count=2):
    """Per picked scene: the input, the reconstruction, each step's gated contribution and the residual."""
    indices, images, out = _picked_and_inferred(params, config, scenes, per_count)
    t_max = config.max_steps
    board = Board(len(indices), 3 + t_max, config.canvas_size, gaps=0.08, row_gap=0.08, top=0.62, left=0.5,
                  right=0.95)
    for r, i in enumerate(indices):
        board.image(r, 0, images[r])
        board.image(r, 1, out["recon"][r])
        for t in range(t_max):
            board.image(r, 2 + t, out["z_pres"][r, t] * out["canvases"][r, t])
            board.frame(r, 2 + t, t, out["z_pres"][r, t])
            if not out["z_pres"][r, t]:
                board.note(r, 2 + t, "absent")
        residual = board.image(r, 2 + t_max, images[r] - out["recon"][r], cmap="RdBu_r", vmin=-1.0, vmax=1.0)
        board.row_label(r, _count_label(scenes.counts[i], out["count"][r]))
    heads = ["input", "reconstruction"] + [f"step {t}" for t in range(t_max)] + ["residual"]
    for c, head in enumerate(heads):
        board.title(0, c, head, color=step_color(c - 2) if 2 <= c < 2 + t_max else "black", fontsize=9.5)
    # The residual's colour bar: 0.12 inch right of the residual column, half the figure's image height.
    box = board.ax.get_position()
    fig_w = board.fig.get_figwidth()
    bar = board.fig.colorbar(residual, cax=board.fig.add_axes((box.x1 + 0.12 / fig_w, box.y0 + 0.25 * box.height,
                                                               0.1 / fig_w, 0.5 * box.height)))
    bar.set_label("input − reconstruction", fontsize=8)
    bar.ax.tick_params(labelsize=7)
    _suptitle(board.fig, "Reconstructions: each step's contribution, gated by its presence")
    return board.fig


def patch_figure(params, config, scenes, per_count=2):
    """Per picked scene and step: the decoded window (P x P) beside the canvas the transformer renders it to."""
    indices, images, out = _picked_and_inferred(params, config, scenes, per_count)
    t_max = config.max_steps
    # Each step's window and its placement sit close together; a wider gap separates the steps.
    gaps = [0.22 if c % 2 == 0 else 0.06 for c in range(2 * t_max)]
    board = Board(len(indices), 1 + 2 * t_max, config.canvas_size, panel=1.3, gaps=gaps, row_gap=0.08, top=0.8,
                  bottom=0.4, left=0.5, min_width=6.0)
    for r, i in enumerate(indices):
        board.image(r, 0, images[r])
        board.step_boxes(r, 0, out["boxes"][r], out["z_pres"][r])
        board.row_label(r, _count_label(scenes.counts[i], out["count"][r]))
        for t in range(t_max):
            present = out["z_pres"][r, t]
            board.image(r, 1 + 2 * t, out["windows"][r, t])
            board.frame(r, 1 + 2 * t, t, present)
            board.image(r, 2 + 2 * t, out["canvases"][r, t])
            board.step_boxes(r, 2 + 2 * t, out["boxes"][r, t:t + 1], [present], first_step=t)
    p = config.window_size
    board.title(0, 0, "scene", fontsize=9.5)
    for t in range(t_max):
        board.title(0, 1 + 2 * t, f"step {t}\n{p}x{p} window", color=step_color(t), fontsize=9)
        board.title(0, 2 + 2 * t, f"step {t}\nplaced", color=step_color(t), fontsize=9)
    _suptitle(board.fig, "Decoded windows and where the transformer puts them (ungated)")
    board.step_legend(t_max)
    return board.fig


def confusion_figure(confusions):
    """Count confusion matrices, one panel per entry of `confusions` (title -> rows true count, columns inferred
    count), coloured by the fraction of each row, with the count in each cell and each row's accuracy beside it."""
    n = len(confusions)
    n_true, n_pred = np.shape(next(iter(confusions.values())))
    cell, gap = 0.55, 1.5  # inches: one matrix cell; between panels (the accuracy column and the next labels)
    fig = figure(0.45 + n * n_pred * cell + (n - 1) * gap + 0.7, 1.1 + n_true * cell)
    width, height = fig.get_figwidth(), fig.get_figheight()
    fig.subplots_adjust(left=0.45 / width, right=1 - 0.7 / width, bottom=0.5 / height, top=1 - 0.6 / height,
                        wspace=gap / (n_pred * cell))
    axes = fig.subplots(1, n, squeeze=False)[0]
    for ax, (title, matrix) in zip(axes, confusions.items()):
        matrix = np.asarray(matrix)
        totals = matrix.sum(axis=1)
        fraction = matrix / np.maximum(totals, 1)[:, None]
        ax.imshow(fraction, cmap="Purples", vmin=0.0, vmax=1.0)
        for i in range(n_true):
            for j in range(n_pred):
                ax.text(j, i, f"{matrix[i, j]}", ha="center", va="center", fontsize=9,
                        color="white" if fraction[i, j] > 0.55 else "black")
            hit = matrix[i, i] if i < n_pred else 0
            ax.text(n_pred - 0.35, i, f"{hit / totals[i]:.2f}" if totals[i] else "–", ha="left", va="center",
                    fontsize=9)
        ax.text(n_pred - 0.35, -0.62, "accuracy", ha="left", va="bottom", fontsize=8, color="0.3")
        correct = sum(matrix[i, i] for i in range(min(n_true, n_pred)))
        total = int(matrix.sum())
        ax.set_title(f"{title}: {total} scene{'s' if total != 1 else ''},\n"
                     f"count accuracy {correct / max(total, 1):.3f}",
                     fontsize=9.5, pad=14)
        ax.set_xticks(range(n_pred))
        ax.set_yticks(range(n_true))
        ax.set_xlabel("inferred count", fontsize=9)
        ax.set_ylabel("true count", fontsize=9)
        ax.tick_params(length=0, labelsize=9)
        for spine in ax.spines.values():
            spine.set_visible(False)
    return fig


def scenes_figure(scenes, per_count=4, title="Training scenes with ground-truth boxes"):
    """The picked scenes (one row per count) with their ground-truth boxes, count and digit labels above."""
    indices = pick_scenes(scenes.counts, per_count)
    rows = _rows_by_count(scenes.counts, indices)
    board = Board(len(rows), max(map(len, rows)), scenes.images.shape[-1], top=0.62, min_width=5.0)
    for r, row in enumerate(rows):
        for c, i in enumerate(row):
            board.image(r, c, scenes.images[i], gid=f"scene{i}")
            board.truth_boxes(r, c, scenes.boxes[i], gid=f"scene{i}/")
            labels = ", ".join(str(v) for v in scenes.labels[i] if v >= 0)
            board.title(r, c, f"count {scenes.counts[i]}" + (f" ({labels})" if labels else ""))
    _suptitle(board.fig, title)
    return board.fig


# --- a run folder's figures ------------------------------------------------------------------------------------


def figure_paths(run_dir):
    """Where write_figures puts each figure: name -> RUN/figures/<name>.png."""
    folder = Path(run_dir) / "figures"
    return {name: folder / f"{name}.png" for name in FIGURES}


# The scenes a figure can show, by the name of their field in air.train.Datasets, and what its titles call them.
SPLITS = {"val": "validation", "test": "test"}


def draw_figures(params, config, datasets, metrics=None, split="val"):
    """The six figures (name -> matplotlib Figure) of `params` on `datasets` (an air.train.Datasets).

    The model is drawn on the scenes of `split` ("val" or "test"), and the titles say which. `metrics` (a run's
    metrics.json, or train()'s result) gives the training curves and the confusion matrices; without it there are
    no curves and the confusion matrix is scored here on the scenes of `split`.
    """
    return {name: draw() for name, draw in _figure_makers(params, config, datasets, metrics, split).items()}


def _figure_makers(params, config, datasets, metrics, split="val"):
    """name -> a function drawing that figure, in FIGURES order."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    metrics = metrics or {}
    history = metrics.get("history")
    scenes = getattr(datasets, split)
    if "confusion" in metrics:
        confusions = {"validation": metrics["val_confusion"], "test": metrics["confusion"]}
    else:
        confusions = {SPLITS[split]: evaluate(params, config, scenes)["confusion"]}
    makers = {
        "training_curves": lambda: training_curves(history, metrics.get("best_epoch"),
                                                   chance=1 / (config.max_digits + 1)),
        "attention": lambda: attention_figure(params, config, scenes,
                                              title=f"Attention steps on {SPLITS[split]} scenes"),
        "reconstructions": lambda: reconstruction_figure(params, config, scenes),
        "patches": lambda: patch_figure(params, config, scenes),
        "count_confusion": lambda: confusion_figure(confusions),
        "training_scenes": lambda: scenes_figure(datasets.train),
    }
    if not history:
        del makers["training_curves"]
    return makers


def write_figures(run_dir, datasets=None):
    """Draw the figures of a run folder into RUN/figures/<name>.png and return their paths.

    The model is the run's best-validation parameters; curves and confusion matrices come from metrics.json
    (from the checkpoint's history while a run has no metrics.json yet). `datasets` are the run's scenes; by
    default they are rebuilt from its config, as training built them.
    """
    run = Path(run_dir)
    state = read_checkpoint(run)
    params, config = state["best_params"], state["config"]
    metrics_path = run / "metrics.json"
    if metrics_path.exists():
        metrics = json.loads(metrics_path.read_text())
    else:
        metrics = {"history": state["history"], "best_epoch": state["best"].get("epoch")}
    if datasets is None:
        datasets = build_datasets(config, load_mnist())
    return save_figures(figure_paths(run)["attention"].parent, params, config, datasets, metrics)


def save_figures(folder, params, config, datasets, metrics=None, split="val"):
    """Draw the figures of draw_figures into folder/<name>.png (made if missing) and return their paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    # One figure at a time, saved as drawn: every layout is fixed in inches with margins that hold its text
    # (the tests check that nothing crosses a figure's edge), and cropping to a tight box would cost a second
    # layout pass, 40% more time.
    for name, draw in _figure_makers(params, config, datasets, metrics, split).items():
        draw().savefig(folder / f"{name}.png", dpi=DPI)
        written.append(folder / f"{name}.png")
    return written


# --- the training animation ------------------------------------------------------------------------------------


def write_training_gif(path, snapshots, images, true_counts, config, fps=6):
    """An animated GIF (matplotlib's Pillow writer) of the snapshots: the scenes with each step's box above,
    the reconstructions below, and the step, epoch and temperature in the title; one frame per snapshot.

    Returns the Board it drew on (its figure holds the last frame), so a caller can map canvas pixels to the
    GIF's pixels.
    """
    if not snapshots:
        raise ValueError("no snapshots to animate")
    from matplotlib.animation import PillowWriter  # lazy: see the module docstring
    n = len(images)
    # A fixed layout, as for the figures: every frame has the same size and the margins hold the text.
    board = Board(2, n, config.canvas_size, panel=1.25, gaps=0.08, row_gap=0.1, top=0.62, bottom=0.34, left=0.3,
                  right=0.08, min_width=5.0)
    first = snapshots[0]
    boxes, titles, recons = [], [], []
    for k in range(n):
        board.image(0, k, images[k])
        boxes.append(board.step_boxes(0, k, first["boxes"][k], first["z_pres"][k], linewidth=1.4))
        titles.append(board.title(0, k, "", fontsize=8))
        recons.append(board.image(1, k, first["recon"][k]))
    board.row_label(0, "attention", fontsize=9)
    board.row_label(1, "reconstruction", fontsize=9)
    heading = _suptitle(board.fig, "", fontsize=10)
    board.step_legend(config.max_steps)
    per_epoch = steps_per_epoch(config)
    total = config.n_epochs * per_epoch

    writer = PillowWriter(fps=fps)
    with writer.saving(board.fig, str(path), dpi=DPI):
        for snap in snapshots:
            step = snap["step"]
            for k in range(n):
                _restyle_step_boxes(boxes[k], snap["boxes"][k], snap["z_pres"][k], board.origin(0, k))
                titles[k].set_text(_count_title(true_counts[k], snap["count"][k]))
                recons[k].set_data(snap["recon"][k])
            heading.set_text(f"AIR training: step {step}/{total}, epoch {math.ceil(step / per_epoch)}, "
                             f"temperature {temperature(config, step - 1, total):.2f}")
            writer.grab_frame()
    return board


def search_figure(images, true_counts, amortised, searched, n_scenes=8):
    """Scenes whose count the search changed (air.infer with search): per row the input, the guide's explanation
    and the searched one, each with its windows, titled with its count; the row says which was right and the
    margin in nats by which the model's evidence preferred the searched count over the best other. At most
    n_scenes: half of them fixed scenes, the rest broken ones, then changed between two wrong counts, then more
    fixed ones where too few others changed."""
    changed = np.flatnonzero(amortised["count"] != searched["count"])
    right_before = amortised["count"][changed] == true_counts[changed]
    right_after = searched["count"][changed] == true_counts[changed]
    fixed, others = changed[right_after], np.concatenate([changed[right_before], changed[~right_after & ~right_before]])
    first = min(len(fixed), max(n_scenes - len(others), (n_scenes + 1) // 2))
    rows = np.concatenate([fixed[:first], others[:n_scenes - first]]).astype(np.int64)
    size = images.shape[-1]
    board = Board(max(1, len(rows)), 3, size, gaps=0.08, row_gap=0.3, top=0.75, left=0.75, right=0.1,
                  min_width=3.6)
    for r, i in enumerate(rows):
        board.image(r, 0, images[i])
        for c, out in ((1, amortised), (2, searched)):
            board.image(r, c, out["recon"][i])
            board.step_boxes(r, c, out["boxes"][i], out["z_pres"][i], linewidth=1.2)
            board.title(r, c, f"{'guide' if c == 1 else 'search'}: {out['count'][i]}",
                        color="green" if out["count"][i] == true_counts[i] else "red")
        verdict = "fixed" if searched["count"][i] == true_counts[i] else \
            "broken" if amortised["count"][i] == true_counts[i] else "still wrong"
        board.title(r, 0, f"true {true_counts[i]}")
        board.row_label(r, f"{verdict}\n{searched['margin'][i]:+.1f} nats")
    if not len(rows):
        board.note(0, 1, "the search changed no count")
    fixed = int(np.sum(right_after & ~right_before))
    broken = int(np.sum(right_before & ~right_after))
    _suptitle(board.fig, f"Counts the search changed: {fixed} fixed, {broken} broken\n"
                         f"(margin: the searched count's estimated log p(x, n) over the next best)", fontsize=9.5)
    return board.fig


def models_figure(models, images, true_counts, title):
    """The same scenes read by several models: a row a model (label, params, config), a column a scene, each with
    the model's windows (dashed: absent steps) and its count, green where right and red where wrong."""
    size = images.shape[-1]
    board = Board(len(models), len(images), size, top=0.75, bottom=0.4, left=0.45, min_width=5.0)
    for r, (label, params, config) in enumerate(models):
        out = infer(params, config, images)
        for c, image in enumerate(images):
            board.image(r, c, image)
            board.step_boxes(r, c, out["boxes"][c], out["z_pres"][c], linewidth=1.2)
            board.title(r, c, f"counted {out['count'][c]}",
                        color="green" if out["count"][c] == true_counts[c] else "red")
        board.row_label(r, label)
    _suptitle(board.fig, title, fontsize=9.5)
    board.step_legend(max(config.max_steps for _, _, config in models))
    return board.fig
