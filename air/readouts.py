"""What AIR's latents are good for: small classifiers read a task off a frozen AIR (Eslami et al. 2016, Sec. 3.1).

A frozen AIR turns each scene into its inferred count and, per present step, z_where and the mean of z_what; a
small classifier learns a task from those features with few labelled scenes, against classifiers on the raw
pixels.

Tasks, on scenes of the model's own family (canvas, digit sizes, overlap rule):

- sum: the sum of the digits' labels in a scene of 0..max_digits digits (19 classes for two digits; an empty
  scene sums to 0).
- sum2: the same sum on scenes of exactly two digits, the paper's protocol (its tasks are on two-digit scenes).
- order: on two-digit scenes, whether the left digit's label is smaller than the right one's (left and right by
  the centres of the digits' boxes; equal labels count as not ascending). The paper asks whether the digits are
  in ascending order; this fixes which order (left to right) and what a tie is.
- digit: the label of the digit in a one-digit scene. Not the paper's: it measures how much of a digit's
  identity one object's latents hold, the ceiling of the tasks above (each needs every digit right).

Readouts (features): "objects", one digit MLP shared by the object slots (for the sums, the slots' digit
distributions are convolved, an absent slot adding 0; for the order, P(left < right) of the first two slots;
for the digit, the first slot's distribution); "decoded", the same with a CNN (below) on each slot's window as
the model's decoder draws it from z_what's mean, a function of the latents read through the model's own
decoder; "air", an MLP on all the AIR features side by side; "pixels", the same MLP on the raw pixels; "cnn", a
competent pixel baseline: three blocks of a 3x3 convolution (16, 32 and 64 channels), batch normalisation, ReLU
and 2x2 max pooling, then a head that pools the last feature map globally (its maximum and mean over the image)
for the sums and the digit, or over rows only, keeping its columns as left-to-right bands, for the order, and
the same MLP. The AIR features put the present steps in a fixed order, left to right by tx (absent steps zero,
last), so that "the first object" means the same thing in every scene.

Every classifier trains with Adam (air.optim; lr 1e-3, batch 64) for a number of passes over its labelled scenes,
at least 100 steps and at most a given number (n_steps), and stops early: a tenth of the labelled scenes (from 20
of them on) is held out, scored every twentieth of the steps, and the parameters that scored best on it are kept
(most right, and among as many right, the lowest cross-entropy: on a few held-out scenes accuracy alone ties early
and would keep an undertrained step); training ends after five checks without a gain. Batch normalisation uses each
batch's statistics in training and their running averages (momentum 0.9) when it scores. The readouts of AIR's
features may train on latents drawn from the guide's posterior rather than its means (fit's spread). The
classifiers are params-first functions, differentiated by autograd.
"""
import time
from dataclasses import dataclass

import autograd
import autograd.numpy as anp
import numpy as np
from autograd.tracer import getval

from air.data import config_scenes, digit_pools, load_mnist
from air.guide import guide
from air.model import infer
from air.nn import conv3x3, he_normal, mlp, relu
from air.optim import adam_init, adam_params, adam_update
from air.tree import Layout

FEATURES = ("objects", "decoded", "air", "pixels", "cnn")
TASKS = ("sum", "order", "digit", "sum2")  # the order seeds each task's scenes
HIDDEN = 512  # the MLPs' hidden width, on AIR features and on pixels alike (chosen on validation scenes)
BATCH = 64
CHANNELS = (16, 32, 64)  # the pixel CNN's three convolution blocks
MOMENTUM = 0.9  # of batch normalisation's running averages
READS = ("where", "what", "what_sd")  # what an object slot may give the AIR readouts, in slot order
SLOT = ("where", "what")  # what it gives them unless asked otherwise (chosen on validation scenes)
PATIENCE = 5  # early stopping ends training after this many checks (a twentieth of the steps each) without a gain


# --- tasks and features ----------------------------------------------------------------------------------------


def task_targets(task, scenes):
    """(targets (n,) int, number of classes) of a task on air.data.Scenes."""
    labels = np.where(scenes.labels >= 0, scenes.labels, 0)
    if task == "sum2" and not np.all(scenes.counts == 2):
        raise ValueError("the sum2 task needs two-digit scenes")
    if task in ("sum", "sum2"):
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
    """n scenes for a task: the model's family; two digits each for the sum2 and order tasks, one for the digit
    task."""
    counts = {"sum2": np.full(n, 2), "order": np.full(n, 2), "digit": np.full(n, 1)}.get(task)
    return config_scenes(config, rng, pool, n, counts=counts, dtype=np.float32)


def air_features(params, config, images, batch_size=500, out=None, reads=SLOT):
    """Features of a frozen AIR, (x, spread), each (n, F): x holds the count one-hot, then per step slot (present
    steps left to right by tx, absent ones zero and last) a presence flag and what `reads` names, in READS' order:
    z_where (log s, tx, ty), z_what's posterior mean, z_what's posterior standard deviation. spread holds the
    guide's posterior standard deviations of the same z_where (zero where z_where is deterministic) and z_what
    entries (zero elsewhere, the standard deviations themselves included), from which fit can draw the latents
    instead of reading their means. `out`: air.infer's answer for the images, if already computed."""
    unknown = set(reads) - set(READS)
    if not reads or unknown:
        raise ValueError(f"reads: expected some of {', '.join(READS)}, got {', '.join(reads) or 'none'}")
    out = infer(params, config, images, batch_size=batch_size) if out is None else out
    posts = [guide(params, config, images[i:i + batch_size]) for i in range(0, len(images), batch_size)]
    where_sd = np.exp(np.concatenate([post["where_logsd"] if post.get("where_logsd") is not None
                                      else np.full(post["shift"].shape[:2] + (3,), -np.inf) for post in posts]))
    what_sd = np.exp(0.5 * np.concatenate([post["what_logvar"] for post in posts]))
    take, on = _slots(out)
    parts = {"where": (out["z_where"], where_sd), "what": (out["z_what"], what_sd), "what_sd": (what_sd, 0 * what_sd)}
    chosen = [parts[name] for name in READS if name in reads]
    slots = np.concatenate([on] + [take(value) * on for value, _ in chosen], axis=2)
    spreads = np.concatenate([0 * on] + [take(sd) * on for _, sd in chosen], axis=2)
    count = np.eye(config.max_steps + 1, dtype=np.float32)[out["count"]]
    flat = lambda a: a.reshape(len(images), -1)
    return (np.concatenate([count, flat(slots)], axis=1).astype(np.float32),
            np.concatenate([0 * count, flat(spreads)], axis=1).astype(np.float32))


def decoded_features(out):
    """(n, T (1 + P^2)) features from air.infer's answer `out`: per step slot (ordered as in air_features) a
    presence flag and the window the model's decoder draws from z_what's mean (P x P, zero for absent steps).
    A function of the latents only, read through the model's own decoder."""
    take, on = _slots(out)
    windows = take(out["windows"].reshape(out["windows"].shape[:2] + (-1,))) * on
    return np.concatenate([on, windows], axis=2).reshape(len(on), -1).astype(np.float32)


def _slots(out):
    """(take, on) for air.infer's answer: take(a) puts a's steps (axis 1) in slot order, present steps left to
    right by tx and absent ones last; on (n, T, 1) is each slot's presence."""
    present = out["z_pres"].astype(bool)
    key = np.where(present, out["z_where"][..., 1], np.inf)  # absent steps sort after every present one
    order = np.argsort(key, axis=1, kind="stable")
    take = lambda a: np.take_along_axis(a, order.reshape(order.shape + (1,) * (a.ndim - 2)), axis=1)
    return take, take(present[..., None].astype(np.float32))


def readout_inputs(readouts, params, config, images, reads=SLOT):
    """readout -> (its inputs for `images`, their spread or None): the AIR features a slot `reads` and their
    posterior spreads (one inference for every AIR readout), the decoded windows, the flat pixels, or the images
    themselves for the CNN."""
    out = infer(params, config, images) if {"objects", "air", "decoded"} & set(readouts) else None
    latents = air_features(params, config, images, out=out, reads=reads) if {"objects", "air"} & set(readouts) \
        else None
    every = {"objects": latents, "air": latents, "pixels": (images.reshape(len(images), -1), None),
             "cnn": (images, None)}
    if "decoded" in readouts:
        every["decoded"] = (decoded_features(out), None)
    return {readout: every[readout] for readout in readouts}


# --- classifiers -----------------------------------------------------------------------------------------------


def init_classifier(rng, readout, task, n_in, n_classes, image_side=None, hidden=HIDDEN):
    """The parameters of a readout: 'objects' (n_in = one slot's features), 'cnn' (on image_side^2 pixels),
    'decoded' (a CNN on image_side^2 windows) or 'mlp'; each ends in an MLP of `hidden` units."""
    if readout == "objects":
        return {"digit": [he_normal(rng, n_in, hidden, np.float32), he_normal(rng, hidden, 10, np.float32)]}
    if readout == "decoded":  # the CNN's blocks and a digit head, shared by the slots
        task, n_classes = "digit", 10
    elif readout != "cnn":
        return {"mlp": [he_normal(rng, n_in, hidden, np.float32), he_normal(rng, hidden, n_classes, np.float32)]}
    blocks, c_in = [], 1
    for c in CHANNELS:
        blocks.append({"w": he_normal(rng, 9 * c_in, c, np.float32)["w"], "gamma": np.ones(c, np.float32),
                       "beta": np.zeros(c, np.float32)})
        c_in = c
    side = image_side
    for _ in CHANNELS:
        side = (side + 1) // 2
    n_head = 2 * c_in * (side if task == "order" else 1)
    return {"conv": blocks,
            "mlp": [he_normal(rng, n_head, hidden, np.float32), he_normal(rng, hidden, n_classes, np.float32)]}


def max_pool2(x):
    """2 x 2 max pooling of x (N, H, W, C), an odd last row or column padded with zeros (exact for a ReLU after
    it, or before it on x >= 0): the maximum of the two halves of each pair of rows, then of columns (split and
    maximum have cheap backward passes in autograd; a slice's would be a slow scatter, a max over axes dearer)."""
    n, h, w, c = x.shape
    if h % 2 or w % 2:
        x = anp.pad(x, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)), "constant")
    h, w = x.shape[1] // 2, x.shape[2] // 2
    x = anp.reshape(x, (n, h, 2, w, 2, c))
    x = anp.maximum(*anp.split(x, 2, axis=2))
    x = anp.maximum(*anp.split(x, 2, axis=4))
    return anp.reshape(x, (n, h, w, c))


def batch_norm(block, h, stats=None, record=None):
    """h (N, H, W, C) normalised per channel by the batch's mean and variance (stats None; their values are
    appended to `record` if given) or by given (mean, variance), then scaled by gamma and shifted by beta.
    Written as one scale and one shift of h, which autograd differentiates at about half the cost of
    (h - mean) / sd * gamma + beta with np.var."""
    if stats is None:
        flat = anp.reshape(h, (-1, h.shape[3]))
        mean = anp.sum(flat, axis=0) / flat.shape[0]
        centred = flat - mean
        var = anp.sum(centred * centred, axis=0) / flat.shape[0]
        if record is not None:
            record.append((getval(mean), getval(var)))
    else:
        mean, var = stats
    scale = block["gamma"] / anp.sqrt(var + 1e-5)
    return h * scale + (block["beta"] - mean * scale)


def cnn_features(params, images, task, stats=None, record=None):
    """The CNN's pooled features of images (N, H, W): three convolution blocks, then the maximum and the mean
    of the last map over the image (N, 2 C), or, for the order task, over its rows only (N, 2 C W')."""
    h = images[..., None]
    for i, block in enumerate(params["conv"]):
        h = conv3x3({"w": block["w"], "b": 0.0}, h)
        h = relu(max_pool2(batch_norm(block, h, None if stats is None else stats[i], record)))  # = pool(relu)
    axes = 1 if task == "order" else (1, 2)
    pooled = anp.concatenate([anp.max(h, axis=axes), anp.mean(h, axis=axes)], axis=-1)
    return anp.reshape(pooled, (pooled.shape[0], -1))


def sum_matrix(n_left, n_right):
    """(n_left n_right, n_left + n_right - 1) 0/1 matrix taking the outer product of two distributions over
    0..n-1 to the distribution of their sum."""
    m = np.zeros((n_left * n_right, n_left + n_right - 1), np.float32)
    m[np.arange(n_left * n_right), np.add.outer(np.arange(n_left), np.arange(n_right)).reshape(-1)] = 1.0
    return m


def object_log_probs(params, x, task, max_steps):
    """The object readout on AIR features x (N, F): each slot's digit distribution from one shared MLP on its
    z_where and z_what, combined by the task's rule (slot_log_probs)."""
    n, t = x.shape[0], max_steps
    slots = x[:, t + 1:].reshape(n, t, -1)
    return slot_log_probs(mlp(params["digit"], slots[..., 1:]), slots[..., :1], task)


def decoded_log_probs(params, x, task, max_steps, stats=None, record=None):
    """The decoded readout on decoded_features x (N, T (1 + P^2)): each slot's digit distribution from one shared
    CNN on its decoded window, combined by the task's rule (slot_log_probs)."""
    n, t = x.shape[0], max_steps
    slots = anp.reshape(x, (n, t, -1))
    side = window_side(slots.shape[2])
    windows = anp.reshape(slots[..., 1:], (n * t, side, side))
    logits = mlp(params["mlp"], cnn_features(params, windows, "digit", stats, record))
    return slot_log_probs(anp.reshape(logits, (n, t, 10)), slots[..., :1], task)


def window_side(slot_width):
    """P of a decoded_features slot of slot_width = 1 + P^2 numbers (a flag and a P x P window)."""
    return int(round(np.sqrt(slot_width - 1)))


def slot_log_probs(logits, on, task):
    """log p of a task's classes from each slot's digit logits (N, T, 10) and presence on (N, T, 1): the digit
    task reads slot 0; the order, P(slot 0's digit < slot 1's); the sums convolve the slots' distributions, an
    absent slot adding 0."""
    n, t = logits.shape[:2]
    z = logits - anp.max(logits, axis=2, keepdims=True)
    p = anp.exp(z) / anp.sum(anp.exp(z), axis=2, keepdims=True)  # (N, T, 10)
    if task == "digit":
        return anp.log(p[:, 0] + 1e-7)
    if task == "order":
        below = np.triu(np.ones((10, 10), np.float32), 1)  # left < right
        joint = p[:, 0, :, None] * p[:, 1, None, :]  # (N, 10, 10): p(left = a, right = b)
        up, down = anp.sum(joint * below, axis=(1, 2)), anp.sum(joint * (1.0 - below), axis=(1, 2))
        return anp.log(anp.stack([down, up], axis=1) + 1e-7)
    p = on * p + (1.0 - on) * np.eye(10, dtype=np.float32)[0]  # an absent slot is the digit 0
    dist = p[:, 0]
    for step in range(1, t):
        outer = (dist[:, :, None] * p[:, step][:, None, :]).reshape(n, -1)
        dist = anp.matmul(outer, sum_matrix(dist.shape[1], 10))
    return anp.log(dist + 1e-7)


def scores(params, x, readout, task, max_steps, stats=None, record=None):
    """Unnormalised log-probabilities of the classes for a batch: x (N, F) features or (N, H, W) images. For the
    CNN, `stats` are batch normalisation's (mean, variance) per block, or None for the batch's own (recorded in
    `record` if given)."""
    if readout == "objects":
        return object_log_probs(params, x, task, max_steps)
    if readout == "decoded":
        return decoded_log_probs(params, x, task, max_steps, stats, record)
    if readout == "cnn":
        x = cnn_features(params, x, task, stats, record)
    return mlp(params["mlp"], x)


def cross_entropy(params, x, y, readout, task, max_steps, record=None):
    """The mean cross-entropy of a readout's classes against the targets y (N,): what fit minimises (the CNN
    with its batch's statistics, appended to `record` if given)."""
    z = scores(params, x, readout, task, max_steps, record=record)
    z = z - anp.max(z, axis=1, keepdims=True)
    log_p = z - anp.log(anp.sum(anp.exp(z), axis=1, keepdims=True))
    return -anp.mean(anp.sum(log_p * np.eye(z.shape[1], dtype=np.float32)[y], axis=1))


# --- training and scoring --------------------------------------------------------------------------------------


@dataclass
class Classifier:
    """A trained readout: its parameters, what it reads and answers, and (the CNN's) batch-norm statistics."""
    params: dict
    readout: str
    task: str
    max_slots: int
    stats: list = None
    steps: int = 0  # the Adam step whose parameters were kept (early stopping)

    def scores(self, x):
        return scores(self.params, x, self.readout, self.task, self.max_slots, self.stats)


def n_steps(n, passes, max_steps):
    """Adam steps for n labelled scenes: `passes` passes of batch BATCH, at least 100 steps, at most max_steps."""
    return int(min(max_steps, max(100, passes * n // min(BATCH, n))))


def held_out(n):
    """How many of n labelled scenes early stopping holds out: a tenth, from 20 scenes on (none below)."""
    return n // 10 if n >= 20 else 0


def fit(readout, task, x, y, n_classes, seed, steps, max_slots, lr=1e-3, hidden=HIDDEN, spread=None):
    """A Classifier trained by Adam on (x, y) for up to `steps` steps, stopped early on a held-out tenth (see
    the module docstring). With `spread` (x's shape), every training batch is drawn from N(x, spread^2): for
    AIR's features, latents drawn from the guide's posterior instead of its means (the held-out tenth and
    scoring read the means)."""
    rng = np.random.default_rng(seed)
    n_in = (x.shape[-1] - max_slots - 1) // max_slots - 1 if readout == "objects" else x.shape[-1]
    side = x.shape[1] if readout == "cnn" else window_side(x.shape[-1] // max_slots) if readout == "decoded" else None
    params = init_classifier(rng, readout, task, n_in, n_classes, side, hidden)
    order = rng.permutation(len(x))
    n_val = held_out(len(x))
    (x_val, y_val), (x, y) = (x[order[:n_val]], y[order[:n_val]]), (x[order[n_val:]], y[order[n_val:]])
    spread = None if spread is None else spread[order[n_val:]]
    layout = Layout(params)
    record = []
    loss = lambda flat, xb, yb: cross_entropy(layout.unflatten(flat), xb, yb, readout, task, max_slots, record)
    grad = autograd.grad(loss)
    state = adam_init(layout.flatten(params))
    stats = [(np.zeros(c, np.float32), np.ones(c, np.float32)) for c in CHANNELS] \
        if readout in ("cnn", "decoded") else None
    batch = min(BATCH, len(x))
    check = max(1, steps // 20)
    best, best_score, since_best = None, (-1.0, -np.inf), 0
    for step in range(1, steps + 1):
        if since_best >= PATIENCE:
            break
        pick = rng.choice(len(x), size=batch, replace=False)
        xb = x[pick] if spread is None else \
            x[pick] + spread[pick] * rng.standard_normal(x[pick].shape).astype(x.dtype)
        record.clear()
        state = adam_update(state, grad(adam_params(state), xb, y[pick]), lr)
        if stats is not None:
            stats = [(MOMENTUM * m + (1 - MOMENTUM) * bm, MOMENTUM * v + (1 - MOMENTUM) * bv)
                     for (m, v), (bm, bv) in zip(stats, record)]
        if n_val and (step % check == 0 or step == steps):
            model = Classifier(layout.unflatten(adam_params(state)), readout, task, max_slots, stats, step)
            score = held_out_score(model, x_val, y_val)
            if score > best_score:  # more right, or as many right more confidently
                best, best_score, since_best = model, score, 0
            else:
                since_best += 1
    if best is None:
        best = Classifier(layout.unflatten(adam_params(state)), readout, task, max_slots, stats, steps)
    return best


def held_out_score(model, x, y, batch_size=500):
    """(accuracy, minus the mean cross-entropy) of a Classifier on (x, y) as it scores (batch norm's running
    averages), from one pass: early stopping keeps the step with the highest, accuracy first."""
    z = np.concatenate([np.asarray(model.scores(x[i:i + batch_size]), np.float64)
                        for i in range(0, len(x), batch_size)])
    z = z - z.max(axis=1, keepdims=True)
    log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return float(np.mean(np.argmax(z, axis=1) == y)), float(np.mean(log_p[np.arange(len(y)), y]))


def accuracy(model, x, y, batch_size=500):
    """The share of x whose most probable class under a Classifier is y."""
    predicted = np.concatenate([np.argmax(model.scores(x[i:i + batch_size]), axis=1)
                                for i in range(0, len(x), batch_size)])
    return float(np.mean(predicted == y))


@dataclass(frozen=True)
class Training:
    """How every classifier of an experiment trains: `passes` over its labelled scenes in Adam steps of BATCH, at
    least 100 and at most `max_steps` (n_steps), an MLP of `hidden` units, and for AIR's readouts, batches of
    latents drawn from the guide's posterior (`draws`) or its means, each slot giving them what `reads` names
    (air_features)."""
    passes: int = 100
    max_steps: int = 8000
    hidden: int = HIDDEN
    draws: bool = True
    reads: tuple = SLOT


def run_experiment(params, config, tasks, readouts, budgets, seeds, training, n_test, split="test", report=print,
                   done=(), on_row=None):
    """One row per task, readout, label budget and classifier seed: its accuracy on n_test scenes of the `split`
    digits ('test', or 'val' to choose settings on), the Adam steps it had and kept, and seconds. Labelled scenes
    are drawn from the training digits (a fresh draw for every classifier seed); the smaller budgets are the
    first scenes of the largest. Rows whose (task, readout, budget, seed) is in `done` are skipped (a resumed
    experiment); on_row(row) is called as each row is made, so that it can be kept at once."""
    pools = digit_pools(load_mnist())
    done = set(done)
    rows = []
    for task in tasks:
        if all((task, readout, budget, seed) in done for readout in readouts for budget in budgets for seed in seeds):
            continue
        scored = task_scenes(task, config, pools[split], n_test, np.random.default_rng([TASKS.index(task), 1]))
        y_scored, n_classes = task_targets(task, scored)
        scored_inputs = readout_inputs(readouts, params, config, scored.images, training.reads)
        for seed in seeds:
            train = task_scenes(task, config, pools["train"], max(budgets),
                                np.random.default_rng([TASKS.index(task), 0, seed]))
            y_train, _ = task_targets(task, train)
            train_inputs = readout_inputs(readouts, params, config, train.images, training.reads)
            for readout in readouts:
                (x_train, spread), (x_scored, _) = train_inputs[readout], scored_inputs[readout]
                for budget in budgets:
                    if (task, readout, budget, seed) in done:
                        continue
                    began = time.perf_counter()
                    steps = n_steps(budget, training.passes, training.max_steps)
                    model = fit(readout, task, x_train[:budget], y_train[:budget], n_classes, seed, steps,
                                config.max_steps, hidden=training.hidden,
                                spread=spread[:budget] if training.draws and spread is not None else None)
                    rows.append({"task": task, "features": readout, "labelled": budget, "seed": seed,
                                 f"{split}_acc": round(accuracy(model, x_scored, y_scored), 4), "n_scored": n_test,
                                 "steps": steps, "kept_step": model.steps,
                                 "seconds": round(time.perf_counter() - began, 2)})
                    if on_row is not None:
                        on_row(rows[-1])
                    report(f"{task:5s}  {readout:7s}  {budget:6d} labelled  seed {seed}  {split} accuracy "
                           f"{rows[-1][f'{split}_acc']:.3f}  (kept step {model.steps} of {steps}, "
                           f"{rows[-1]['seconds']:.1f} s)")
    return rows


def plain_digit_check(budgets, seeds, training, n_test, report=print):
    """How one knows the pixel CNN is competent: rows of its accuracy on the plain MNIST task (28 x 28 centred
    digits, no scene), per label budget and seed, trained exactly as in run_experiment on the first training
    digits of a seeded shuffle and scored on the first n_test MNIST test digits."""
    pools = digit_pools(load_mnist())
    x_test = pools["test"].images[:n_test].astype(np.float32) / 255.0
    y_test = pools["test"].labels[:n_test]
    rows = []
    for seed in seeds:
        pick = np.random.default_rng([9, seed]).permutation(len(pools["train"]))[:max(budgets)]
        x = pools["train"].images[pick].astype(np.float32) / 255.0
        y = pools["train"].labels[pick]
        for budget in budgets:
            began = time.perf_counter()
            steps = n_steps(budget, training.passes, training.max_steps)
            model = fit("cnn", "digit", x[:budget], y[:budget], 10, seed, steps, 1, hidden=training.hidden)
            rows.append({"task": "plain MNIST digit", "features": "cnn", "labelled": budget, "seed": seed,
                         "test_acc": round(accuracy(model, x_test, y_test), 4), "n_scored": n_test,
                         "steps": steps, "kept_step": model.steps, "seconds": round(time.perf_counter() - began, 2)})
            report(f"plain MNIST  cnn  {budget:6d} labelled  seed {seed}  test accuracy {rows[-1]['test_acc']:.3f}  "
                   f"(kept step {model.steps} of {steps}, {rows[-1]['seconds']:.1f} s)")
    return rows
