"""Write the notebooks from the cell sources below: python notebooks/build.py [--execute] [NAME ...]

The notebooks are kept as source here so that a change to them is a readable diff; --execute runs each one
with nbclient and stores its outputs (tests/test_notebooks.py runs them on a tiny configuration). NAMEs
(01_walkthrough, ...) pick notebooks; by default all are written. Every notebook imports from air/ and
experiments/ and never redefines model code, and removes the temporary folders it makes.

--execute writes only outputs the committed notebooks may show: it refuses the tests' tiny mode, and it
refuses 03_ablations without the committed ablation results (ABLATION_RESULTS), so a stand-in's numbers can
never be published as the ablation's. It writes nothing unless every notebook it ran passes.
"""
import argparse
import copy
import os
import sys
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
# experiments/sweeps/ablations.toml's results.csv, committed (relative to the repository root).
ABLATION_RESULTS = "docs/results/ablations/results.csv"
# Printed by notebook 03 in the tests' tiny mode, on every output that comes from its stand-in sweep.
STAND_IN = "STAND-IN: not the published ablation results"

SETUP = '''import os, sys
from pathlib import Path
ROOT = Path.cwd() if (Path.cwd() / "air").is_dir() else Path.cwd().parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("OMP_NUM_THREADS", "1")
# TINY is set by the tests (AIR_NOTEBOOK_TINY=1) to run every cell in seconds on a synthetic data folder.
TINY = os.environ.get("AIR_NOTEBOOK_TINY") == "1"
import numpy as np
import matplotlib.pyplot as plt
# Figures show inline from the first cell on, air.viz's too (they are drawn without pyplot, and the inline
# backend would otherwise learn to show a returned Figure only once pyplot has made one).
%matplotlib inline
import air'''

WALKTHROUGH = [
    new_markdown_cell("""# 01 · Walkthrough: data, model, a short training, the figures

Attend, Infer, Repeat explains a scene as a short list of objects. For each step t it infers whether there
is another object (`z_pres`), where it is (`z_where` = log-scale and shift of an attention window) and what
it looks like (`z_what`); a decoder draws each object in a small window and a spatial transformer pastes it
onto the canvas. This notebook opens with the trained `paper` model that ships in the package, then walks
through the pieces in `air/` on the seed's 32x32 Multi-MNIST task."""),
    new_code_cell(SETUP),
    new_markdown_cell("""## A trained model, before anything is trained

`air.pretrained("paper")` loads the `paper` preset's trained parameters and config from the package (no
network, no training); `air.shipped.card` holds how it was trained and what it scored at export. Here it reads
50x50 test scenes drawn from MNIST test digits: every step's window (solid while the step is present), the
true and inferred count, and each step's share of the reconstruction."""),
    new_code_cell('''from air import shipped
from air.data import digit_pools, load_mnist
from air.train import training_scenes
from air.viz import attention_figure, reconstruction_figure
trained, trained_config = air.pretrained("paper")
card = shipped.card("paper")
own, pyro = card["test"]["own"], card["test"]["pyro"]
print(f"paper: trained by `{card['command']}` in {card['wall_minutes']} min; test count accuracy at export "
      f"{own['count_acc']:.3f} on its own scenes, {pyro['count_acc']:.3f} on Pyro's ({pyro['searched_acc']:.3f} "
      f"by search)")
test_digits = digit_pools(load_mnist())["test"]
test = training_scenes(trained_config, np.random.default_rng(0), test_digits, 500, every_count=True)
found = air.infer(trained, trained_config, test.images)
print(f"here, on 500 new test scenes: count accuracy {np.mean(found['count'] == test.counts):.3f}")
attention_figure(trained, trained_config, test, per_count=4, title="The shipped paper model on test scenes")'''),
    new_code_cell("reconstruction_figure(trained, trained_config, test, per_count=1)"),
    new_markdown_cell("""## Data

`air.data.load_mnist` reads the full MNIST that ships with the package (or the folder `AIR_MNIST_DIR` names),
with no network. The pools for training, validation and test are disjoint; scenes hold
0-2 digits of 12-18 px placed at random."""),
    new_code_cell('''from air.data import digit_pools, load_mnist, make_scenes
from air.viz import scenes_figure
mnist = load_mnist()
print(mnist.source)
pools = digit_pools(mnist)
scenes = make_scenes(np.random.default_rng(0), pools["train"], 64)
print("images", scenes.images.shape, "counts", np.bincount(scenes.counts))
scenes_figure(scenes, per_count=3)'''),
    new_markdown_cell("""## The model is pure functions over a parameter pytree

`init_params` returns nested dicts of arrays; `loss` is the negative ELBO as a deterministic function of the
parameters, a batch, its noise and the training schedule's values (here those of the last step, the default),
so `autograd.grad(air.loss)` is the whole gradient (the transformer and the Gumbel-sigmoid relaxation
included)."""),
    new_code_cell('''import autograd
from air.tree import leaves
config = air.preset("seed")
params = air.init_params(np.random.default_rng(0), config)
for path, array in leaves(params):
    print(f"{path:<16} {str(array.shape):<14} {array.dtype}")
noise = air.sample_noise(np.random.default_rng(1), config, 8)
batch = scenes.images[:8]
print("terms", {k: round(float(v), 2) for k, v in air.elbo_terms(params, batch, noise, config).items()})
grads = autograd.grad(air.loss)(params, batch, noise, config)
print("gradient norm per group", {k: round(float(np.sqrt(sum((g ** 2).sum() for _, g in leaves(v)))), 3)
                                  for k, v in grads.items()})'''),
    new_markdown_cell("""## A short training run

`air.train.train` runs Adam with the seed's schedule, scores the validation scenes every epoch and keeps the
best checkpoint. The full seed run (8 epochs, 1,500 scenes) takes about 3 s on one CPU core."""),
    new_code_cell('''import dataclasses, tempfile
from air.train import build_datasets, train
config = air.preset("seed")
if TINY:
    config = dataclasses.replace(config, n_train=64, n_val=32, n_test=32, n_epochs=2, batch_size=16)
datasets = build_datasets(config, mnist)
scratch = tempfile.TemporaryDirectory(prefix="air-walkthrough-")  # removed by the notebook's last cell
run_dir = Path(scratch.name)
metrics = train(config, datasets, out_dir=run_dir)
print(f"best validation count accuracy {metrics['best_val_count_acc']:.3f} (epoch {metrics['best_epoch']}), "
      f"test {metrics['test_count_acc']:.3f}, {metrics['wall_s']:.1f} s")'''),
    new_markdown_cell("""## What it learned

`air.infer` gives the count, the boxes and the reconstruction of each scene; `air.viz` draws the six figures
that `python -m experiments.train` writes into every run folder."""),
    new_code_cell('''params, config = air.load_checkpoint(run_dir)
out = air.infer(params, config, datasets.test.images[:6])
print("true counts    ", datasets.test.counts[:6])
print("inferred counts", out["count"])
from air import viz
paths = viz.write_figures(run_dir, datasets=datasets)
print("\\n".join(str(p.name) for p in paths))'''),
    new_code_cell('''from IPython.display import Image, display
for name in ("attention", "training_curves"):
    found = [p for p in paths if name in p.name]
    if found:
        display(Image(filename=str(found[0]), width=640))'''),
    new_markdown_cell("""The run folder was temporary, and the last cell removes it (the figures above are stored in the
notebook). `python -m experiments.train --preset seed --out runs/seed` trains the same run into a folder that
stays."""),
    new_code_cell("scratch.cleanup()"),
]

GRADIENTS = [
    new_markdown_cell("""# 02 · Gradients: autograd, finite differences, and the hand-derived path

Nothing in `air/` writes a backward pass: autograd differentiates the whole loss. Here we check that
gradient three ways: against central finite differences (per parameter group, and as a function of the step
size), against the hand-derived backward pass kept in `tests/hand_gradient.py`, and near the pixel grid,
where the bilinear transformer is only piecewise smooth."""),
    new_code_cell(SETUP),
    new_markdown_cell("""## Finite differences per parameter group

`air.gradcheck.problem` fixes the noise and moves the initial point off the ReLU kinks of a zero-bias start;
`check_gradients` compares random unit directions and single coordinates of each group. This is what
`python -m experiments.gradcheck --preset NAME` prints."""),
    new_code_cell('''import dataclasses
from air.data import digit_pools, load_mnist, make_scenes
from air.gradcheck import check_gradients, problem, step_size_curve
config = air.preset("seed")
if TINY:
    config = dataclasses.replace(config, encoder_hidden=(16,), decoder_hidden=12, what_dim=4)
images = make_scenes(np.random.default_rng(0), digit_pools(load_mnist())["train"], 4, dtype=np.float64).images
f, g, theta, layout = problem(config, images)
checks = check_gradients(f, g, theta, layout, eps=1e-4)
for c in checks:
    print(f"{c.group:<8} {c.kind:<10} {c.where:<22} autograd {c.analytic:+.8e}  differences {c.numeric:+.8e}  "
          f"rel. error {c.rel_error:.1e}")'''),
    new_markdown_cell("""## The V-shaped curve

A central difference has a truncation error of order eps^2 and a rounding error of order ulp |L| / eps;
their sum is smallest near eps ~ 1e-5 to 1e-4 in float64. Agreement at the bottom of the V, many orders below
either arm, is the evidence that the analytic gradient is right."""),
    new_code_cell('''steps = np.logspace(-1, -11, 21)
curves = step_size_curve(f, g, theta, layout, steps)
fig, ax = plt.subplots(figsize=(6, 4))
for group, errors in curves.items():
    ax.loglog(steps, np.maximum(errors, 1e-17), "o-", markersize=3, label=group)
ax.set_xlabel("step eps"); ax.set_ylabel("relative error"); ax.legend();'''),
    new_markdown_cell("""## Against the hand-derived backward pass

`tests/hand_gradient.py` derives the seed objective's gradient by hand in plain numpy, from the math rather
than from `air`'s code. The two agree to rounding."""),
    new_code_cell('''from air.tree import Layout
from tests.hand_gradient import loss_and_grad
config64 = dataclasses.replace(config, dtype="float64")
params = air.init_params(np.random.default_rng(3), config64)
noise = air.sample_noise(np.random.default_rng(4), config64, 4)
import autograd
schedule = air.schedules.fixed(config64, temperature=0.7)
auto = autograd.grad(air.loss)(params, images, noise, config64, schedule)
value, hand = loss_and_grad(params, images, noise, config64, 0.7)
lay = Layout(params)
a, h = lay.flatten(auto), lay.flatten(hand)
print(f"loss {value:.6f} vs {float(air.loss(params, images, noise, config64, schedule)):.6f}")
print(f"max |autograd - hand| / max |hand| = {np.abs(a - h).max() / np.abs(h).max():.1e}")'''),
    new_markdown_cell("""## The transformer near the pixel grid

The bilinear (tent-kernel) sampler is linear between pixel centres, so the loss is piecewise smooth in
`z_where`: its derivative jumps where a sample position crosses a pixel centre. autograd returns the
derivative of the piece it is on; a central difference whose step straddles a crossing mixes two pieces.
Below, the loss as a function of the horizontal shift of step 0, and both derivatives."""),
    new_code_cell('''import autograd.numpy as anp
from air.transformer import window_to_image
window = np.random.default_rng(5).random((1, 16, 16))
target = window_to_image(window, np.array([-0.7]), np.array([[0.05, 0.0]]), 32)

def energy(tx):
    canvas = window_to_image(window, np.array([-0.7]), anp.stack([tx, 0.0 * tx])[None, :], 32)
    return anp.sum((canvas - target) ** 2)

shifts = np.linspace(0.0, 0.12, 241 if not TINY else 61)
values = [float(energy(t)) for t in shifts]
slopes = [float(autograd.grad(energy)(t)) for t in shifts]
differences = [(energy(t + 1e-3) - energy(t - 1e-3)) / 2e-3 for t in shifts]
fig, (top, bottom) = plt.subplots(2, 1, figsize=(6, 5), sharex=True)
top.plot(shifts, values); top.set_ylabel("squared error")
bottom.plot(shifts, slopes, label="autograd"); bottom.plot(shifts, differences, "--", label="differences, eps 1e-3")
bottom.set_xlabel("tx of the window"); bottom.set_ylabel("d / d tx"); bottom.legend();'''),
]

ABLATIONS = [
    new_markdown_cell("""# 03 · Ablations: the effect of each switch

`python -m experiments.sweep experiments/sweeps/ablations.toml` trains the `best` preset with one switch at a
time turned back to the seed's choice, over several seeds, and writes `results.csv`; the sweep's file is
committed as `""" + ABLATION_RESULTS + """`. This notebook reads that file and plots each switch. To
read another sweep's file, set `AIR_ABLATION_RESULTS` to its path (relative to the repository root, or
absolute). Without the file the notebook stops with an error: it never shows other numbers in its place."""),
    new_code_cell(SETUP),
    new_code_cell('''import csv, tempfile
from experiments import cli, sweep
if not TINY:
    results = (ROOT / os.environ.get("AIR_ABLATION_RESULTS", "''' + ABLATION_RESULTS + '''")).resolve()
    if not results.is_file():
        raise FileNotFoundError(f"{results}: no ablation results. Copy the ablation sweep's results.csv there "
                                "(python -m experiments.sweep experiments/sweeps/ablations.toml writes "
                                "runs/sweeps/ablations/results.csv), or set AIR_ABLATION_RESULTS to a results.csv.")
    source = str(results.relative_to(ROOT.resolve()) if results.is_relative_to(ROOT.resolve()) else results)
    with open(results) as f:
        rows = list(csv.DictReader(f))
else:
    # The tests' tiny mode only: a few seconds' stand-in (the seed preset with two estimators, one epoch, one
    # seed) that runs the sweep and its results.csv through the cells below. Its scores mean nothing, and say so.
    source = "a stand-in sweep (''' + STAND_IN + ''')"
    print(f"{'=' * 100}\\n''' + STAND_IN + '''. The tests' tiny mode (AIR_NOTEBOOK_TINY=1) runs a one-epoch "
          f"sweep in their place; its scores mean nothing.\\n{'=' * 100}")
    with tempfile.TemporaryDirectory(prefix="air-ablations-") as folder:
        spec = Path(folder) / "tiny.toml"
        spec.write_text('presets = ["seed"]\\nseeds = [0]\\n[base]\\nn_train = 32\\nn_val = 16\\nn_test = 16\\n'
                        'n_epochs = 1\\nbatch_size = 16\\n[grid]\\npres_estimator = ["relaxed", "enumerate"]\\n')
        if cli.run(sweep.main, [str(spec), "--out", str(Path(folder) / "out"), "--jobs", "1"]) != 0:
            raise RuntimeError("the stand-in sweep failed")
        with open(Path(folder) / "out" / "results.csv") as f:
            rows = list(csv.DictReader(f))
print(f"{len(rows)} runs from {source}")'''),
    new_markdown_cell("""Every column that is not a score or bookkeeping is a swept field; a run's value in it is what
that run changed (empty where the run kept the preset's value)."""),
    new_code_cell('''bookkeeping = set(sweep.METRICS) | {"run", "preset", "seed", "skipped"}
fields = [k for k in rows[0] if k not in bookkeeping and len({r[k] for r in rows}) > 1]
def label(row):
    changed = [f"{k}={row[k]}" for k in fields if row[k]]
    return ", ".join(changed) or f"{row['preset']} as is"
groups = {}
for row in rows:
    if row["status"] == "complete":
        groups.setdefault(label(row), []).append(row)
names = sorted(groups, key=lambda n: -np.mean([float(r["test_count_acc"]) for r in groups[n]]))
print(source)
for name in names:
    accs = [float(r["test_count_acc"]) for r in groups[name]]
    walls = [float(r["wall_s"]) for r in groups[name]]
    spread = f"{np.mean(accs):.3f} ± {np.std(accs):.3f} over {len(accs)} seed(s)"
    print(f"{name:<48} acc {spread}, {np.mean(walls):.0f} s")'''),
    new_code_cell('''fig, (left, right) = plt.subplots(1, 2, figsize=(10, 0.5 * len(names) + 1.5), sharey=True)
for i, name in enumerate(names):
    accs = [float(r["test_count_acc"]) for r in groups[name]]
    walls = [float(r["wall_s"]) for r in groups[name]]
    left.barh(i, np.mean(accs), color="#9ecae1"); left.plot(accs, [i] * len(accs), "o", color="#08519c")
    right.barh(i, np.mean(walls), color="#fdd0a2"); right.plot(walls, [i] * len(walls), "o", color="#a63603")
left.set_yticks(range(len(names))); left.set_yticklabels(names, fontsize=8); left.invert_yaxis()
left.set_xlabel("test count accuracy"); right.set_xlabel("wall time (s)"); left.set_xlim(0, 1)
fig.suptitle(source, fontsize=9, color="#a50f15" if TINY else "black")
fig.tight_layout();'''),
]

# experiments.downstream's results on the shipped paper model, committed (relative to the repository root).
DOWNSTREAM_RESULTS = "docs/results/downstream/downstream.csv,docs/results/downstream_pixels/downstream.csv"

DOWNSTREAM = [
    new_markdown_cell("""# 04 · Downstream: what AIR's latents are good for

Eslami et al. (2016) ask whether AIR's scene representation makes other tasks easy: a small network on the
inferred latents learns (a) the sum of the digits in a scene and (b) whether they are in ascending order, from
far fewer labelled scenes than a network on pixels. `python -m experiments.downstream` runs that experiment on
a frozen AIR (the shipped `paper` model by default). This notebook builds the features, trains one readout
live, and then shows the full experiment's committed results (`docs/results/downstream/` and
`docs/results/downstream_pixels/`).

The tasks, as the command defines them: **sum2**, the sum of the labels of a two-digit scene (0-18), the
paper's task; **sum**, the same sum on scenes of 0-2 digits (an empty scene sums to 0); **order**, on
two-digit scenes, whether the left digit (by the centres of the digits' boxes) is smaller than the right one
(a tie is not ascending); and **digit**, the label of a one-digit scene, which the paper does not have: it is
the ceiling of the other three, each of which needs every digit of a scene right."""),
    new_code_cell(SETUP),
    new_markdown_cell("""## Features from a frozen AIR

`air.readouts.air_features` runs `air.infer` and lays out, per scene: the inferred count (one-hot), then one
slot per step holding a presence flag, `z_where` (log s, tx, ty) and the posterior mean of `z_what` (50 numbers).
Present steps are sorted left to right by tx and absent ones come last, zeroed, so slot 0 is always the leftmost
object."""),
    new_code_cell('''from air import readouts
from air.data import digit_pools, load_mnist
from air.viz import attention_figure
params, config = air.pretrained("paper")
pools = digit_pools(load_mnist())
n_labelled = 100 if TINY else 1000
train = readouts.task_scenes("sum2", config, pools["train"], n_labelled, np.random.default_rng(0))
test = readouts.task_scenes("sum2", config, pools["test"], 500, np.random.default_rng(1))
(y_train, n_classes), (y_test, _) = readouts.task_targets("sum2", train), readouts.task_targets("sum2", test)
x_train, spread_train = readouts.air_features(params, config, train.images)
x_test, _ = readouts.air_features(params, config, test.images)
print(f"{len(x_train)} labelled scenes, {x_train.shape[1]} features each; {len(x_test)} test scenes")
slots = x_test[:, config.max_steps + 1:].reshape(len(x_test), config.max_steps, -1)
i = 0
print(f"test scene {i}: digits {sorted(int(v) for v in test.labels[i] if v >= 0)}, sum {y_test[i]}")
for t, slot in enumerate(slots[i]):
    print(f"  slot {t}: present {slot[0]:.0f}  z_where ({slot[1]:+.2f}, {slot[2]:+.2f}, {slot[3]:+.2f})  "
          f"|z_what| {np.linalg.norm(slot[4:]):.1f}")
attention_figure(params, config, test, per_count=3, title="What the features are read from")'''),
    new_markdown_cell("""## One readout, trained live

The object readout is one small MLP (512 hidden units) that maps a slot's `z_where` and `z_what` to a
distribution over the ten digits, shared by every slot; the scene's sum distribution is the convolution of
its present slots' distributions (an absent slot adds 0). It never sees a digit label, only the sums. It
trains on latents drawn from the guide's posterior (`spread`, the posterior's standard deviations), not on
their means. Beside it, the same-size MLP on the raw pixels. Both train the experiment's way: Adam for 100
passes (at most 8,000 steps), keeping the step that scores best on a held-out tenth of the labelled scenes."""),
    new_code_cell('''steps = readouts.n_steps(n_labelled, 100, 8000)
objects = readouts.fit("objects", "sum2", x_train, y_train, n_classes, 0, steps, config.max_steps,
                       spread=spread_train)
flat = lambda images: images.reshape(len(images), -1)
pixels = readouts.fit("mlp", "sum2", flat(train.images), y_train, n_classes, 0, steps, config.max_steps)
print(f"sum of two digits, {n_labelled} labelled scenes, up to {steps} steps (kept {objects.steps} and "
      f"{pixels.steps}): "
      f"AIR objects {readouts.accuracy(objects, x_test, y_test):.3f}, "
      f"pixels {readouts.accuracy(pixels, flat(test.images), y_test):.3f} on {len(y_test)} test scenes")
predicted = np.argmax(objects.scores(x_test[:8]), axis=1)
fig, axes = plt.subplots(1, 8, figsize=(12, 1.9))
for ax, image, truth, guess in zip(axes, test.images, y_test, predicted):
    ax.imshow(image, cmap="gray", vmin=0, vmax=1)
    ax.set_title(f"sum {truth}: read {guess}", fontsize=8, color="black" if truth == guess else "#a50f15")
    ax.axis("off")
fig.tight_layout()'''),
    new_markdown_cell("""## The full experiment

`python -m experiments.downstream --features objects,air --tasks sum2,order,digit --out
docs/results/downstream` trains the AIR readouts on each task at 10, 100, 1,000 and 10,000 labelled scenes,
three seeds each (a fresh labelled draw per seed), and scores them on 2,000 test scenes of MNIST test digits;
the pixel baselines, which need no AIR, ran apart into `docs/results/downstream_pixels/`. Both files are
committed; the cell below reads them (or the comma-separated files `AIR_DOWNSTREAM_RESULTS` names, relative to
the repository root)."""),
    new_code_cell('''from experiments import downstream
sources = os.environ.get("AIR_DOWNSTREAM_RESULTS", "''' + DOWNSTREAM_RESULTS + '''").split(",")
rows = [row for source in sources for row in downstream.read_rows(ROOT / source)]
for (task, readout, budget), (mean, sd, n) in downstream.summary(rows).items():
    print(f"{task:5s}  {downstream.LABELS[readout]:38s}  {budget:6d} labelled  {mean:.3f} +- {sd:.3f}  ({n} seeds)")
downstream.figure(rows, "test accuracy against labelled scenes")'''),
    new_markdown_cell("""The one-digit panel is the ceiling: the object readout, given each digit's own label, is only as
good as the information about the digit's class that one `z_what` holds, and the sum and the order need two
digits right (roughly the square of that accuracy). See docs/results.md ("What AIR's latents are good for")
for the numbers and what they say."""),
]

LATENTS = [
    new_markdown_cell("""# 05 · Latents: move one object and watch the scene re-render

AIR's scene representation is a list of objects, each a `z_where` (log-scale, horizontal and vertical shift
of its attention window) and a `z_what` (what the decoder draws in the window). Because the decoder and the
spatial transformer are the model's own generative half, any edit of one object's latents is a new scene.
This notebook takes a test scene, reads it with the shipped `paper` model, and re-renders it as one
object's latents move: on a static grid (which is what the notebook stores), and with sliders where a kernel
runs and `ipywidgets` is installed (`pip install -e '.[notebooks]'`)."""),
    new_code_cell(SETUP),
    new_markdown_cell("""## A scene and its objects

`air.infer` gives each step's `z_where` and `z_what` (posterior means) and its presence. We keep a two-digit
test scene the model counts right; object 0 is the one we move."""),
    new_code_cell('''from air.data import digit_pools, load_mnist
from air.generative import compose, render
from air.train import training_scenes
from air.transformer import window_boxes
from air.viz import draw_step_boxes
params, config = air.pretrained("paper")
test = training_scenes(config, np.random.default_rng(0), digit_pools(load_mnist())["test"], 300, every_count=True)
out = air.infer(params, config, test.images)
right = out["count"] == test.counts
two = np.flatnonzero(right & (test.counts == 2))
scene = int(two[0]) if len(two) else int(np.argmax(out["count"]))  # (the tests' synthetic digits may have none)
z_what, z_where = out["z_what"][scene], out["z_where"][scene]
gates = out["z_pres"][scene].astype(config.dtype)
gates[0] = 1.0
print(f"scene {scene}: {test.counts[scene]} digits {test.labels[scene][:test.counts[scene]]}, "
      f"counted {out['count'][scene]}")
for t in range(config.max_steps):
    print(f"step {t}: present {bool(out['z_pres'][scene, t])}, log s {z_where[t, 0]:+.2f}, "
          f"shift ({z_where[t, 1]:+.2f}, {z_where[t, 2]:+.2f}), |z_what| {np.linalg.norm(z_what[t]):.1f}")'''),
    new_markdown_cell("""`edited` renders the scene with object 0's latents replaced: the decoder draws every object's window
from its `z_what`, the transformer places it by its `z_where`, and the present objects' canvases are summed,
exactly as in the model's likelihood. `show` draws a scene with object 0's window."""),
    new_code_cell('''def edited(what=None, where=None):
    """The scene with object 0's z_what and / or z_where replaced, and object 0's window box."""
    whats, wheres = z_what.copy(), z_where.copy()
    if what is not None:
        whats[0] = what
    if where is not None:
        wheres[0] = where
    _, canvases = render(params, config, whats[None], wheres[None, :, 0], wheres[None, :, 1:])
    box = window_boxes(wheres[0, 0], wheres[0, 1:], config.canvas_size, config.window_size)
    return np.clip(compose(gates[None], canvases, config.composition)[0], 0, 1), box


def show(ax, picture, box=None, title=""):
    ax.imshow(picture, cmap="gray", vmin=0, vmax=1)
    if box is not None:
        draw_step_boxes(ax, np.asarray(box)[None], np.ones(1), linewidth=1.0)
    ax.set_title(title, fontsize=8)
    ax.axis("off")'''),
    new_markdown_cell("""## Where: shift and scale

Each row moves one coordinate of object 0's `z_where` and keeps everything else. The log-scale row spans
the preset's bound on it (windows of 12-20 px); the shifts span most of the canvas."""),
    new_code_cell('''lo, hi = config.log_scale_range
moves = {"shift x": (1, np.linspace(-0.6, 0.6, 7)), "shift y": (2, np.linspace(-0.6, 0.6, 7)),
         "log scale": (0, np.linspace(lo, hi, 7))}
fig, axes = plt.subplots(len(moves) + 1, 7, figsize=(10.5, 1.6 * (len(moves) + 1)))
show(axes[0, 0], test.images[scene], title="input")
show(axes[0, 1], edited()[0], edited()[1], title="as inferred")
for ax in axes[0, 2:]:
    ax.axis("off")
for row, (name, (k, values)) in zip(axes[1:], moves.items()):
    for ax, value in zip(row, values):
        where = z_where[0].copy()
        where[k] = value
        show(ax, *edited(where=where), title=f"{name} {value:+.2f}")
fig.tight_layout()'''),
    new_markdown_cell("""## What: another digit in the same place

Object 0's `z_what` replaced by the `z_what` the model inferred for a one-digit test scene of each class:
the window stays where it is, and the decoder draws that scene's digit in it."""),
    new_code_cell('''ones = np.flatnonzero(right & (test.counts == 1))
donors = {}
for i in ones:
    donors.setdefault(int(test.labels[i, 0]), int(i))
fig, axes = plt.subplots(1, 10, figsize=(12, 1.6))
for digit, ax in enumerate(axes):
    if digit in donors:
        show(ax, *edited(what=out["z_what"][donors[digit], 0]), title=f"a {digit}'s z_what")
    else:
        ax.axis("off")
fig.tight_layout()'''),
    new_markdown_cell("""## What: from one digit to another

On the straight line from object 0's `z_what` to another digit's, the decoder's drawing changes smoothly:
each row walks it to the `z_what` of a different class."""),
    new_code_cell('''targets = [d for d in sorted(donors) if d != test.labels[scene, 0]][:3]
fig, axes = plt.subplots(max(len(targets), 1), 7, figsize=(10.5, 1.6 * max(len(targets), 1)), squeeze=False)
for row, digit in zip(axes, targets):
    other = out["z_what"][donors[digit], 0]
    for ax, a in zip(row, np.linspace(0, 1, 7)):
        show(ax, *edited(what=(1 - a) * z_what[0] + a * other), title=f"to a {digit}: {a:.2f}")
fig.tight_layout()'''),
    new_markdown_cell("""## What: the principal directions of z_what

`z_what` has 50 dimensions. Its principal directions over the present objects of 300 test scenes are the
ones along which the inferred digits vary most; row k moves object 0 along direction k by -3 to +3 standard
deviations. No one direction carries much (the share of variance is printed): the decoder spreads a digit's
identity over many, which is why the line between two digits above changes more than any row here."""),
    new_code_cell('''present = out["z_what"][out["z_pres"] == 1]
if len(present) < 3:  # (the tests' synthetic digits may give too few objects)
    present = out["z_what"].reshape(-1, config.what_dim)
centre = present.mean(axis=0)
_, singular, directions = np.linalg.svd(present - centre, full_matrices=False)
spread = singular / np.sqrt(len(present))
share = spread ** 2 / np.sum(spread ** 2)
print("variance share of the first five directions:", np.round(share[:5], 3))
fig, axes = plt.subplots(3, 7, figsize=(10.5, 4.8))
for k, row in enumerate(axes):
    for ax, a in zip(row, np.linspace(-3, 3, 7)):
        show(ax, *edited(what=z_what[0] + a * spread[k] * directions[k]), title=f"direction {k + 1}: {a:+.0f} sd")
fig.tight_layout()'''),
    new_markdown_cell("""## Sliders

Where a kernel runs and `ipywidgets` is installed, these sliders move object 0's `z_where` and its first
three principal directions of `z_what`, and the scene re-renders as they move."""),
    new_code_cell('''try:
    import ipywidgets as widgets
except ImportError:
    widgets = None
    print("ipywidgets is not installed (pip install -e '.[notebooks]'); the grids above show the same moves.")


def slide(log_scale, shift_x, shift_y, direction_1, direction_2, direction_3):
    what = z_what[0] + np.array([direction_1, direction_2, direction_3]) * spread[:3] @ directions[:3]
    fig = plt.figure(figsize=(3.5, 3.5))
    show(fig.add_subplot(), *edited(what, np.array([log_scale, shift_x, shift_y], dtype=config.dtype)))
    plt.show()


if widgets is not None:
    slider = lambda value, low, high: widgets.FloatSlider(value=float(value), min=low, max=high, step=0.02)
    widgets.interact(slide, log_scale=slider(z_where[0, 0], lo, hi), shift_x=slider(z_where[0, 1], -1, 1),
                     shift_y=slider(z_where[0, 2], -1, 1), direction_1=slider(0, -3, 3),
                     direction_2=slider(0, -3, 3), direction_3=slider(0, -3, 3))'''),
]

NOTEBOOKS = {"01_walkthrough": WALKTHROUGH, "02_gradients": GRADIENTS, "03_ablations": ABLATIONS,
             "04_downstream": DOWNSTREAM, "05_latents": LATENTS}


class Refused(Exception):
    """build.py will not write these notebooks (the reason is the message)."""


def refuse_to_execute(names, environ):
    """Refused if executing `names` in `environ` would store outputs the committed notebooks must not show."""
    if environ.get("AIR_NOTEBOOK_TINY") == "1":
        raise Refused("AIR_NOTEBOOK_TINY=1 is the tests' tiny mode; the committed notebooks hold full runs: unset it")
    if "03_ablations" not in names:
        return
    if environ.get("AIR_ABLATION_RESULTS"):
        raise Refused(f"AIR_ABLATION_RESULTS is set; the committed 03_ablations shows {ABLATION_RESULTS}: unset it")
    if not (ROOT / ABLATION_RESULTS).is_file():
        raise Refused(f"{ABLATION_RESULTS} is missing, and 03_ablations shows only that file. Copy the ablation "
                      "sweep's results.csv there (python -m experiments.sweep experiments/sweeps/ablations.toml "
                      "writes runs/sweeps/ablations/results.csv), or execute the other notebooks alone: "
                      "python notebooks/build.py --execute 01_walkthrough 02_gradients")


def stand_in_outputs(notebook):
    """The indices of the code cells whose outputs mention the stand-in (none in a notebook fit to commit)."""
    def text(output):
        return str(output.get("text", "")) + str(output.get("data", {}).get("text/plain", "")) + \
            "\n".join(output.get("traceback", []))
    return [i for i, cell in enumerate(notebook.cells)
            if cell.cell_type == "code" and any(STAND_IN in text(o) for o in cell.outputs)]


def run_notebook(notebook):
    """Run every cell of `notebook` in place, from the notebooks folder (nbclient; raises on a failing cell)."""
    from nbclient import NotebookClient
    NotebookClient(notebook, timeout=1800, kernel_name="python3", resources={"metadata": {"path": str(HERE)}}).execute()


def build(names=tuple(NOTEBOOKS), execute=False, folder=HERE):
    """Write folder/<name>.ipynb for each name, executed if `execute`; returns the paths written.

    Executing runs every notebook first and writes only if all ran and none shows the stand-in; Refused says why
    not (before anything runs when it can).
    """
    if execute:
        refuse_to_execute(names, os.environ)
    notebooks = {}
    for name in names:
        notebook = new_notebook(cells=copy.deepcopy(NOTEBOOKS[name]),
                                metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                         "language": "python"}})
        if execute:
            run_notebook(notebook)
            if stand_in_outputs(notebook):
                raise Refused(f"{name}: cells {stand_in_outputs(notebook)} show the stand-in ({STAND_IN!r}); "
                              "nothing written")
        notebooks[name] = notebook
    paths = []
    for name, notebook in notebooks.items():
        nbformat.write(notebook, Path(folder) / f"{name}.ipynb")
        paths.append(Path(folder) / f"{name}.ipynb")
    return paths


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python notebooks/build.py", description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", metavar="NAME",
                        help=f"notebooks to write (default: all of {', '.join(NOTEBOOKS)})")
    parser.add_argument("--execute", action="store_true", help="run each notebook and store its outputs")
    args = parser.parse_args(argv)
    unknown = [name for name in args.names if name not in NOTEBOOKS]
    if unknown:
        parser.error(f"no notebook {', '.join(unknown)}; choose from {', '.join(NOTEBOOKS)}")
    try:
        for path in build(args.names or tuple(NOTEBOOKS), execute=args.execute):
            print(path)
    except Refused as refusal:
        print(f"notebooks/build.py: not written: {refusal}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
