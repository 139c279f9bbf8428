"""Training: reproducibility, bit-identical resume, NaN handling, checkpoints and the infer API."""
import dataclasses
import json

import numpy as np
import pytest

import air
import air.guide
import air.schedules
from air import train as air_train
from air.checkpoint import read_checkpoint
from air.tree import leaves
from air.schedules import fixed


def run(config, mnist, out=None, **kwargs):
    return air_train.train(config, air_train.build_datasets(config, mnist), out_dir=out, **kwargs)


def without_wall(metrics):
    strip = lambda d: {k: v for k, v in d.items() if k != "wall_s"}
    # As JSON text, so NaN scores (no correctly counted digit to match a box to) compare equal.
    return json.dumps({**strip(metrics), "history": [strip(h) for h in metrics["history"]]}, sort_keys=True)


def assert_trees_equal(a, b):
    (paths_a, arrays_a), (paths_b, arrays_b) = zip(*leaves(a)), zip(*leaves(b))
    assert paths_a == paths_b
    for path, x, y in zip(paths_a, arrays_a, arrays_b):
        assert np.array_equal(x, y), f"{path} differs"


def test_same_seed_gives_identical_metrics(tiny_config, mnist):
    first, second = run(tiny_config, mnist), run(tiny_config, mnist)
    assert without_wall(first) == without_wall(second)
    other = run(dataclasses.replace(tiny_config, seed=1), mnist)
    assert other["history"][0]["loss"] != first["history"][0]["loss"]


def test_metrics_json_has_the_promised_keys(tiny_config, mnist, tmp_path):
    run(tiny_config, mnist, tmp_path / "run")
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    for key in ("best_val_count_acc", "val_recon_mse", "test_count_acc", "per_class_acc", "confusion", "wall_s",
                "history"):
        assert key in metrics
    assert len(metrics["history"]) == tiny_config.n_epochs
    assert np.array(metrics["confusion"]).sum() == tiny_config.n_test
    assert air.Config.from_dict(json.loads((tmp_path / "run" / "config.json").read_text())) == tiny_config


def test_best_epoch_parameters_are_restored(tiny_config, mnist, tmp_path):
    metrics = run(tiny_config, mnist, tmp_path / "run")
    params, config = air.load_checkpoint(tmp_path / "run")
    assert config == tiny_config
    scenes = air_train.build_datasets(config, mnist).val
    accuracy = np.mean(air.infer(params, config, scenes.images)["count"] == scenes.counts)
    assert accuracy == pytest.approx(metrics["best_val_count_acc"])
    assert metrics["best_val_count_acc"] == max(h["val_count_acc"] for h in metrics["history"])


def test_the_checkpoint_keeps_the_best_epochs_parameters_not_the_last(tiny_config, mnist, tmp_path, monkeypatch):
    """With validation accuracies scripted to 0.2, 0.9, 0.5, the best parameters are those at the end of epoch 2:
    the checkpoint's best_params (which load_checkpoint and the test score use) hold them, its params the last."""
    real_evaluate = air_train.evaluate
    scripted = [0.2, 0.9, 0.5]
    calls = []

    def evaluate(params, config, scenes):
        scores = real_evaluate(params, config, scenes)
        calls.append(1)
        if len(calls) <= len(scripted):  # the validation of each epoch; final_metrics' own calls stay real
            scores["count_acc"] = scripted[len(calls) - 1]
        return scores

    monkeypatch.setattr(air_train, "evaluate", evaluate)
    steps = air.schedules.steps_per_epoch(tiny_config)
    seen = {}
    metrics = run(tiny_config, mnist, tmp_path / "run", on_step=lambda step, params: seen.update({step: params()}))
    assert [h["val_count_acc"] for h in metrics["history"]] == scripted
    assert metrics["best_epoch"] == 2 and metrics["best_val_count_acc"] == 0.9
    state = read_checkpoint(tmp_path / "run")
    assert state["best"] == {"val_count_acc": 0.9, "epoch": 2}
    assert_trees_equal(state["best_params"], seen[2 * steps])
    assert_trees_equal(state["params"], seen[3 * steps])
    assert any(not np.array_equal(x, y) for (_, x), (_, y) in zip(leaves(seen[2 * steps]), leaves(seen[3 * steps]))), \
        "epoch 3 should have moved the parameters"
    params, _ = air.load_checkpoint(tmp_path / "run")
    assert_trees_equal(params, seen[2 * steps])
    scenes = air_train.build_datasets(tiny_config, mnist).test
    assert metrics["test_count_acc"] == np.mean(air.infer(seen[2 * steps], tiny_config, scenes.images)["count"]
                                                == scenes.counts)


@pytest.mark.parametrize("stop_at, changes", [
    (6, {}),  # in the middle of epoch 2
    (8, {}),  # exactly at its end
    (6, {"scenes": "streaming", "pres_estimator": "enumerate"}),  # the scene generator's state is resumed too
    (6, {"pres_estimator": "reinforce", "signal_norm": "running"}),  # and NVIL's running signal statistics
    (6, {"pres_estimator": "reinforce", "signal_norm": "center", "pres_floor": 0.05}),
    (6, {"param_average": 0.9}),  # the running average of the parameters is resumed too
    (6, {"inference": "recurrent", "rnn_hidden": 16, "z_where": "stochastic", "scale_bound": "tanh"}),
])
def test_interrupted_and_resumed_run_is_bit_identical(tiny_config, mnist, tmp_path, stop_at, changes):
    tiny_config = dataclasses.replace(tiny_config, **changes)
    whole = run(tiny_config, mnist, tmp_path / "whole")

    def interrupt(step, params):
        if step == stop_at:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run(tiny_config, mnist, tmp_path / "parts", on_step=interrupt)
    resumed = run(tiny_config, mnist, tmp_path / "parts", resume=True)

    assert without_wall(resumed) == without_wall(whole)
    a, b = read_checkpoint(tmp_path / "whole"), read_checkpoint(tmp_path / "parts")
    assert_trees_equal(a["params"], b["params"])
    assert_trees_equal(a["best_params"], b["best_params"])
    assert (a["average_params"] is None) == (tiny_config.param_average == 0)
    if a["average_params"] is not None:
        assert_trees_equal(a["average_params"], b["average_params"])
    for key in ("m", "v", "step"):
        assert np.array_equal(a["adam"][key], b["adam"][key])
    assert a["rng_state"] == b["rng_state"]


def test_validation_and_the_best_checkpoint_use_the_running_average(tiny_config, mnist, tmp_path):
    """param_average = d: after every step, average <- d average + (1 - d) params, from the initial parameters;
    validation scores the average and the best checkpoint (so the test score) holds it."""
    from air.tree import Layout
    config = dataclasses.replace(tiny_config, n_epochs=1, param_average=0.7)
    initial = air.init_params(np.random.default_rng(air_train._seeds(config)["init"]), config)
    layout = Layout(initial)
    raw = []
    metrics = run(config, mnist, tmp_path / "run", on_step=lambda step, params: raw.append(layout.flatten(params())))
    state = read_checkpoint(tmp_path / "run")
    first = run(dataclasses.replace(config, param_average=0.0), mnist)
    average = layout.flatten(initial).astype(np.float64)
    for params in raw:
        average = 0.7 * average + 0.3 * params
    best = layout.flatten(state["best_params"])
    assert np.allclose(best, average, rtol=1e-5, atol=1e-6)
    assert np.array_equal(best, layout.flatten(state["average_params"]))
    assert not np.allclose(best, raw[-1], rtol=1e-5, atol=1e-6)  # not the raw parameters
    assert np.array_equal(layout.flatten(state["params"]), raw[-1])
    scenes = air_train.build_datasets(config, mnist).val
    assert metrics["best_val_count_acc"] == np.mean(air.infer(state["best_params"], config, scenes.images)["count"]
                                                    == scenes.counts)
    assert first["history"][0]["loss"] == metrics["history"][0]["loss"]  # averaging leaves training alone


def test_nan_stops_training_and_keeps_the_checkpoint(tiny_config, mnist, tmp_path, monkeypatch):
    real_noise = air_train.sample_noise
    calls = []

    def poisoned(rng, config, batch_size):
        calls.append(1)
        noise = real_noise(rng, config, batch_size)
        if len(calls) == 6:  # step 5, in the second epoch
            noise["what"][0, 0, 0] = np.nan
        return noise

    monkeypatch.setattr(air_train, "sample_noise", poisoned)
    with pytest.raises(air_train.NonFiniteError, match=r"non-finite loss \(nan\) at step 5 \(epoch 2\)"):
        run(tiny_config, mnist, tmp_path / "run")
    state = read_checkpoint(tmp_path / "run")
    assert state["epoch"] == 0 and not state["complete"]
    assert all(np.isfinite(v).all() for _, v in leaves(state["params"]))
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["status"].startswith("failed: non-finite loss") and len(metrics["history"]) == 1


def test_infer_follows_its_contract(tiny_config, mnist):
    params = air.init_params(np.random.default_rng(3), tiny_config)
    scenes = air_train.build_datasets(tiny_config, mnist).val
    out = air.infer(params, tiny_config, scenes.images)
    b, t = len(scenes), tiny_config.max_steps
    assert out["count"].shape == (b,) and out["z_pres"].shape == (b, t) and out["boxes"].shape == (b, t, 4)
    assert out["z_where"].shape == (b, t, 3) and out["z_what"].shape == (b, t, tiny_config.what_dim)
    assert out["recon"].shape == scenes.images.shape
    logits = air.guide.guide(params, tiny_config, scenes.images)["pres_logit"]
    assert np.array_equal(out["z_pres"], np.cumprod(logits > 0, axis=1))
    assert np.array_equal(out["count"], out["z_pres"].sum(axis=1))
    present = out["z_pres"][:, :, None, None]
    assert np.allclose(out["recon"], (present * out["canvases"]).sum(axis=1))
    with pytest.raises(ValueError, match=r"images must have shape \(batch, 32, 32\)"):
        air.infer(params, tiny_config, scenes.images[:, :16])


def test_loss_is_deterministic_in_its_arguments(tiny_config):
    rng = np.random.default_rng(0)
    params = air.init_params(rng, tiny_config)
    images = rng.random((4, 32, 32)).astype(np.float32)
    noise = air.sample_noise(rng, tiny_config, 4)
    assert air.loss(params, images, noise, tiny_config, fixed(tiny_config, 0.5)) == air.loss(params, images, noise, tiny_config, fixed(tiny_config, 0.5))
    assert air.loss(params, images, noise, tiny_config, fixed(tiny_config, 0.5)) != air.loss(params, images, noise, tiny_config, fixed(tiny_config, 0.6))
    assert np.asarray(air.loss(params, images, noise, tiny_config, fixed(tiny_config, 0.5))).dtype == np.float32


@pytest.mark.parametrize("changes", [
    {"pres_estimator": "enumerate", "lr_schedule": "cosine"},
    {"inference": "recurrent", "rnn_hidden": 16},
    {"inference": "residual", "rnn_hidden": 16, "pres_estimator": "enumerate", "count_prior": "geometric",
     "likelihood": "gaussian", "scenes": "streaming", "composition": "max"},
    {"decoder": "conv", "decoder_channels": (8, 4), "overlap": "rejected", "prior_hold": 0.3,
     "count_prior": "geometric"},
])
def test_switches_train_without_nan(tiny_config, mnist, tmp_path, changes):
    config = dataclasses.replace(tiny_config, n_epochs=2, **changes)
    metrics = run(config, mnist, tmp_path / "run")
    assert all(np.isfinite(h["loss"]) for h in metrics["history"])
    # The test score is the best parameters' count accuracy on the test scenes, recomputed here with air.infer.
    params, _ = air.load_checkpoint(tmp_path / "run")
    scenes = air_train.build_datasets(config, mnist).test
    counts = air.infer(params, config, scenes.images)["count"]
    assert metrics["test_count_acc"] == np.mean(counts == scenes.counts)
    confusion = np.array(metrics["confusion"])
    assert confusion.sum() == len(scenes) and np.trace(confusion) == np.sum(counts == scenes.counts)


@pytest.mark.parametrize("name", sorted(air.config.PRESETS))
def test_every_preset_trains_a_few_steps_without_nan(name, mnist):
    config = dataclasses.replace(air.preset(name), n_train=16, n_val=8, n_test=8, n_epochs=2, batch_size=8)
    metrics = run(config, mnist)
    assert metrics["n_steps"] == 4 and all(np.isfinite(h["loss"]) for h in metrics["history"])


def test_cosine_learning_rate_schedule(tiny_config):
    config = dataclasses.replace(tiny_config, lr_schedule="cosine", lr_final=0.1)
    assert air.schedules.lr_factor(config, 0, 101) == pytest.approx(1.0)
    assert air.schedules.lr_factor(config, 50, 101) == pytest.approx(0.55)
    assert air.schedules.lr_factor(config, 100, 101) == pytest.approx(0.1)
    assert air.schedules.lr_factor(tiny_config, 100, 101) == 1.0


def test_train_counts_restrict_training_and_validation_scenes_but_not_test_scenes(tiny_config, mnist):
    config = dataclasses.replace(tiny_config, max_digits=3, train_counts=(0, 1, 3), n_train=120, n_val=60, n_test=80)
    datasets = air_train.build_datasets(config, mnist)
    assert set(np.unique(datasets.train.counts)) == {0, 1, 3} == set(np.unique(datasets.val.counts))
    assert set(np.unique(datasets.test.counts)) == {0, 1, 2, 3}
    streaming = dataclasses.replace(config, scenes="streaming")
    batch = air_train.training_scenes(streaming, np.random.default_rng(0), datasets.train_pool, 200)
    assert set(np.unique(batch.counts)) == {0, 1, 3}
    # Without the switch the scenes are make_scenes' own draw from the data stream, as before it existed.
    from air.data import digit_pools, make_scenes
    plain = make_scenes(np.random.default_rng(air_train._seeds(tiny_config)["data"]), digit_pools(mnist)["train"],
                        tiny_config.n_train)
    assert np.array_equal(air_train.build_datasets(tiny_config, mnist).train.images, plain.images)
    with pytest.raises(air.ConfigError, match="train_counts: must be counts between 0 and max_digits"):
        dataclasses.replace(tiny_config, train_counts=(0, 3))


def test_a_stochastic_where_keeps_its_kl_in_the_history(tiny_config, mnist):
    config = dataclasses.replace(tiny_config, z_where="stochastic", n_epochs=1)
    history = run(config, mnist)["history"]
    assert history[0]["kl_where"] > 0
    assert "kl_where" not in run(tiny_config, mnist)["history"][0]
