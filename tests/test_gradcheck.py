"""experiments.gradcheck and air.gradcheck: the checks pass on every switch, catch a wrong gradient, and say so."""
import dataclasses

import numpy as np
import pytest

import air
from air.gradcheck import check_gradients, group_slices, problem, step_size_curve
from experiments import cli, gradcheck

SMALL = dict(canvas_size=12, window_size=6, digit_size=(6, 8), what_dim=3, encoder_hidden=(10,), decoder_hidden=7,
             rnn_hidden=5, glimpse_hidden=6, baseline_hidden=4)
SMALL_FLAGS = ["--canvas-size", "12", "--window-size", "6", "--digit-size", "6,8", "--what-dim", "3",
               "--encoder-hidden", "10", "--decoder-hidden", "7", "--rnn-hidden", "5", "--glimpse-hidden", "6",
               "--baseline-hidden", "4", "--batch", "3"]


def small_problem(**switches):
    config = dataclasses.replace(air.preset("seed"), **{**SMALL, **switches})
    images = np.random.default_rng(0).random((3, 12, 12))
    return problem(config, images)


@pytest.mark.parametrize("switches", [
    {},
    dict(inference="residual", object_encoder="glimpse", pres_estimator="enumerate", z_where="stochastic"),
    dict(inference="recurrent", pres_estimator="reinforce", count_prior="geometric", likelihood="gaussian"),
    dict(decoder="conv", window_size=8, decoder_channels=(3, 2), pres_estimator="enumerate"),
    dict(inference="residual", object_encoder="glimpse", pres_estimator="enumerate", composition="max"),
    dict(inference="residual", step_memory="none", object_encoder="glimpse", pres_estimator="enumerate"),
    dict(inference="recurrent", object_encoder="glimpse", z_where="stochastic", scale_bound="tanh",
         log_scale_range=(-1.0, -0.2), pres_estimator="reinforce"),
])
def test_autograd_agrees_with_finite_differences(switches):
    f, g, theta, layout = small_problem(**switches)
    checks = check_gradients(f, g, theta, layout)
    assert {c.group for c in checks} >= {"encoder", "decoder", "heads"}
    assert all(c.passes(1e-6) for c in checks), [c for c in checks if not c.passes(1e-6)]
    assert sum(c.rel_error <= 1e-6 for c in checks) >= 0.8 * len(checks)  # mostly by agreement, not by the allowance


def test_a_wrong_gradient_is_caught():
    f, g, theta, layout = small_problem()
    halved = lambda t: g(t) * np.where(np.arange(len(t)) % 2 == 0, 1.0, 0.5)  # half of every odd coordinate
    failing = {c.group for c in check_gradients(f, halved, theta, layout, n_coordinates=6) if not c.passes(1e-3)}
    assert failing == {"encoder", "decoder", "heads"}


def test_the_error_against_step_size_is_v_shaped():
    f, g, theta, layout = small_problem()
    steps = np.logspace(-1, -11, 11)
    for group, errors in step_size_curve(f, g, theta, layout, steps).items():
        bottom = int(np.argmin(errors))
        assert 0 < bottom < len(steps) - 1, (group, errors)  # both large and tiny steps are worse
        assert errors[bottom] < 1e-7 and errors[0] > 10 * errors[bottom] and errors[-1] > 10 * errors[bottom]


def test_unknown_group_is_named():
    f, g, theta, layout = small_problem()
    with pytest.raises(ValueError, match="unknown parameter group 'lstm'; this model has"):
        check_gradients(f, g, theta, layout, groups=["lstm"])


def test_cli_prints_a_table_and_the_curve(capsys, tmp_path, mnist_dir, monkeypatch):
    monkeypatch.setenv("AIR_MNIST_DIR", str(mnist_dir))
    plot = tmp_path / "v.png"
    status = cli.run(gradcheck.main, SMALL_FLAGS + ["--inference", "residual", "--plot", str(plot)])
    out = capsys.readouterr().out
    assert status == 0, out
    for group in ("encoder", "decoder", "heads", "lstm"):
        assert any(line.split()[:1] == [group] and line.endswith("pass") for line in out.splitlines()), out
    assert "all groups pass" in out
    from PIL import Image
    assert Image.open(plot).size[0] > 300


def test_cli_fails_with_status_1_when_a_check_fails(capsys, mnist_dir, monkeypatch):
    monkeypatch.setenv("AIR_MNIST_DIR", str(mnist_dir))

    def with_a_wrong_decoder_gradient(config, images, seed=0):
        f, g, theta, layout = problem(config, images, seed)
        decoder = np.concatenate([np.arange(s.start, s.stop) for _, s in group_slices(layout)["decoder"]])
        return f, (lambda t: g(t) + np.isin(np.arange(len(t)), decoder) * 0.01), theta, layout

    monkeypatch.setattr(gradcheck, "problem", with_a_wrong_decoder_gradient)  # the script's name for air's problem
    status = cli.run(gradcheck.main, SMALL_FLAGS + ["--no-plot", "--coordinates", "5"])
    out = capsys.readouterr().out
    assert status == 1 and "FAIL" in out and "FAILED: decoder" in out, out


@pytest.mark.parametrize("argv, problem_text", [
    (["--params", "lstm"], "--params: unknown parameter group 'lstm'"),
    (["--eps", "0"], "--eps: must be positive"),
    (["--batch", "0"], "--batch: must be positive"),
])
def test_cli_bad_input_is_one_line(capsys, mnist_dir, monkeypatch, argv, problem_text):
    monkeypatch.setenv("AIR_MNIST_DIR", str(mnist_dir))
    status = cli.run(gradcheck.main, SMALL_FLAGS + argv + ["--no-plot"])
    err = capsys.readouterr().err.strip()
    assert status == 2 and len(err.splitlines()) == 1 and problem_text in err, err


@pytest.mark.parametrize("name", sorted(air.config.PRESETS))
def test_the_published_gradient_checks_are_of_todays_presets(name):
    """docs/results/gradcheck/NAME.txt and docs/tools.md's table name the preset's parameter count and groups: a
    preset that changes shape must have its check re-run (python -m experiments.gradcheck --preset NAME)."""
    import re
    from pathlib import Path
    from air.tree import leaves
    docs = Path(__file__).resolve().parents[1] / "docs"
    params = air.init_params(np.random.default_rng(0), air.preset(name))
    count = sum(array.size for _, array in leaves(params))
    lines = (docs / "results" / "gradcheck" / f"{name}.txt").read_text().splitlines()
    assert lines[0].startswith(f"preset {name}: {count:,} parameters"), lines[0]
    groups = {line.split()[0] for line in lines[2:] if len(line.split()) == 6}
    assert groups == set(params)
    row = next(line for line in (docs / "tools.md").read_text().splitlines() if line.startswith(f"| `{name}` |"))
    assert re.split(r"\s*\|\s*", row)[2] == f"{count:,}"
