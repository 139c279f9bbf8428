"""Training: Adam on the negative ELBO, validation every epoch, the best-validation parameters restored at the end
(the seed's early stopping), and checkpoints from which a run resumes bit for bit.

A run's state between steps is a TrainState, built fresh (fresh_state) or restored from a checkpoint
(restore_state); train_step advances it by one batch at the step's Schedule (air.schedules.at_step),
train_epoch runs an epoch's steps, end_epoch validates and records it, and train() is the loop over epochs around
them, with checkpoints. snapshot_recorder is a step callback that keeps the model's reading of
a few scenes as training goes, which air.viz.write_training_gif animates.
"""
import dataclasses
import math
import sys
import time
from pathlib import Path

import numpy as np
from autograd.differential_operators import grad_and_aux
from tqdm import tqdm

from air import data as air_data
from air.checkpoint import CHECKPOINT, read_checkpoint, save_checkpoint, write_json
from air.estimators import estimator
from air.metrics import evaluate
from air.model import infer, init_params
from air.objective import TERMS, loss_and_terms, sample_noise
from air.optim import adam_init, adam_update
from air.runtime import environment
from air.schedules import at_step, steps_per_epoch
from air.tree import Layout


class NonFiniteError(RuntimeError):
    """Training produced a NaN or inf; names the step and the quantity."""

    def __init__(self, step, epoch, quantity, checkpoint):
        kept = (f"the last good checkpoint is kept at {checkpoint}" if checkpoint
                else "no checkpoint had been written yet")
        super().__init__(f"non-finite {quantity} at step {step} (epoch {epoch + 1}); {kept}")
        self.step, self.epoch, self.quantity = step, epoch, quantity


@dataclasses.dataclass(frozen=True)
class Datasets:
    train: air_data.Scenes
    val: air_data.Scenes
    test: air_data.Scenes
    source: str  # one line naming where the digits came from
    train_pool: air_data.Digits  # the training digits, for streaming scenes


def build_datasets(config, mnist):
    """Training scenes from the training digit pool (seeded by config.seed); validation and test scenes
    from their own pools, seeded by config.eval_seed so every training seed is scored on the same scenes."""
    pools = air_data.digit_pools(mnist)
    data_rng = np.random.default_rng(_seeds(config)["data"])
    val_rng, test_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(config.eval_seed).spawn(2))
    return Datasets(train=training_scenes(config, data_rng, pools["train"], config.n_train),
                    val=training_scenes(config, val_rng, pools["val"], config.n_val),
                    test=training_scenes(config, test_rng, pools["test"], config.n_test, every_count=True),
                    source=mnist.source, train_pool=pools["train"])


def training_scenes(config, rng, pool, n, every_count=False):
    """n scenes as config describes them: counts drawn from train_counts (or uniform over 0..max_digits, as
    always with every_count, which the test scenes use so that held-out counts are scored too)."""
    counts = None if every_count or not config.train_counts else rng.choice(config.train_counts, size=n)
    return air_data.config_scenes(config, rng, pool, n, counts=counts)


def _seeds(config):
    """Independent streams for the training scenes, the initial parameters and the training noise."""
    data, init, noise = np.random.SeedSequence(config.seed).spawn(3)
    return {"data": data, "init": init, "noise": noise}


@dataclasses.dataclass
class TrainState:
    """Everything a run carries from one step to the next; a checkpoint is exactly this, so a run restored
    from one continues bit for bit. Parameters are flat vectors cut by `layout` (air.tree.Layout)."""

    layout: Layout
    adam: dict  # Adam's state (air.optim): params, m, v, step
    best: dict  # val_count_acc, epoch and params of the best validation epoch so far
    average: "np.ndarray | None"  # the running average of the parameters (config.param_average), or None
    rng: np.random.Generator  # the training generator: batches, streaming scenes, noise
    history: list  # one record per finished epoch
    epoch: int  # the next epoch to run
    stats: object = None  # the estimator's running statistics (REINFORCE with NVIL: the signal's mean and sd)
    wall_offset: float = 0.0  # seconds spent before a restore

    @property
    def scored(self):
        """The parameters validation, the best checkpoint and the test score use: the average, if any."""
        return self.adam["params"] if self.average is None else self.average


def fresh_state(config):
    """The state before the first step: parameters drawn from the run's init stream, Adam at zero."""
    params = init_params(np.random.default_rng(_seeds(config)["init"]), config)
    layout = Layout(params)
    adam = adam_init(layout.flatten(params))
    return TrainState(layout=layout, adam=adam,
                      best={"val_count_acc": -1.0, "epoch": -1, "params": adam["params"].copy()},
                      average=adam["params"].copy() if config.param_average else None,
                      rng=np.random.default_rng(_seeds(config)["noise"]), history=[], epoch=0)


def restore_state(config, path):
    """The state a checkpoint holds; ValueError if it was written with another config."""
    saved = read_checkpoint(path)
    if saved["config"] != config:
        raise ValueError(f"{path}: the checkpoint was written with another config; resume with the run's own")
    layout = Layout(saved["params"])
    rng = np.random.default_rng()
    rng.bit_generator.state = saved["rng_state"]
    history = saved["history"]
    return TrainState(layout=layout, adam={**saved["adam"], "params": layout.flatten(saved["params"])},
                      best=dict(saved["best"], params=layout.flatten(saved["best_params"])),
                      average=layout.flatten(saved["average_params"]) if config.param_average else None,
                      rng=rng, history=history, epoch=saved["epoch"] + 1, stats=saved.get("signal_stats"),
                      wall_offset=history[-1]["wall_s"] if history else 0.0)


def save_state(path, state, config):
    """Write `state` after its last finished epoch (state.epoch - 1) to the checkpoint file `path`."""
    unflatten = state.layout.unflatten
    save_checkpoint(path, params=unflatten(state.adam["params"]), best_params=unflatten(state.best["params"]),
                    adam=state.adam, rng_state=state.rng.bit_generator.state, config=config, history=state.history,
                    epoch=state.epoch - 1, best={k: v for k, v in state.best.items() if k != "params"},
                    complete=state.epoch == config.n_epochs, signal_stats=state.stats,
                    average_params=None if state.average is None else unflatten(state.average))


def logged_terms(config):
    """The negative ELBO's terms a run of this config has (kl_where only for a stochastic z_where)."""
    return [k for k in TERMS if k != "kl_where" or config.z_where == "stochastic"]


def learning_rates(config, layout):
    """Adam's learning rate: config.lr, or a vector over the flat parameters when the estimator gives some
    parameter groups their own (REINFORCE's baseline: config.baseline_lr)."""
    own = estimator(config).rates
    if not any(path.split("/", 1)[0] in own for path in layout.paths):
        return config.lr
    return np.concatenate([np.full(int(np.prod(shape)), getattr(config, own.get(path.split("/", 1)[0], "lr")),
                                   dtype=config.dtype) for path, shape in zip(layout.paths, layout.shapes)])


def flat_loss_and_terms(flat, layout, images, noise, config, schedule):
    """air.objective.loss_and_terms of the parameters given as one flat vector cut by `layout` (air.tree.Layout):
    the function a training step differentiates."""
    return loss_and_terms(layout.unflatten(flat), images, noise, config, schedule)


_gradient_and_terms = grad_and_aux(flat_loss_and_terms)


def gradient_and_terms(flat, layout, images, noise, config, schedule):
    """(the objective's gradient with respect to the flat parameters, its terms as plain numbers): what one
    training step computes before Adam, by autograd through flat_loss_and_terms."""
    return _gradient_and_terms(flat, layout, images, noise, config, schedule)


def train_step(state, config, batch, schedule, rates):
    """One Adam step on `batch` at `schedule` (air.schedules.at_step with the state's running statistics);
    updates `state` in place and returns the loss terms. NonFiniteError (without a checkpoint path) at a NaN or
    inf."""
    noise = sample_noise(state.rng, config, len(batch))
    step = state.adam["step"]
    # tanh's backward pass divides by cosh(x)^2, which overflows to inf for large |x| and gives the right zero;
    # the finiteness check below catches what matters, so numpy need not warn.
    with np.errstate(over="ignore"):
        grads, terms = gradient_and_terms(state.adam["params"], state.layout, batch, noise, config, schedule)
    _check_finite(terms["loss"], grads, step, step // steps_per_epoch(config), None)
    state.stats = estimator(config).update_stats(state.stats, terms, config)
    factor = schedule.lr_factor
    state.adam = adam_update(state.adam, grads, rates if factor == 1.0 else rates * factor, config.adam_betas,
                             config.adam_eps)
    if state.average is not None:  # in place: average <- d average + (1 - d) params
        state.average += (1.0 - config.param_average) * (state.adam["params"] - state.average)
    return terms


def train(config, datasets, out_dir=None, resume=False, progress=False, on_step=None, on_epoch=None):
    """Train from scratch, or from `out_dir`'s checkpoint if `resume`. Returns the metrics dict.

    The run folder (if any) gets config.json at the start, checkpoint.npz after every epoch and
    metrics.json at the end. `on_step(step, params_fn)` is called after every optimisation step
    (params_fn() gives the current parameters); raising KeyboardInterrupt from it interrupts the run as
    a user would. `on_epoch(record)` is called with each epoch's history record once it is checkpointed.
    A NaN or inf raises NonFiniteError after the metrics so far are written.
    """
    out = Path(out_dir) if out_dir is not None else None
    wall_start = time.perf_counter()
    state = starting_state(config, out, resume)
    total_steps = config.n_epochs * steps_per_epoch(config)
    rates = learning_rates(config, state.layout)
    bar = _progress_bar(total_steps, state.epoch * steps_per_epoch(config), progress)
    try:
        for epoch in range(state.epoch, config.n_epochs):
            try:
                schedule, means = train_epoch(state, config, datasets, total_steps, rates, bar, on_step)
            except NonFiniteError as error:  # name the checkpoint that keeps the last good epoch, if there is one
                kept = out / CHECKPOINT if out is not None and (out / CHECKPOINT).exists() else None
                raise NonFiniteError(error.step, error.epoch, error.quantity, kept) from None
            scores = end_epoch(state, config, datasets, schedule, means, wall_start)
            bar.set_postfix(loss=f"{state.history[-1]['loss']:.1f}", val_acc=f"{scores['count_acc']:.3f}",
                            best=f"{state.best['val_count_acc']:.3f}")
            if out is not None:
                save_state(out / CHECKPOINT, state, config)
            if on_epoch is not None:
                on_epoch(state.history[-1])
    except NonFiniteError as error:
        if out is not None:
            write_json(out / "metrics.json", {"status": f"failed: {error}", "history": state.history})
        raise
    finally:
        bar.close()
    metrics = final_metrics(state, config, datasets, state.wall_offset + time.perf_counter() - wall_start)
    if out is not None:
        write_json(out / "metrics.json", metrics)
    return metrics


def starting_state(config, out, resume):
    """The state a run starts from: restored from out's checkpoint if `resume`, else fresh, with the run's
    config.json written into `out` (if any)."""
    if resume:
        return restore_state(config, out / CHECKPOINT)
    state = fresh_state(config)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        write_json(out / "config.json", dataclasses.asdict(config))
    return state


def train_epoch(state, config, datasets, total_steps, rates, bar, on_step=None):
    """The training steps of epoch state.epoch: batches of the training scenes in a fresh order (or fresh
    streaming scenes), each step at its Schedule. Returns (the last step's Schedule, the epoch's mean of each
    logged term)."""
    n_steps = steps_per_epoch(config)
    images = datasets.train.images
    step = state.epoch * n_steps
    order = state.rng.permutation(len(images))
    sums = dict.fromkeys(["loss"] + logged_terms(config), 0.0)
    for b in range(n_steps):
        if config.scenes == "streaming":  # fresh scenes, from the training generator (so resumable)
            batch = training_scenes(config, state.rng, datasets.train_pool, config.batch_size).images
        else:
            batch = images[order[b * config.batch_size:(b + 1) * config.batch_size]]
        schedule = at_step(config, step, total_steps, state.stats)
        terms = train_step(state, config, batch, schedule, rates)
        for k in sums:
            sums[k] += float(terms[k])
        step += 1
        bar.update(1)
        if on_step is not None:
            on_step(step, lambda: state.layout.unflatten(state.adam["params"].copy()))
    return schedule, {k: v / n_steps for k, v in sums.items()}


def end_epoch(state, config, datasets, schedule, means, wall_start):
    """Score the scored parameters on the validation scenes, add the epoch's history record (its last Schedule,
    its mean terms, the scores, the wall time since wall_start and before the run was restored), keep the
    parameters if they are the best yet, and move the state on to the next epoch. Returns the scores."""
    epoch = state.epoch
    scores = evaluate(state.layout.unflatten(state.scored), config, datasets.val)
    state.history.append({
        "epoch": epoch + 1, "step": (epoch + 1) * steps_per_epoch(config), "temperature": schedule.temperature,
        "kl_scale": schedule.kl_scale, "pres_prior": list(schedule.pres_prior), **means,
        "val_count_acc": scores["count_acc"], "val_recon_mse": scores["recon_mse"],
        "val_per_class_acc": scores["per_class_acc"], "val_mean_pres_prob": scores["mean_pres_prob"],
        "val_mean_scale": scores["mean_scale"], "wall_s": state.wall_offset + time.perf_counter() - wall_start})
    if scores["count_acc"] > state.best["val_count_acc"]:
        state.best = {"val_count_acc": scores["count_acc"], "epoch": epoch + 1, "params": state.scored.copy()}
    state.epoch = epoch + 1
    return scores


def snapshot_recorder(config, images, every, total_steps):
    """An on_step callback for train and the list it fills: every `every` steps and at the last, air.infer on
    `images` (a few fixed scenes), kept as {step, boxes, z_pres, count, recon}; air.viz.write_training_gif
    animates them."""
    snapshots = []

    def on_step(step, params_fn):
        if step % every and step != total_steps:
            return
        out = infer(params_fn(), config, images)
        snapshots.append({"step": step, **{k: out[k] for k in ("boxes", "z_pres", "count", "recon")}})

    return on_step, snapshots


def final_metrics(state, config, datasets, wall_s):
    """The scores of the best validation epoch's parameters on the validation and test scenes, with the run's
    history and what its figures depend on."""
    best_params = state.layout.unflatten(state.best["params"])
    val = evaluate(best_params, config, datasets.val)
    test = evaluate(best_params, config, datasets.test)
    history = state.history
    return {
        "status": "complete",
        "best_val_count_acc": state.best["val_count_acc"],
        "best_epoch": state.best["epoch"],
        "last_val_count_acc": history[-1]["val_count_acc"] if history else float("nan"),
        "val_recon_mse": val["recon_mse"],
        "test_count_acc": test["count_acc"],
        "per_class_acc": test["per_class_acc"],
        "confusion": test["confusion"],
        "test_recon_mse": test["recon_mse"],
        "test_box_iou": test["box_iou"],
        "val_per_class_acc": val["per_class_acc"],
        "val_confusion": val["confusion"],
        "data_source": datasets.source,
        "n_steps": config.n_epochs * steps_per_epoch(config),
        "wall_s": wall_s,
        "environment": environment(),  # numpy, BLAS and its kernel, CPU: what the figures depend on
        "history": history,
    }


def _check_finite(loss, grads, step, epoch, checkpoint_dir):
    """Stop at the first NaN or inf, naming it, before it reaches the parameters."""
    checkpoint = checkpoint_dir / CHECKPOINT if checkpoint_dir is not None else None
    if not math.isfinite(float(loss)):
        raise NonFiniteError(step, epoch, f"loss ({float(loss)})", checkpoint)
    # One dot product: NaN or inf anywhere in the gradient makes it non-finite.
    if not math.isfinite(float(np.dot(grads, grads))):
        raise NonFiniteError(step, epoch, "gradient", checkpoint)


class _NoBar:
    def update(self, n):
        pass

    def set_postfix(self, **kwargs):
        pass

    def close(self):
        pass


def _progress_bar(total, initial, enabled):
    if not enabled:
        return _NoBar()
    return tqdm(total=total, initial=initial, unit="step", file=sys.stderr, dynamic_ncols=True, leave=False)
