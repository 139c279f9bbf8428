"""Trained models as files: air.shipped's save and load, and experiments.export."""
import dataclasses
import json

import numpy as np
import pytest

import air
from air import shipped
from air.metrics import family_scores
from air.tree import leaves
from experiments import cli, evaluate, export, train, visualize
from experiments.cli import load_data
from tests.test_cli import ELBO_FLAGS, TINY_FLAGS


@pytest.fixture
def models(tmp_path, monkeypatch):
    """An empty models folder in place of air/models."""
    folder = tmp_path / "models"
    folder.mkdir()
    monkeypatch.setattr(shipped, "MODELS_DIR", folder)
    return folder


@pytest.fixture
def tiny_run(tmp_path, mnist_dir, monkeypatch):
    monkeypatch.setenv("AIR_MNIST_DIR", str(mnist_dir))
    run_dir = tmp_path / "run"
    flags = [*TINY_FLAGS, "--dtype", "float64", "--object-encoder", "glimpse"]
    assert cli.run(train.main, [*flags, "--out", str(run_dir), "--no-figures", "--quiet"]) == 0
    return run_dir


def test_save_then_load_gives_float32_params_and_config(models):
    config = dataclasses.replace(air.preset("seed"), dtype="float64", what_dim=7)
    params = air.init_params(np.random.default_rng(1), config)
    saved = shipped.save(models / "m.npz", params, config, {"name": "m", "note": [1, 2]})
    assert saved == dataclasses.replace(config, dtype="float32")
    back, back_config = air.pretrained("m")
    assert back_config == saved and shipped.card("m") == {"name": "m", "note": [1, 2]}
    assert shipped.names() == ["m"]
    for (key, value), (back_key, back_value) in zip(leaves(params), leaves(back)):
        assert key == back_key and back_value.dtype == np.float32
        np.testing.assert_array_equal(back_value, value.astype(np.float32))
    images = np.random.default_rng(2).uniform(size=(3, 32, 32)).astype(np.float32)
    assert air.infer(back, back_config, images)["count"].shape == (3,)


def _one_line(error):
    message = str(error.value)
    assert "\n" not in message and "Traceback" not in message
    return message


def test_unusable_model_files_fail_in_one_line(models):
    config = air.preset("seed")
    params = air.init_params(np.random.default_rng(1), config)
    with pytest.raises(shipped.PretrainedError) as e:
        air.pretrained("paper")
    assert _one_line(e) == "no pretrained model 'paper' (shipped: none)"
    with pytest.raises(shipped.PretrainedError, match="plain name"):
        air.pretrained("../paper")

    path = models / "good.npz"
    shipped.save(path, params, config, {})
    raw = path.read_bytes()
    (models / "cut.npz").write_bytes(raw[: len(raw) // 2])
    (models / "empty.npz").write_bytes(b"")
    for name in ("cut", "empty"):
        with pytest.raises(shipped.PretrainedError) as e:
            air.pretrained(name)
        assert "damaged or truncated" in _one_line(e) and f"{name}.npz" in str(e.value)

    def rewrite(name, change):
        with np.load(path) as f:
            arrays = {k: f[k] for k in f.files}
        change(arrays)
        np.savez(models / f"{name}.npz", **arrays)

    def meta(arrays, **fields):
        arrays["meta"] = np.array(json.dumps({**json.loads(str(arrays["meta"])), **fields}))

    rewrite("future", lambda a: meta(a, format_version=99))
    rewrite("alien", lambda a: meta(a, config={**json.loads(str(a["meta"]))["config"], "canvas_size": -3}))
    rewrite("short", lambda a: a.pop("params/decoder/0/w"))
    rewrite("narrow", lambda a: a.update({"params/decoder/0/w": a["params/decoder/0/w"][:, :5]}))
    for name, expected in (("future", "model format 99"), ("alien", "does not fit this version"),
                           ("short", "missing ['decoder/0/w']"), ("narrow", "parameter decoder/0/w has shape")):
        with pytest.raises(shipped.PretrainedError) as e:
            air.pretrained(name)
        assert expected in _one_line(e), str(e.value)


def test_export_writes_a_model_and_its_card(tiny_run, models, capsys):
    assert cli.run(export.main, [str(tiny_run), "--name", "tiny", "--n-test", "60"]) == 0
    params, config = air.pretrained("tiny")
    card = shipped.card("tiny")
    assert config.dtype == "float32" and card["seed"] == config.seed == 0
    assert card["command"] == ("python -m experiments.train --preset seed --seed 0 --n-train 64 --n-val 32 "
                               "--n-test 32 --object-encoder glimpse --n-epochs 2 --batch-size 16 --dtype float64")
    assert card["test"]["own"]["n_test"] == 60 and "pyro" not in card["test"]  # Pyro's scenes are 50x50; this 32
    assert "searched_acc" not in card["test"]["own"] and "evidence" not in card["test"]  # a squared error: no ELBO
    # The card's figures are the shipped (float32) parameters' scores, re-measurable from the file alone.
    family = dataclasses.replace(config, n_test=60)
    assert family_scores(params, family, load_data(family, quiet=True).test)["count_acc"] == pytest.approx(
        card["test"]["own"]["count_acc"])
    markdown = (models / "tiny.md").read_text()
    assert card["command"] in markdown and "| own | 12-18 px on 32 | 60 |" in markdown
    assert "No log-likelihood" in markdown and "Pyro" not in markdown
    assert "air/models" not in capsys.readouterr().err


def test_an_elbo_models_card_holds_its_searched_count_and_evidence(tmp_path, mnist_dir, models, monkeypatch):
    monkeypatch.setenv("AIR_MNIST_DIR", str(mnist_dir))
    run_dir = tmp_path / "elbo"
    pyro_canvas = ["--canvas-size", "50"]  # Pyro's canvas, so the card scores Pyro's scenes too
    assert cli.run(train.main, [*TINY_FLAGS, *ELBO_FLAGS, *pyro_canvas, "--out", str(run_dir), "--no-figures", "--quiet"]) == 0
    assert cli.run(export.main, [str(run_dir), "--name", "small", "--n-test", "30"]) == 0
    card = shipped.card("small")
    assert card["test"]["pyro"]["digit_size"] == "pyro" and card["test"]["pyro"]["n_test"] == 30
    assert "| pyro | Pyro's generator" in (models / "small.md").read_text()
    for family in ("own", "pyro"):
        assert 0.0 <= card["test"][family]["searched_acc"] <= 1.0 and card["test"][family]["searched_stderr"] >= 0
    evidence = card["test"]["evidence"]
    assert evidence["evidence_k"] == 100 and evidence["evidence_scenes"] == 30
    assert evidence["log_px"] >= evidence["elbo"]
    assert f"log p(x) >= {evidence['log_px']:.1f}" in (models / "small.md").read_text()


def test_rescore_remeasures_a_card_and_keeps_the_model(tiny_run, models, capsys):
    assert cli.run(export.main, [str(tiny_run), "--name", "tiny", "--n-test", "60"]) == 0
    before_params, _ = air.pretrained("tiny")
    before = shipped.card("tiny")
    assert cli.run(export.main, ["--rescore", "--name", "tiny", "--n-test", "40"]) == 0
    after = shipped.card("tiny")
    assert after["test"]["own"]["n_test"] == 40 and "rescored_at" in after
    assert {k: v for k, v in after.items() if k not in ("test", "rescored_at")} == \
        {k: v for k, v in before.items() if k != "test"}
    for (key, a), (_, b) in zip(leaves(before_params), leaves(air.pretrained("tiny")[0])):
        np.testing.assert_array_equal(a, b, err_msg=key)
    assert "re-measured at commit" in (models / "tiny.md").read_text()
    for argv, message in ((["--rescore", "--name", "nope"], "--rescore: no pretrained model 'nope'"),
                          ([str(tiny_run), "--rescore", "--name", "tiny"], "one of them"),
                          (["--name", "tiny"], "one of them")):
        assert cli.run(export.main, argv) == 2
        assert message in capsys.readouterr().err


def test_export_refuses_bad_input(tiny_run, models, capsys):
    for argv, message in (([str(tiny_run), "--name", "a b"], "--name: a plain name"),
                          ([str(tiny_run.parent / "none"), "--name", "x"], "no checkpoint found")):
        assert cli.run(export.main, argv) == 2
        assert message in capsys.readouterr().err
    metrics = json.loads((tiny_run / "metrics.json").read_text())
    (tiny_run / "metrics.json").write_text(json.dumps({**metrics, "status": "running"}))
    assert cli.run(export.main, [str(tiny_run), "--name", "x"]) == 2
    assert "not a finished run" in capsys.readouterr().err
    assert shipped.names() == []


def test_evaluate_and_visualize_take_a_shipped_model(tiny_run, models, tmp_path, capsys):
    assert cli.run(export.main, [str(tiny_run), "--name", "tiny", "--n-test", "40"]) == 0
    capsys.readouterr()
    assert cli.run(evaluate.main, ["--pretrained", "tiny", "--json", "--n-test", "40"]) == 0
    scores = json.loads(capsys.readouterr().out)
    assert scores["count_acc"] == pytest.approx(shipped.card("tiny")["test"]["own"]["count_acc"])
    # Without --n-test a shipped model is scored on as many scenes as its card, and the text names them and the
    # standard error.
    assert cli.run(evaluate.main, ["--pretrained", "tiny"]) == 0
    printed = capsys.readouterr().out
    acc = shipped.card("tiny")["test"]["own"]["count_acc"]
    assert "test scenes: 40 " in printed
    assert f"count accuracy   {acc:.4f} +- {(acc * (1 - acc) / 40) ** 0.5:.4f}" in printed
    out = tmp_path / "figures"
    assert cli.run(visualize.main, ["--pretrained", "tiny", "--out", str(out), "--quiet"]) == 0
    assert sorted(p.stem for p in out.glob("*.png")) == ["attention", "count_confusion", "patches",
                                                         "reconstructions", "training_scenes"]
    for argv, message in (([], "give a RUN folder or --pretrained NAME"),
                          ([str(tiny_run), "--pretrained", "tiny"], "give a RUN folder or --pretrained NAME"),
                          (["--pretrained", "nope"], "--pretrained: no pretrained model 'nope' (shipped: tiny)")):
        for main in (evaluate.main, visualize.main):
            assert cli.run(main, argv) == 2
            assert message in capsys.readouterr().err
    assert cli.run(visualize.main, [str(tiny_run), "--out", str(out)]) == 2
    assert "--out is for --pretrained" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["seed", "best", "paper"])
def test_each_shipped_model_is_its_preset_and_scores_as_its_card_says(name):
    """The shipped file loads, holds its preset as it ships now, and re-scores on 400 fresh test scenes a family
    within four standard errors of its card (5,000 scenes a family at export)."""
    assert name in shipped.names()
    params, config = air.pretrained(name)
    card = shipped.card(name)
    assert config == dataclasses.replace(air.preset(name), seed=card["seed"], dtype="float32")
    assert card["command"] == f"python -m experiments.train --preset {name} --seed {card['seed']}"
    n = 400
    for family, changes in export.FAMILIES:
        if family not in card["test"]:
            continue
        scenes = dataclasses.replace(config, n_test=n, eval_seed=config.eval_seed + 1, **changes)
        acc = family_scores(params, scenes, load_data(scenes, quiet=True).test)["count_acc"]
        expected = card["test"][family]["count_acc"]
        assert abs(acc - expected) <= 4 * np.sqrt(expected * (1 - expected) / n) + 1 / n, (family, acc, expected)


def test_the_commands_take_the_shipped_paper_model(tmp_path, capsys):
    """As a fresh install runs them: evaluate and visualize --pretrained paper, no run folder anywhere."""
    assert cli.run(evaluate.main, ["--pretrained", "paper", "--json", "--n-test", "60"]) == 0
    assert json.loads(capsys.readouterr().out)["count_acc"] > 0.9
    out = tmp_path / "figures"
    assert cli.run(visualize.main, ["--pretrained", "paper", "--out", str(out), "--quiet"]) == 0
    assert len(list(out.glob("*.png"))) == 5
