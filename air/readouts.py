"""What AIR's latents are good for: small classifiers read a task off a frozen AIR (Eslami et al. 2016, Sec. 3.1).

A frozen AIR turns each scene into its inferred count and, per present step, z_where and the mean of z_what; a
small classifier learns a task from those features with few labelled scenes, against the same classifier on the
raw pixels and a small CNN on them.

Tasks, on scenes of the model's own family (canvas, digit sizes, overlap rule):

- sum: the sum of the digits' labels in a scene of 0..max_digits digits (19 classes for two digits; an empty
  scene sums to 0). The paper sums the digits of its multi-MNIST scenes the same way.
- order: on two-digit scenes, whether the left digit's label is smaller than the right one's (left and right by
  the centres of the digits' boxes; equal labels count as not ascending). The paper asks whether the digits are
  in ascending order; this fixes which order (left to right) and what a tie is.
- digit: the label of the digit in a one-digit scene. Not the paper's: it measures how much of a digit's
  identity one object's latents hold, the ceiling of the two tasks above (each needs two digits right).

Readouts (features): "objects", one digit MLP shared by the object slots (for the sum, the slots' digit
distributions are convolved, an absent slot adding 0; for the order, P(left < right) of the first two slots;
for the digit, the first slot's distribution); "air", an MLP on all the AIR features side by side; "pixels",
the same MLP on the raw pixels; "cnn", two 3x3 convolutions (8 and 16 channels, each with ReLU and 2x2 average
pooling) and the same MLP on the pixels. The AIR features put the present steps in a fixed order, left to
right by tx (absent steps zero, last), so that "the first object" means the same thing in every scene. Every
classifier trains with Adam (air.optim; lr 1e-3, batch 64) for a number of passes over its labelled scenes, at
least 100 steps and at most a given number (n_steps). The classifiers are params-first functions, differentiated
by autograd.
"""
import time

import autograd
import autograd.numpy as anp
import numpy as np

from air.data import config_scenes, digit_pools, load_mnist
from air.model import infer
from air.nn import conv3x3, he_normal, mlp, relu
from air.optim import adam_init, adam_params, adam_update
from air.tree import Layout

FEATURES = ("objects", "air", "pixels", "cnn")
TASKS = ("sum", "order", "digit")
HIDDEN = 128  # the MLP's hidden width, on AIR features and on pixels alike
BATCH = 64


# --- tasks and features ----------------------------------------------------------------------------------------


def task_targets(task, scenes):
    """(targets (n,) int, number of classes) of a task on air.data.Scenes."""
    labels = np.where(scenes.labels >= 0, scenes.labels, 0)
    if task == "sum":
        return labels.sum(axis=1).astype(np.int64), 9 * scenes.labels.shape[1] + 1
    if task == "digit":
        if not np.all(scenes.counts == 1):
            raise ValueError("the digit task needs one-digit scenes")
        return labels[:, 0].astype(np.int64), 10
    if not np.all(scenes.counts == 2):
        raise ValueError("the order task needs two-digit scenes")
    centre_x = (scenes.boxes[:, :2, 0] + scenes.boxes[:, :2, 2]) / 2
    left = np.argmin(centre_x, axis=1)
    rows = np.arange(len(scenes.counts))
    return (labels[rows, left] < labels[rows, 1 - left]).astype(np.int64), 2


def task_scenes(task, config, pool, n, rng):
    """n scenes for a task: the model's family; two digits each for the order task, one for the digit task."""
    counts = {"order": np.full(n, 2), "digit": np.full(n, 1)}.get(task)
    return config_scenes(config, rng, pool, n, counts=counts, dtype=np.float32)


def air_features(params, config, images):
    """(n, F) features of a frozen AIR: the count one-hot, then per step slot (present steps left to right by tx,
    absent ones zero and last) a presence flag, z_where (log s, tx, ty) and z_what's posterior mean."""
    out = infer(params, config, images)
    t = config.max_steps
    present = out["z_pres"].astype(bool)
    key = np.where(present, out["z_where"][..., 1], np.inf)  # absent steps sort after every present one
    order = np.argsort(key, axis=1, kind="stable")
    take = lambda a: np.take_along_axis(a, order.reshape(order.shape + (1,) * (a.ndim - 2)), axis=1)
    on = take(present[..., None].astype(np.float32))
    slots = np.concatenate([on, take(out["z_where"]) * on, take(out["z_what"]) * on], axis=2)
    count = np.eye(t + 1, dtype=np.float32)[out["count"]]
    return np.concatenate([count, slots.reshape(len(images), -1)], axis=1).astype(np.float32)


def readout_inputs(readouts, params, config, images):
    """readout -> its inputs for `images`: the AIR features (computed once for both AIR readouts), the flat
    pixels, or the images themselves for the CNN."""
    latents = air_features(params, config, images) if {"objects", "air"} & set(readouts) else None
    every = {"objects": latents, "air": latents, "pixels": images.reshape(len(images), -1), "cnn": images}
    return {readout: every[readout] for readout in readouts}


# --- classifiers -----------------------------------------------------------------------------------------------


def init_classifier(rng, readout, n_in, n_classes, image_side=None):
    """The parameters of a readout: 'objects' (n_in = one slot's features), 'cnn' (on image_side^2 pixels) or
    'mlp'; each ends in the same MLP of HIDDEN units."""
    if readout == "objects":
        return {"digit": [he_normal(rng, n_in, HIDDEN, np.float32), he_normal(rng, HIDDEN, 10, np.float32)]}
    first = n_in
    if readout == "cnn":
        conv = [he_normal(rng, 9 * 1, 8, np.float32), he_normal(rng, 9 * 8, 16, np.float32)]
        first = (image_side // 2 // 2) ** 2 * 16
    head = {"mlp": [he_normal(rng, first, HIDDEN, np.float32), he_normal(rng, HIDDEN, n_classes, np.float32)]}
    return {"conv": conv, **head} if readout == "cnn" else head


def _pooling_matrix(size):
    """(size // 2, size): each row averages two neighbouring pixels (an odd last one dropped)."""
    m = np.zeros((size // 2, size), np.float32)
    rows = np.arange(size // 2)
    m[rows, 2 * rows] = m[rows, 2 * rows + 1] = 0.5
    return m


def pool2(x):
    """2 x 2 average pooling of x (N, H, W, C), an odd last row or column dropped: two matmuls with a fixed
    pooling matrix (a slice would record a slow scatter in autograd's backward pass)."""
    rows, cols = _pooling_matrix(x.shape[1]), _pooling_matrix(x.shape[2])
    x = anp.matmul(rows, anp.transpose(x, (0, 3, 1, 2)))  # (N, C, H // 2, W)
    return anp.transpose(anp.matmul(x, cols.T), (0, 2, 3, 1))


def sum_matrix(n_left, n_right):
    """(n_left n_right, n_left + n_right - 1) 0/1 matrix taking the outer product of two distributions over
    0..n-1 to the distribution of their sum."""
    m = np.zeros((n_left * n_right, n_left + n_right - 1), np.float32)
    m[np.arange(n_left * n_right), np.add.outer(np.arange(n_left), np.arange(n_right)).reshape(-1)] = 1.0
    return m


def object_log_probs(params, x, task, max_steps):
    """The object readout on AIR features x (N, F): each slot's digit distribution from one shared MLP on its
    z_where and z_what, then log p of the task's classes (see the module docstring)."""
    n, t = x.shape[0], max_steps
    slots = x[:, t + 1:].reshape(n, t, -1)
    z = mlp(params["digit"], slots[..., 1:])
    z = z - anp.max(z, axis=2, keepdims=True)
    p = anp.exp(z) / anp.sum(anp.exp(z), axis=2, keepdims=True)  # (N, T, 10)
    if task == "digit":
        return anp.log(p[:, 0] + 1e-7)
    if task == "order":
        below = np.triu(np.ones((10, 10), np.float32), 1)  # left < right
        joint = p[:, 0, :, None] * p[:, 1, None, :]  # (N, 10, 10): p(left = a, right = b)
        up, down = anp.sum(joint * below, axis=(1, 2)), anp.sum(joint * (1.0 - below), axis=(1, 2))
        return anp.log(anp.stack([down, up], axis=1) + 1e-7)
    on = slots[..., :1]
    p = on * p + (1.0 - on) * np.eye(10, dtype=np.float32)[0]  # an absent slot is the digit 0
    dist = p[:, 0]
    for step in range(1, t):
        outer = (dist[:, :, None] * p[:, step][:, None, :]).reshape(n, -1)
        dist = anp.matmul(outer, sum_matrix(dist.shape[1], 10))
    return anp.log(dist + 1e-7)


def scores(params, x, readout, task, max_steps):
    """Unnormalised log-probabilities of the classes for a batch: x (N, F) features or (N, H, W) images."""
    if readout == "objects":
        return object_log_probs(params, x, task, max_steps)
    if readout == "cnn":
        h = x[..., None]
        for layer in params["conv"]:
            h = pool2(relu(conv3x3(layer, h)))
        x = h.reshape(h.shape[0], -1)
    return mlp(params["mlp"], x)


def cross_entropy(params, x, y, readout, task, max_steps):
    """The mean cross-entropy of a readout's classes against the targets y (N,): what fit minimises."""
    z = scores(params, x, readout, task, max_steps)
    z = z - anp.max(z, axis=1, keepdims=True)
    log_p = z - anp.log(anp.sum(anp.exp(z), axis=1, keepdims=True))
    return -anp.mean(anp.sum(log_p * np.eye(z.shape[1], dtype=np.float32)[y], axis=1))


# --- training and scoring --------------------------------------------------------------------------------------


def n_steps(n, passes, max_steps):
    """Adam steps for n labelled scenes: `passes` passes of batch BATCH, at least 100 steps, at most max_steps."""
    return int(min(max_steps, max(100, passes * n // min(BATCH, n))))


def fit(readout, task, x, y, n_classes, seed, steps, max_slots, lr=1e-3):
    """(params, readout, task, max_slots): a classifier trained by Adam on (x, y) for `steps` steps."""
    rng = np.random.default_rng(seed)
    n_in = (x.shape[-1] - max_slots - 1) // max_slots - 1 if readout == "objects" else x.shape[-1]
    params = init_classifier(rng, readout, n_in, n_classes, x.shape[1] if readout == "cnn" else None)
    layout = Layout(params)
    loss = lambda flat, xb, yb: cross_entropy(layout.unflatten(flat), xb, yb, readout, task, max_slots)
    grad = autograd.grad(loss)
    state = adam_init(layout.flatten(params))
    batch = min(BATCH, len(x))
    for _ in range(steps):
        pick = rng.choice(len(x), size=batch, replace=False)
        state = adam_update(state, grad(adam_params(state), x[pick], y[pick]), lr)
    return layout.unflatten(adam_params(state)), readout, task, max_slots


def accuracy(model, x, y, batch_size=500):
    """The share of x whose most probable class under `model` (fit's result) is y."""
    params, readout, task, max_slots = model
    predicted = np.concatenate([np.argmax(scores(params, x[i:i + batch_size], readout, task, max_slots), axis=1)
                                for i in range(0, len(x), batch_size)])
    return float(np.mean(predicted == y))


def run_experiment(params, config, tasks, readouts, budgets, seeds, passes, max_steps, n_test, report=print):
    """One row per task, readout, label budget and classifier seed: its test accuracy, test scenes, Adam steps
    and seconds. Labelled scenes are drawn from the training digits (a fresh draw for every classifier seed) and
    scored on n_test scenes of the test digits."""
    pools = digit_pools(load_mnist())
    rows = []
    for task in tasks:
        test = task_scenes(task, config, pools["test"], n_test, np.random.default_rng([TASKS.index(task), 1]))
        y_test, n_classes = task_targets(task, test)
        test_inputs = readout_inputs(readouts, params, config, test.images)
        for seed in seeds:
            # A fresh labelled draw per seed; the smaller budgets are its first scenes.
            train = task_scenes(task, config, pools["train"], max(budgets),
                                np.random.default_rng([TASKS.index(task), 0, seed]))
            y_train, _ = task_targets(task, train)
            train_inputs = readout_inputs(readouts, params, config, train.images)
            for readout in readouts:
                x_train, x_test = train_inputs[readout], test_inputs[readout]
                for budget in budgets:
                    began = time.perf_counter()
                    steps = n_steps(budget, passes, max_steps)
                    model = fit(readout, task, x_train[:budget], y_train[:budget], n_classes, seed, steps,
                                config.max_steps)
                    rows.append({"task": task, "features": readout, "labelled": budget, "seed": seed,
                                 "test_acc": round(accuracy(model, x_test, y_test), 4), "n_test": n_test,
                                 "steps": steps, "seconds": round(time.perf_counter() - began, 2)})
                    report(f"{task:5s}  {readout:7s}  {budget:6d} labelled  seed {seed}  test accuracy "
                           f"{rows[-1]['test_acc']:.3f}  ({steps} steps, {rows[-1]['seconds']:.1f} s)")
    return rows
