"""The training loop: Adam on the negative ELBO, temperature annealing, KL warm-up, validation every epoch,
the best-validation parameters restored at the end (the seed's early stopping), and resumable checkpoints.
"""
import dataclasses
import math
import sys
import time
from pathlib import Path

import numpy as np
from autograd.differential_operators import grad_and_aux
from autograd.tracer import getval

from air import data as air_data
from air.checkpoint import CHECKPOINT, read_checkpoint, save_checkpoint, write_json
from air.metrics import evaluate
from air.model import init_params
from air.objective import batch_sums, combine, objective_total, prior_schedule, sample_noise
from air.optim import adam_init, adam_update
from air.runtime import environment
from air.tree import Layout


class NonFiniteError(RuntimeError):
    """Training produced a NaN or inf; names the step and the quantity."""

    def __init__(self, step, epoch, quantity, checkpoint):
        kept = f"the last good checkpoint is kept at {checkpoint}" if checkpoint else "no checkpoint had been written yet"
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
    return air_data.make_scenes(rng, pool, n, config.canvas_size, config.max_digits, config.digit_size,
                                counts=counts, dtype=np.dtype(config.dtype), overlap=config.overlap)


def _seeds(config):
    """Independent streams for the training scenes, the initial parameters and the training noise."""
    data, init, noise = np.random.SeedSequence(config.seed).spawn(3)
    return {"data": data, "init": init, "noise": noise}


def temperature(config, step, total_steps):
    """The Gumbel-sigmoid temperature at `step`: linear from temp_start (first step) to temp_end (last)."""
    frac = step / max(1, total_steps - 1)
    return config.temp_start + (config.temp_end - config.temp_start) * frac


def lr_factor(config, step, total_steps):
    """The learning rate's multiplier at `step`: 1, or a cosine from 1 down to config.lr_final at the last step."""
    if config.lr_schedule == "constant":
        return 1.0
    frac = step / max(1, total_steps - 1)
    return config.lr_final + (1.0 - config.lr_final) * 0.5 * (1.0 + math.cos(math.pi * frac))


def kl_scale(config, epoch):
    """The seed's KL warm-up: both KL weights scaled by (epoch + 1) / kl_warmup_epochs until it reaches 1."""
    return 1.0 if config.kl_warmup_epochs == 0 else min(1.0, (epoch + 1) / config.kl_warmup_epochs)


def steps_per_epoch(config):
    return config.n_train // config.batch_size  # the seed drops the last partial batch


def _objective(flat, layout, images, noise, config, temp, kl, pres_prior=None, signal_stats=None):
    """The loss of a flat parameter vector, and its terms as plain floats for logging (batch means)."""
    b = images.shape[0]
    sums = batch_sums(layout.unflatten(flat), images, noise, config, temp, pres_prior, signal_stats)
    total = objective_total(sums, config, kl) / b  # linear in the sums: one batch mean, after it
    terms = {k: getval(v) / b for k, v in sums.items() if k in ("recon", "kl_what", "kl_pres", "kl_where")}
    terms.update({k: v for k, v in sums.items() if k.startswith("signal_")})  # already per-scene statistics
    return total, {"loss": getval(combine(sums, config, kl)) / b, **terms}


_gradient_and_terms = grad_and_aux(_objective)


def train(config, datasets, out_dir=None, resume=False, progress=False, on_step=None, on_epoch=None):
    """Train from scratch, or from `out_dir`'s checkpoint if `resume`. Returns the metrics dict.

    The run folder (if any) gets config.json at the start, checkpoint.npz after every epoch and
    metrics.json at the end. `on_step(step, params_fn)` is called after every optimisation step
    (params_fn() gives the current parameters); raising KeyboardInterrupt from it interrupts the run as
    a user would. `on_epoch(record)` is called with each epoch's history record once it is checkpointed.
    A NaN or inf raises NonFiniteError after the metrics so far are written.
    """
    out = Path(out_dir) if out_dir is not None else None
    dtype = np.dtype(config.dtype)
    wall_start = time.perf_counter()
    if resume:
        state = read_checkpoint(out / CHECKPOINT)
        if state["config"] != config:
            raise ValueError(f"{out}: the checkpoint was written with another config; resume with the run's own")
        layout = Layout(state["params"])
        adam = {**state["adam"], "params": layout.flatten(state["params"])}
        best = dict(state["best"], params=layout.flatten(state["best_params"]))
        average = layout.flatten(state["average_params"]) if config.param_average else None
        rng = np.random.default_rng()
        rng.bit_generator.state = state["rng_state"]
        history, first_epoch = state["history"], state["epoch"] + 1
        signal_stats = state.get("signal_stats")
        wall_offset = history[-1]["wall_s"] if history else 0.0
    else:
        params = init_params(np.random.default_rng(_seeds(config)["init"]), config)
        layout = Layout(params)
        adam = adam_init(layout.flatten(params))
        best = {"val_count_acc": -1.0, "epoch": -1, "params": adam["params"].copy()}
        average = adam["params"].copy() if config.param_average else None
        rng = np.random.default_rng(_seeds(config)["noise"])
        history, first_epoch, wall_offset = [], 0, 0.0
        signal_stats = None
        if out is not None:
            out.mkdir(parents=True, exist_ok=True)
            write_json(out / "config.json", dataclasses.asdict(config))

    n_steps = steps_per_epoch(config)
    total_steps = config.n_epochs * n_steps
    rates = learning_rates(config, layout)
    images = datasets.train.images
    checkpoint_written = out is not None and (out / CHECKPOINT).exists()
    bar = _progress_bar(total_steps, first_epoch * n_steps, progress)
    step = first_epoch * n_steps
    try:
        for epoch in range(first_epoch, config.n_epochs):
            kl = kl_scale(config, epoch)
            order = rng.permutation(len(images))
            sums = {"loss": 0.0, "recon": 0.0, "kl_what": 0.0, "kl_pres": 0.0}
            for b in range(n_steps):
                if config.scenes == "streaming":  # fresh scenes, from the training generator (so resumable)
                    batch = training_scenes(config, rng, datasets.train_pool, config.batch_size).images
                else:
                    batch = images[order[b * config.batch_size:(b + 1) * config.batch_size]]
                noise = sample_noise(rng, config, config.batch_size)
                temp = temperature(config, step, total_steps)
                prior = prior_schedule(config, step, total_steps)
                # tanh's backward pass divides by cosh(x)^2, which overflows to inf for large |x| and gives the
                # right zero; the finiteness check below catches what matters, so numpy need not warn.
                with np.errstate(over="ignore"):
                    grads, terms = _gradient_and_terms(adam["params"], layout, batch, noise, config, temp, kl, prior,
                                                       _signal_normaliser(config, signal_stats))
                _check_finite(terms["loss"], grads, step, epoch, out if checkpoint_written else None)
                if "signal_mean" in terms:
                    signal_stats = _running_signal_stats(signal_stats, terms, config.signal_decay)
                factor = lr_factor(config, step, total_steps)
                adam = adam_update(adam, grads, rates if factor == 1.0 else rates * factor, config.adam_betas,
                                   config.adam_eps)
                if average is not None:  # in place: average <- d average + (1 - d) params
                    average += (1.0 - config.param_average) * (adam["params"] - average)
                for k in sums:
                    sums[k] += float(terms[k])
                step += 1
                bar.update(1)
                if on_step is not None:
                    on_step(step, lambda: layout.unflatten(adam["params"].copy()))
            scored = adam["params"] if average is None else average  # what validation, best and test use
            scores = evaluate(layout.unflatten(scored), config, datasets.val)
            record = {"epoch": epoch + 1, "step": step, "temperature": temp, "kl_scale": kl, "pres_prior": list(prior),
                      **{k: v / n_steps for k, v in sums.items()},
                      "val_count_acc": scores["count_acc"], "val_recon_mse": scores["recon_mse"],
                      "val_per_class_acc": scores["per_class_acc"], "val_mean_pres_prob": scores["mean_pres_prob"],
                      "val_mean_scale": scores["mean_scale"],
                      "wall_s": wall_offset + time.perf_counter() - wall_start}
            history.append(record)
            if scores["count_acc"] > best["val_count_acc"]:
                best = {"val_count_acc": scores["count_acc"], "epoch": epoch + 1, "params": scored.copy()}
            bar.set_postfix(loss=f"{record['loss']:.1f}", val_acc=f"{scores['count_acc']:.3f}",
                            best=f"{best['val_count_acc']:.3f}")
            if out is not None:
                save_checkpoint(out / CHECKPOINT, params=layout.unflatten(adam["params"]),
                                best_params=layout.unflatten(best["params"]), adam=adam,
                                rng_state=rng.bit_generator.state, config=config, history=history, epoch=epoch,
                                best={k: v for k, v in best.items() if k != "params"},
                                complete=epoch + 1 == config.n_epochs, signal_stats=signal_stats,
                                average_params=None if average is None else layout.unflatten(average))
                checkpoint_written = True
            if on_epoch is not None:
                on_epoch(record)
    except NonFiniteError as error:
        if out is not None:
            write_json(out / "metrics.json", {"status": f"failed: {error}", "history": history})
        raise
    finally:
        bar.close()

    best_params = layout.unflatten(best["params"])
    val = evaluate(best_params, config, datasets.val)
    test = evaluate(best_params, config, datasets.test)
    metrics = {
        "status": "complete",
        "best_val_count_acc": best["val_count_acc"],
        "best_epoch": best["epoch"],
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
        "n_steps": total_steps,
        "wall_s": wall_offset + time.perf_counter() - wall_start,
        "environment": environment(),  # numpy, BLAS and its kernel, CPU: what the figures depend on
        "history": history,
    }
    if out is not None:
        write_json(out / "metrics.json", metrics)
    return metrics


def learning_rates(config, layout):
    """Adam's learning rate: config.lr, or a vector over the flat parameters when REINFORCE's baseline has its own."""
    if "baseline" not in layout.skeleton:
        return config.lr
    rates = np.full(sum(int(np.prod(shape)) for shape in layout.shapes), config.lr, dtype=config.dtype)
    start = 0
    for path, shape in zip(layout.paths, layout.shapes):
        size = int(np.prod(shape))
        if path.startswith("baseline/"):
            rates[start:start + size] = config.baseline_lr
        start += size
    return rates


def _signal_normaliser(config, stats):
    """The (shift, scale) REINFORCE's signal is normalised by, from the running stats; None for raw."""
    if stats is None or config.signal_norm == "none":
        return None
    return stats if config.signal_norm == "running" else (stats[0], 1.0)  # "center": shift only


def _running_signal_stats(stats, terms, decay):
    """NVIL's running (mean, sd) of REINFORCE's learning signal, updated with this batch's; the first batch
    sets them."""
    if stats is None:
        return (terms["signal_mean"], math.sqrt(terms["signal_var"]))
    mean = decay * stats[0] + (1 - decay) * terms["signal_mean"]
    var = decay * stats[1] ** 2 + (1 - decay) * terms["signal_var"]
    return (mean, math.sqrt(var))


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
    from tqdm import tqdm
    return tqdm(total=total, initial=initial, unit="step", file=sys.stderr, dynamic_ncols=True, leave=False)
