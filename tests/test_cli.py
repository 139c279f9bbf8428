"""The command line: bad input is one line and status 2; a tiny run end to end; README and CI agree."""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from experiments import cli, evaluate, train

ROOT = Path(__file__).resolve().parents[1]
TINY_FLAGS = ["--n-train", "64", "--n-val", "32", "--n-test", "32", "--n-epochs", "2", "--batch-size", "16"]


def exit_and_error(capsys, main, argv):
    status = cli.run(main, argv)
    err = capsys.readouterr().err.strip()
    return status, err


@pytest.mark.parametrize("argv, flag, problem", [
    (["--lr", "abc"], "--lr", "expected a number, got 'abc'"),
    (["--lr", "-1"], "--lr", "must be positive"),
    (["--batch-size", "0"], "--batch-size", "must be positive"),
    (["--n-epochs", "-3"], "--n-epochs", "must be positive"),
    (["--n-train", "1.5"], "--n-train", "expected an integer"),
    (["--canvas-size", "8"], "--canvas-size", "smaller than the window"),
    (["--digit-size", "12,40"], "--digit-size", "do not fit a 32-px canvas"),
    (["--batch-size", "5000"], "--batch-size", "larger than the training set"),
    (["--preset", "nope"], "--preset", "unknown preset 'nope'"),
    (["--dtype", "float16"], "--dtype", "invalid choice"),
    (["--pres-prior", "0.5,0.4"], "--pres-prior", "one probability per step"),
    (["--kl-what-weight", "nan"], "--kl-what-weight", "must be finite"),
    (["--no-such-flag"], "--no-such-flag", "unrecognized"),
    (["--train-counts", "0,x"], "--train-counts", "expected comma-separated ints"),
    (["--train-counts", "0,3"], "--train-counts", "must be counts between 0 and max_digits (2)"),
])
def test_bad_training_flags_are_one_line_and_status_2(capsys, tmp_path, argv, flag, problem):
    status, err = exit_and_error(capsys, train.main, argv + ["--out", str(tmp_path / "run")])
    assert status == 2
    assert len(err.splitlines()) == 1, err
    assert flag in err and problem in err
    assert not (tmp_path / "run").exists()


def test_resume_and_overwrite_guard_the_run_folder(capsys, tmp_path, mnist_dir, monkeypatch):
    monkeypatch.setenv("AIR_MNIST_DIR", str(mnist_dir))
    out = str(tmp_path / "run")
    status, err = exit_and_error(capsys, train.main, ["--resume", "--out", out])
    assert status == 2 and "--resume" in err and "no checkpoint" in err
    assert cli.run(train.main, TINY_FLAGS + ["--out", out, "--quiet", "--no-figures"]) == 0
    status, err = exit_and_error(capsys, train.main, TINY_FLAGS + ["--out", out])
    assert status == 2 and "already holds a run" in err
    status, err = exit_and_error(capsys, train.main, ["--resume", "--out", out, "--lr", "0.1"])
    assert status == 2 and "--lr" in err and "0.002" in err
    assert cli.run(train.main, TINY_FLAGS + ["--out", out, "--overwrite", "--quiet", "--no-figures"]) == 0


def test_tuple_flags_take_negative_numbers():
    args = train.parse_args(["--log-scale-range", "-1.5,-0.3", "--pres-prior", "0.1,0.1,0.1"])
    config, given = cli.config_from_args(args)
    assert config.log_scale_range == (-1.5, -0.3) and config.pres_prior == (0.1, 0.1, 0.1)
    assert set(given) == {"log_scale_range", "pres_prior"}


def test_evaluate_names_a_missing_run(capsys, tmp_path):
    status, err = exit_and_error(capsys, evaluate.main, [str(tmp_path / "missing")])
    assert status == 2 and len(err.splitlines()) == 1 and "no checkpoint found" in err


def test_train_then_evaluate_end_to_end(tmp_path, mnist_dir):
    env = {**os.environ, "AIR_MNIST_DIR": str(mnist_dir), "PYTHONPATH": str(ROOT)}
    out = tmp_path / "run"
    done = subprocess.run([sys.executable, "-m", "experiments.train", *TINY_FLAGS, "--out", str(out), "--no-figures"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert f"data: MNIST idx files in {mnist_dir}" in done.stdout
    assert "test count acc" in done.stdout
    assert {p.name for p in out.iterdir()} >= {"config.json", "metrics.json", "checkpoint.npz"}
    scored = subprocess.run([sys.executable, "-m", "experiments.evaluate", str(out), "--json"],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert scored.returncode == 0, scored.stderr
    scores = json.loads(scored.stdout)
    metrics = json.loads((out / "metrics.json").read_text())
    assert scores["count_acc"] == metrics["test_count_acc"]
    assert scores["confusion"] == metrics["confusion"]


def test_the_data_line_names_the_shipped_copy(capsys, tiny_config):
    datasets = cli.load_data(tiny_config)
    assert capsys.readouterr().out == "data: MNIST shipped with air (60,000 train + 10,000 test digits)\n"
    assert len(datasets.train) == tiny_config.n_train


def test_help_lists_every_seed_flag():
    text = subprocess.run([sys.executable, "-m", "experiments.train", "--help"], cwd=ROOT, capture_output=True,
                          text=True, env={**os.environ, "PYTHONPATH": str(ROOT)}).stdout
    for flag in ("--seed", "--canvas-size", "--max-steps", "--what-dim", "--n-epochs", "--n-train", "--n-val",
                 "--batch-size", "--lr", "--kl-what-weight", "--kl-pres-weight", "--preset", "--out", "--resume",
                 "--dtype", "--quiet", "--no-figures"):
        assert re.search(rf"{flag}\b", text), flag


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    commands = re.findall(r"```(?:bash|sh)\n(.*?)```", readme, re.S)
    test_command = commands[1].strip()
    assert "pytest" in test_command
    assert test_command in (ROOT / ".ci" / "run").read_text()
