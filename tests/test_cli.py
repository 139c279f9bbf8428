"""The command line: bad input is one line and status 2; a tiny run end to end; README and CI agree."""
import csv
import dataclasses
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import air
import tests
from air import data
from air import train as air_train
from air.data import MNIST_FILES
from air.checkpoint import read_checkpoint
from experiments import benchmark, cli, evaluate, generalise, gradcheck, make_gif, sweep, train, visualize
from tests.conftest import TINY, write_synthetic_mnist

ROOT = Path(__file__).resolve().parents[1]
TINY_FLAGS = ["--n-train", "64", "--n-val", "32", "--n-test", "32", "--n-epochs", "2", "--batch-size", "16"]
# With TINY_FLAGS, a tiny model whose objective is an ELBO (it has an evidence and can be searched).
ELBO_FLAGS = ["--likelihood", "gaussian", "--kl-what-weight", "1", "--kl-pres-weight", "1", "--pres-estimator",
              "enumerate"]


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
    (["--epochs", "3"], "--epochs", "did you mean --n-epochs?"),
    (["--lrr", "0.1"], "--lrr", "did you mean --lr?"),
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
    assert status == 2 and "--resume" in err and "holds no run to resume" in err and "checkpoint.npz" in err
    assert cli.run(train.main, TINY_FLAGS + ["--out", out, "--quiet", "--no-figures"]) == 0
    status, err = exit_and_error(capsys, train.main, TINY_FLAGS + ["--out", out])
    assert status == 2 and "already holds a run" in err
    status, err = exit_and_error(capsys, train.main, ["--resume", "--out", out, "--lr", "0.1"])
    assert status == 2 and "--lr" in err and "0.002" in err
    assert cli.run(train.main, TINY_FLAGS + ["--out", out, "--overwrite", "--quiet", "--no-figures"]) == 0


# Long enough (200 steps) that a signal sent as soon as config.json appears lands in the first epoch.
LONG_FIRST_EPOCH = ["--n-train", "6400", "--n-val", "32", "--n-test", "32", "--n-epochs", "1", "--no-figures"]


def stopped_in_first_epoch(tmp_path, mnist_dir, sig):
    """A training subprocess sent `sig` as soon as its run folder exists: (run folder, status, stderr)."""
    env = {**os.environ, "AIR_MNIST_DIR": str(mnist_dir), "PYTHONPATH": str(ROOT)}
    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "experiments.train", *LONG_FIRST_EPOCH, "--out", str(out)],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        while not (out / "config.json").exists() and proc.poll() is None:
            time.sleep(0.01)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    return out, proc.returncode, err


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["ctrl-c", "kill-9"])
def test_a_run_stopped_in_its_first_epoch_starts_again(capsys, tmp_path, mnist_dir, monkeypatch, sig):
    out, status, err = stopped_in_first_epoch(tmp_path, mnist_dir, sig)
    assert status == (130 if sig == signal.SIGINT else -signal.SIGKILL), err
    assert not (out / "checkpoint.npz").exists() and cli.unstarted_run(out)
    if sig == signal.SIGINT:  # the message says what is true: nothing to continue from, and how to start again
        assert "before the first epoch finished" in err and "no checkpoint was written" in err
        assert "the last finished epoch" not in err
    monkeypatch.setenv("AIR_MNIST_DIR", str(mnist_dir))
    # --resume starts it from the beginning, with the config it was started with ...
    assert cli.run(train.main, ["--resume", "--out", str(out), "--quiet"]) == 0
    assert read_checkpoint(out)["config"].n_train == 6400 and read_checkpoint(out)["complete"]
    # ... and so does the plain command, after the same kind of stop.
    out2, _, _ = stopped_in_first_epoch(tmp_path / "again", mnist_dir, sig)
    assert cli.run(train.main, TINY_FLAGS + ["--out", str(out2), "--no-figures"]) == 0
    assert "finished no epoch; starting over" in capsys.readouterr().out
    assert read_checkpoint(out2)["complete"]


def test_resume_on_a_finished_run_trains_nothing(capsys, tmp_path, mnist_dir, monkeypatch, trained_run):
    monkeypatch.setenv("AIR_MNIST_DIR", str(mnist_dir))
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    before = files_of(run)
    assert cli.run(train.main, ["--resume", "--out", str(run)]) == 0
    printed = capsys.readouterr().out
    assert "nothing to resume" in printed and "test count acc" in printed
    assert files_of(run) == before


def test_tuple_flags_take_negative_numbers():
    args = train.parse_args(["--log-scale-range", "-1.5,-0.3", "--pres-prior", "0.1,0.1,0.1"])
    config, given = cli.config_from_args(args)
    assert config.log_scale_range == (-1.5, -0.3) and config.pres_prior == (0.1, 0.1, 0.1)
    assert set(given) == {"log_scale_range", "pres_prior"}


def test_evaluate_names_a_missing_run(capsys, tmp_path):
    status, err = exit_and_error(capsys, evaluate.main, [str(tmp_path / "missing")])
    assert status == 2 and len(err.splitlines()) == 1 and "no checkpoint found" in err
    assert f"(expected {tmp_path / 'missing' / 'checkpoint.npz'})" in err  # the file it looked for, not the folder


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
    # Another scene family from the same held-out digits, without retraining: 0-1 digit scenes, 50 of them.
    other = subprocess.run([sys.executable, "-m", "experiments.evaluate", str(out), "--json", "--max-digits", "1",
                            "--n-test", "50", "--digit-size", "12,14", "--overlap", "rejected"],
                           cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert other.returncode == 0, other.stderr
    confusion = json.loads(other.stdout)["confusion"]
    assert len(confusion) == 2 and sum(map(sum, confusion)) == 50
    bad = subprocess.run([sys.executable, "-m", "experiments.evaluate", str(out), "--digit-size", "12,40"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "--digit-size" in bad.stderr


def test_evaluate_reports_the_evidence_of_a_true_elbo_and_says_why_not_otherwise(capsys, tmp_path, mnist_dir,
                                                                                  monkeypatch):
    monkeypatch.setenv("AIR_MNIST_DIR", str(mnist_dir))
    elbo_flags = ["--likelihood", "gaussian", "--kl-what-weight", "1", "--kl-pres-weight", "1"]
    for name, flags in (("gaussian", elbo_flags), ("sse", [])):
        assert cli.run(train.main, TINY_FLAGS + flags + ["--out", str(tmp_path / name), "--quiet", "--no-figures"]) == 0
    capsys.readouterr()
    assert cli.run(evaluate.main, [str(tmp_path / "gaussian"), "--json", "--evidence-k", "20"]) == 0
    scores = json.loads(capsys.readouterr().out)
    assert scores["evidence_k"] == 20 and scores["log_px"] >= scores["elbo"] and scores["log_px_stderr"] > 0
    assert cli.run(evaluate.main, [str(tmp_path / "gaussian"), "--evidence-k", "20"]) == 0
    printed = capsys.readouterr().out
    assert f"test ELBO        {scores['elbo']:.2f} +- " in printed and "log p(x) >=" in printed
    assert cli.run(evaluate.main, [str(tmp_path / "sse")]) == 0
    assert "log p(x)         none: likelihood='sse' is a squared error" in capsys.readouterr().out
    assert cli.run(evaluate.main, [str(tmp_path / "sse"), "--evidence-k", "-1"]) == 2


def test_compare_writes_the_evidence_beside_the_counts(tmp_path, mnist_dir, monkeypatch, capsys):
    from experiments import compare
    from air.marginal import evidence_summary
    monkeypatch.setenv("AIR_MNIST_DIR", str(mnist_dir))
    flags = ["--likelihood", "gaussian", "--kl-what-weight", "1", "--kl-pres-weight", "1"]
    assert cli.run(train.main, TINY_FLAGS + flags + ["--out", str(tmp_path / "g"), "--quiet", "--no-figures"]) == 0
    assert cli.run(train.main, TINY_FLAGS + ["--out", str(tmp_path / "s"), "--quiet", "--no-figures"]) == 0
    out = tmp_path / "compare"
    assert cli.run(compare.main, [str(tmp_path / "g"), str(tmp_path / "s"), "--n-test", "40", "--evidence-k", "10",
                                  "--evidence-scenes", "20", "--out", str(out)]) == 0
    with open(out / "compare.csv") as f:
        rows = {r["run"]: r for r in csv.DictReader(f)}
    from air.checkpoint import load_checkpoint
    params, config = load_checkpoint(tmp_path / "g")
    scenes = air_train.build_datasets(dataclasses.replace(config, n_test=40), data.load_mnist()).test
    expected = evidence_summary(params, config, scenes.images[:20], 10)
    assert float(rows["g"]["log_px"]) == pytest.approx(expected["log_px"], abs=1e-4)
    assert float(rows["g"]["elbo"]) <= float(rows["g"]["log_px"]) and rows["g"]["evidence_scenes"] == "20"
    assert rows["s"]["log_px"] == rows["s"]["elbo"] == ""  # the squared error has no evidence


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
    # The flags are grouped: the run's own first, then the Config's sections, each flag in its own section.
    titles = ["the run: preset, folder and output"] + [f"{title} (Config fields; defaults from --preset)"
                                                        for title, _ in air.config.sections()]
    starts = [text.index(f"\n{title}:\n") for title in titles]
    assert starts == sorted(starts)
    assert starts[1] < text.index("--canvas-size") < starts[2] < text.index("--what-dim") < starts[3]
    assert starts[3] < text.index("--kl-what-weight") < starts[4] < text.index("--batch-size")
    assert text.index("--resume") < starts[1]
    usage = text.split("\n\n")[0]
    assert "--CONFIG-FIELD VALUE" in usage and "--what-dim" not in usage  # the usage line stays short


def test_a_scripts_own_flag_named_like_a_config_field_stays_in_its_usage_line():
    text = subprocess.run([sys.executable, "-m", "experiments.downstream", "--help"], cwd=ROOT, capture_output=True,
                          text=True, env={**os.environ, "PYTHONPATH": str(ROOT)}).stdout
    usage = text.split("\n\n")[0]
    assert "--max-steps" in usage and "--n-test" in usage and "--CONFIG-FIELD" not in usage


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    commands = re.findall(r"```(?:bash|sh)\n(.*?)```", readme, re.S)
    test_command = commands[1].strip()
    assert "pytest" in test_command
    assert test_command in (ROOT / ".ci" / "run").read_text()


# --- bad data and damaged runs: one line, status 2, nothing lost ---------------------------------------------------


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, mnist):
    """A finished one-epoch run folder of the tiny config (shared: tests copy it before they damage it)."""
    config = dataclasses.replace(air.preset("seed"), **dict(TINY, n_epochs=1))
    out = tmp_path_factory.mktemp("trained") / "run"
    air_train.train(config, air_train.build_datasets(config, mnist), out_dir=out)
    return out


def bad_mnist_dir(folder, kind):
    """A folder of MNIST files spoilt as `kind` says, and the name of the file an error must name."""
    folder.mkdir()
    if kind == "empty":
        return folder, MNIST_FILES[0]
    write_synthetic_mnist(folder)
    if kind == "incomplete":
        (folder / MNIST_FILES[3]).unlink()
        return folder, MNIST_FILES[3]
    raw = (folder / MNIST_FILES[2]).read_bytes()
    (folder / MNIST_FILES[2]).write_bytes(raw[:len(raw) // 2] if kind == "truncated" else b"garbage")
    return folder, MNIST_FILES[2]


def files_of(folder):
    """Every file under `folder` with its bytes and modification time: to show that nothing changed."""
    return {str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(folder.rglob("*"))
            if p.is_file()}


def one_line_error(capfd, main, argv):
    """(status, the line on stderr) of main run through cli.run; fails unless stderr holds exactly one line.
    capfd, not capsys: a sweep's worker processes write to the file descriptor, not to sys.stderr."""
    capfd.readouterr()
    status = cli.run(main, argv)
    err = capfd.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return status, err


@pytest.mark.parametrize("kind", ["empty", "incomplete", "truncated", "corrupt"])
def test_a_bad_mnist_folder_stops_training_with_one_line_naming_it(capfd, tmp_path, monkeypatch, kind):
    folder, name = bad_mnist_dir(tmp_path / "mnist", kind)
    monkeypatch.setenv("AIR_MNIST_DIR", str(folder))
    status, err = one_line_error(capfd, train.main, TINY_FLAGS + ["--out", str(tmp_path / "run")])
    assert status == 2 and "AIR_MNIST_DIR" in err and str(folder / name) in err, err
    assert not (tmp_path / "run").exists()


def sweep_file(tmp_path):
    path = tmp_path / "one.toml"
    path.write_text("[base]\nn_train = 32\nn_val = 16\nn_test = 16\nn_epochs = 1\nbatch_size = 16\n")
    return str(path)


# Every script that reads MNIST, and the arguments of a run that would otherwise work.
READERS = {
    "train": lambda tmp, run: (train.main, TINY_FLAGS + ["--out", str(tmp / "new")]),
    "evaluate": lambda tmp, run: (evaluate.main, [str(run)]),
    "visualize": lambda tmp, run: (visualize.main, [str(run)]),
    "make_gif": lambda tmp, run: (make_gif.main, TINY_FLAGS + ["--out", str(tmp / "new")]),
    "gradcheck": lambda tmp, run: (gradcheck.main, ["--no-plot", "--batch", "2"]),
    "sweep": lambda tmp, run: (sweep.main, [sweep_file(tmp), "--out", str(tmp / "new"), "--jobs", "1"]),
    "generalise": lambda tmp, run: (generalise.main, ["--n-train", "32", "--n-val", "16", "--n-test", "16",
                                                      "--n-epochs", "1", "--batch-size", "16", "--jobs", "1",
                                                      "--out", str(tmp / "new")]),
    "benchmark": lambda tmp, run: (benchmark.main, ["--skip-steps", "--seeds", "0"]),  # through a train process
}


@pytest.mark.parametrize("script", list(READERS))
def test_every_script_that_reads_mnist_names_a_bad_folder_in_one_line(capfd, tmp_path, monkeypatch, trained_run,
                                                                      script):
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    before = files_of(run)
    folder, name = bad_mnist_dir(tmp_path / "mnist", "incomplete")
    monkeypatch.setenv("AIR_MNIST_DIR", str(folder))
    main, argv = READERS[script](tmp_path, run)
    status, err = one_line_error(capfd, main, argv)
    assert status == 2 and "AIR_MNIST_DIR" in err and str(folder / name) in err, err
    assert files_of(run) == before
    assert not any((tmp_path / "new").rglob("checkpoint.npz"))  # no run began


def test_overwrite_with_bad_data_keeps_the_run_it_would_replace(capfd, tmp_path, monkeypatch, trained_run):
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    before = files_of(run)
    folder, _ = bad_mnist_dir(tmp_path / "mnist", "corrupt")
    monkeypatch.setenv("AIR_MNIST_DIR", str(folder))
    status, err = one_line_error(capfd, train.main, TINY_FLAGS + ["--out", str(run), "--overwrite"])
    assert status == 2 and "AIR_MNIST_DIR" in err
    assert files_of(run) == before


def test_a_damaged_shipped_copy_is_named_with_what_to_do(capfd, tmp_path, monkeypatch):
    from air import data
    folder = tmp_path / "shipped"
    folder.mkdir()
    for name in (*MNIST_FILES, data.CHECKSUMS):  # links: the shipped files themselves stay as they are
        (folder / name).symlink_to(data.SHIPPED_DIR / name)
    (folder / MNIST_FILES[1]).unlink()
    (folder / MNIST_FILES[1]).write_bytes(b"\x1f\x8b garbage")
    monkeypatch.setattr(data.digits, "SHIPPED_DIR", folder)
    status, err = one_line_error(capfd, train.main, TINY_FLAGS + ["--out", str(tmp_path / "run")])
    assert status == 2 and str(folder / MNIST_FILES[1]) in err and "checksum mismatch" in err
    assert "reinstall air, or set AIR_MNIST_DIR" in err


def truncate(path):
    raw = path.read_bytes()
    path.write_bytes(raw[:len(raw) // 2])


@pytest.mark.parametrize("script, argv", [
    ("evaluate", lambda run: [str(run)]),
    ("evaluate", lambda run: [str(run / "checkpoint.npz"), "--json"]),
    ("visualize", lambda run: [str(run)]),
    ("train", lambda run: ["--resume", "--out", str(run)]),
])
def test_a_truncated_checkpoint_is_one_line_and_left_as_it_was(capfd, tmp_path, mnist_dir, monkeypatch, trained_run,
                                                               script, argv):
    monkeypatch.setenv("AIR_MNIST_DIR", str(mnist_dir))
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    truncate(run / "checkpoint.npz")
    before = files_of(run)
    main = {"evaluate": evaluate.main, "visualize": visualize.main, "train": train.main}[script]
    status, err = one_line_error(capfd, main, argv(run))
    assert status == 2 and str(run / "checkpoint.npz") in err and "damaged or truncated" in err, err
    assert files_of(run) == before


# --- flags and output ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("main, argv", [
    (train.main, ["--n-epoch", "2"]),  # argparse's prefix match took this for --n-epochs
    (train.main, ["--resum"]),
    (make_gif.main, ["--snapshot", "3"]),
    (evaluate.main, ["--spl", "val", "run"]),
    (visualize.main, ["--qui", "run"]),
    (sweep.main, ["--dry", "sweep.toml"]),
    (generalise.main, ["--job", "1"]),
    (gradcheck.main, ["--coord", "1"]),
    (benchmark.main, ["--repeat", "3"]),
])
def test_abbreviated_flags_are_refused(capsys, tmp_path, main, argv):
    status, err = exit_and_error(capsys, main, argv + ["--out", str(tmp_path / "run")] if main is train.main else argv)
    assert status == 2 and len(err.splitlines()) == 1
    assert f"unrecognized arguments: {argv[0]}" in err, err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("main", [train.main, make_gif.main, generalise.main, gradcheck.main, benchmark.main])
def test_preset_help_lists_every_preset(capsys, main):
    with pytest.raises(SystemExit):
        main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    names = ", ".join(sorted(air.config.PRESETS))
    assert re.search(rf"--preset PRESET (?:(?! --).)*one of {names}", text), text  # in --preset's own help


def summary_and_epochs(out):
    lines = out.splitlines()
    return [line for line in lines if line.startswith("epoch ")], lines


def test_quiet_keeps_the_final_summary_and_drops_the_epoch_lines(capsys, tmp_path, mnist_dir, monkeypatch):
    monkeypatch.setenv("AIR_MNIST_DIR", str(mnist_dir))
    assert cli.run(train.main, TINY_FLAGS + ["--out", str(tmp_path / "loud"), "--no-figures"]) == 0
    epochs, loud = summary_and_epochs(capsys.readouterr().out)
    assert [line.split()[1] for line in epochs] == ["1", "2"] and loud[0].startswith("data: ")
    assert cli.run(train.main, TINY_FLAGS + ["--out", str(tmp_path / "quiet"), "--no-figures", "--quiet"]) == 0
    epochs, quiet = summary_and_epochs(capsys.readouterr().out)
    assert not epochs and len(quiet) == 3
    assert quiet[0].startswith("best val count acc") and quiet[1].startswith("test count acc")
    assert quiet[2].startswith("8 steps in ") and quiet[2].endswith(str(tmp_path / "quiet"))


def test_one_step_is_one_step(capsys, tmp_path, mnist_dir, monkeypatch):
    monkeypatch.setenv("AIR_MNIST_DIR", str(mnist_dir))
    flags = ["--n-train", "16", "--n-val", "8", "--n-test", "8", "--n-epochs", "1", "--batch-size", "16"]
    assert cli.run(train.main, flags + ["--out", str(tmp_path / "run"), "--no-figures", "--quiet"]) == 0
    assert "\n1 step in " in capsys.readouterr().out


class FlushRecorder(io.StringIO):
    """A stdout that is not a terminal and remembers how much had been written at each flush."""

    def __init__(self):
        super().__init__()
        self.flushed_at = set()

    def flush(self):
        self.flushed_at.add(len(self.getvalue()))

    def isatty(self):
        return False


def test_every_line_train_prints_is_flushed_as_it_is_printed(tmp_path, mnist_dir, monkeypatch):
    monkeypatch.setenv("AIR_MNIST_DIR", str(mnist_dir))
    recorder = FlushRecorder()
    monkeypatch.setattr(sys, "stdout", recorder)
    assert cli.run(train.main, TINY_FLAGS + ["--out", str(tmp_path / "run"), "--no-figures"]) == 0
    text = recorder.getvalue()
    ends = [match.end() for match in re.finditer("\n", text)]
    assert len(ends) == 6  # data, two epochs, three of summary
    assert set(ends) <= recorder.flushed_at, [line for line, end in zip(text.splitlines(), ends)
                                              if end not in recorder.flushed_at]


def test_epoch_lines_reach_a_pipe_while_training_runs(tmp_path, mnist_dir):
    env = {**os.environ, "AIR_MNIST_DIR": str(mnist_dir), "PYTHONPATH": str(ROOT)}
    out = tmp_path / "run"
    flags = ["--n-train", "64", "--n-val", "16", "--n-test", "16", "--batch-size", "16", "--n-epochs", "1000",
             "--no-figures", "--out", str(out)]
    child = subprocess.Popen([sys.executable, "-m", "experiments.train", *flags], cwd=ROOT, env=env, text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        data_line, epoch_line = child.stdout.readline(), child.stdout.readline()
        saved = read_checkpoint(out)["epoch"] + 1 if (out / "checkpoint.npz").exists() else None
        running = child.poll() is None
    finally:
        child.send_signal(signal.SIGINT)
        _, err = child.communicate(timeout=120)
    assert data_line.startswith(f"data: MNIST idx files in {mnist_dir}")
    assert epoch_line.startswith("epoch  1 ") and running
    # Each line is printed once its epoch is saved. Block-buffered, the first would have come with some fifty
    # others (8 KB) when the run was fifty epochs on; flushed, it comes while the run is at its first epochs.
    assert saved is not None and saved < 25, saved
    assert child.returncode == 130 and "interrupted" in err


def test_benchmark_times_make_scenes(capsys):
    # The timing that used to be a (flaky) test: measured and printed here, never asserted against a bound.
    assert cli.run(benchmark.main, ["--scenes", "--repeats", "3"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "make_scenes, 3,000 scenes of 32 x 32 with 0-2 digits, median of 3:"
    rules = [re.fullmatch(r"  overlap (\w+): [0-9.]+ ms", line).group(1) for line in lines[1:]]
    assert rules == ["allowed", "rejected"]


def test_benchmark_times_the_autograd_and_the_hand_derived_step(capsys, monkeypatch):
    times = benchmark.step_times(air.preset("seed"), 4, repeats=1, warmup=0)
    assert set(times) == {"autograd", "hand"} and min(times.values()) > 0
    # Where the repository's tests/ is absent (an installed package), the hand step is refused in one line.
    monkeypatch.delattr(tests, "hand_gradient", raising=False)
    monkeypatch.setitem(sys.modules, "tests.hand_gradient", None)
    assert cli.run(benchmark.main, ["--skip-runs", "--repeats", "2"]) == 2
    assert "needs the repository's tests/ folder" in capsys.readouterr().err


def test_merges_bins_the_two_digit_scenes(tmp_path, mnist_dir, monkeypatch, capsys):
    from experiments import merges
    monkeypatch.setenv("AIR_MNIST_DIR", str(mnist_dir))
    run_dir = tmp_path / "run"
    assert cli.run(train.main, [*TINY_FLAGS, "--out", str(run_dir), "--no-figures", "--quiet"]) == 0
    out = run_dir / "merges"  # one run's default folder
    assert cli.run(merges.main, [str(run_dir), "--n-test", "90"]) == 0
    with open(out / "merges.csv") as f:
        rows = list(csv.DictReader(f))
    scenes = air_train.build_datasets(dataclasses.replace(air.preset("seed"), n_test=90), data.load_mnist()).test
    for by in ("distance", "size"):  # every two-digit scene falls in exactly one bin, and the shares add up
        assert sum(int(r["n"]) for r in rows if r["by"] == by) == int(np.sum(scenes.counts == 2))
    # The 32-px canvas has its own pixel bins (the 50-px ones scaled): no bin starts above the canvas's digits.
    edges = merges.bins_for(merges.SIZE_BINS, 32)
    assert edges == (0, 10, 12, 13, 15, 16, 17, 19, 26)
    assert {(float(r["low"]), float(r["high"])) for r in rows if r["by"] == "size"} <= set(zip(edges[:-1], edges[1:]))
    # A second call does not overwrite the first silently; several runs need a folder of their own.
    assert cli.run(merges.main, [str(run_dir), "--n-test", "90"]) == 2
    assert "already holds merges.csv" in capsys.readouterr().err
    assert cli.run(merges.main, [str(run_dir), "--n-test", "90", "--overwrite"]) == 0
    assert cli.run(merges.main, [str(run_dir), str(run_dir), "--n-test", "90"]) == 2
    assert "--out" in capsys.readouterr().err
    for r in rows:
        assert float(r["counted_two"]) + float(r["merged"]) + float(r["split"]) <= 1.0 + 1e-9
    with open(out / "splits.csv") as f:
        singles = list(csv.DictReader(f))
    assert sum(int(r["n"]) for r in singles) == int(np.sum(scenes.counts == 1))
    for r in singles:  # a one-digit scene is counted as one, as none or as more
        assert abs(float(r["counted_one"]) + float(r["missed"]) + float(r["split"]) - 1.0) < 1e-9
    assert (out / "merges.png").stat().st_size > 1000
    assert not (out / "gains.csv").exists()


def test_merges_gains_price_two_windows_against_one(tmp_path, mnist_dir, monkeypatch, capsys):
    from experiments import merges
    monkeypatch.setenv("AIR_MNIST_DIR", str(mnist_dir))
    run_dir = tmp_path / "run"
    flags = [*TINY_FLAGS, "--object-encoder", "glimpse", "--inference", "recurrent", "--rnn-hidden", "16"]
    assert cli.run(train.main, [*flags, "--out", str(run_dir), "--no-figures", "--quiet"]) == 0
    out = tmp_path / "merges"
    assert cli.run(merges.main, [str(run_dir), "--out", str(out), "--n-test", "90", "--gains"]) == 0
    with open(out / "gains.csv") as f:
        rows = list(csv.DictReader(f))
    from air.checkpoint import load_checkpoint
    params, config = load_checkpoint(run_dir)
    scenes = air_train.build_datasets(dataclasses.replace(config, n_test=90), data.load_mnist()).test
    assert len(rows) == int(np.sum(scenes.counts == 2)) > 0
    gains = merges.explanation_gains(params, config, scenes)
    np.testing.assert_allclose([float(r["oracle_gain"]) for r in rows], gains["oracle"], atol=0.01)
    # With a decoder that draws nothing, a second step changes no pixel: it costs exactly the prior's price of
    # one more object (log p(2) - log p(1) at the end of training) and its z_what KL.
    dark = {**params, "decoder": [*params["decoder"][:-1], {"w": 0.0 * params["decoder"][-1]["w"],
                                                            "b": np.full_like(params["decoder"][-1]["b"], -80.0)}]}
    from air.guide import guide
    from air.generative import prior_count_probs
    from air.schedules import pres_prior, steps_per_epoch
    total = config.n_epochs * steps_per_epoch(config)
    log_p = np.log(prior_count_probs(pres_prior(config, total, total)))
    post = guide(dark, config, scenes.images[scenes.counts == 2])
    m, lv = post["what_mean"][:, 1], post["what_logvar"][:, 1]
    kl_second = 0.5 * np.sum(m ** 2 + np.exp(lv) - lv - 1.0, axis=1)
    np.testing.assert_allclose(merges.explanation_gains(dark, config, scenes)["model"], log_p[2] - log_p[1] - kl_second,
                               rtol=1e-4, atol=1e-3)
    assert (out / "gains.png").stat().st_size > 1000
    seed_dir = tmp_path / "seed"
    assert cli.run(train.main, [*TINY_FLAGS, "--out", str(seed_dir), "--no-figures", "--quiet"]) == 0
    assert cli.run(merges.main, [str(seed_dir), "--out", str(out), "--n-test", "90", "--gains", "--overwrite"]) == 2
    assert "glimpse encoder" in capsys.readouterr().err


def test_compare_scores_each_run_on_each_family(tmp_path, mnist_dir, monkeypatch, capsys):
    from experiments import compare
    monkeypatch.setenv("AIR_MNIST_DIR", str(mnist_dir))
    run_dir = tmp_path / "run"
    assert cli.run(train.main, [*TINY_FLAGS, "--out", str(run_dir), "--no-figures", "--quiet"]) == 0
    out = tmp_path / "compare"
    argv = [str(run_dir), str(run_dir / "checkpoint.npz"), "--label", "a,b", "--family", "small=8,10", "--n-test", "80"]
    assert cli.run(compare.main, [*argv, "--family", "pyro", "--out", str(out)]) == 0
    with open(out / "compare.csv") as f:
        rows = list(csv.DictReader(f))
    assert [(r["run"], r["family"], r["digit_size"]) for r in rows] == [
        ("a", "own", "12-18"), ("a", "small", "8-10"), ("a", "pyro", "pyro"),
        ("b", "own", "12-18"), ("b", "small", "8-10"), ("b", "pyro", "pyro")]
    assert rows[0]["count_acc"] == rows[3]["count_acc"]  # the same parameters, folder or checkpoint
    from air.checkpoint import load_checkpoint
    from air.metrics import evaluate as score
    params, config = load_checkpoint(run_dir)
    scenes = air_train.build_datasets(dataclasses.replace(config, n_test=80, digit_size=(8, 10)), data.load_mnist()).test
    expected = score(params, config, scenes)
    two = np.asarray(expected["confusion"])[2]
    assert float(rows[1]["count_acc"]) == pytest.approx(expected["count_acc"], abs=1e-4)
    assert float(rows[1]["merged_two"]) == pytest.approx(two[1] / two.sum(), abs=1e-4)
    assert float(rows[1]["split_two"]) == pytest.approx(two[3:].sum() / two.sum(), abs=1e-4)
    assert (out / "compare.png").stat().st_size > 1000
    assert cli.run(compare.main, [*argv, "--split", "val", "--out", str(out)]) == 0
    with open(out / "compare.csv") as f:
        val = list(csv.DictReader(f))
    scenes = air_train.build_datasets(dataclasses.replace(config, n_val=80), data.load_mnist()).val
    assert val[0]["split"] == "val" and rows[0]["split"] == "test"
    assert float(val[0]["count_acc"]) == pytest.approx(score(params, config, scenes)["count_acc"], abs=1e-4)
    for bad, message in ((["--family", "small"], "pyro or LABEL=LOW,HIGH"), (["--family", "own=8,10"], "other than 'own'"),
                         (["--label", "a"], "1 names for 2 runs")):
        assert cli.run(compare.main, [*argv, *bad, "--out", str(out)]) == 2
        assert message in capsys.readouterr().err


def test_time_to_accuracy_writes_its_curve(tmp_path, mnist_dir, monkeypatch, capsys):
    from experiments import time_to_accuracy
    monkeypatch.setenv("AIR_MNIST_DIR", str(mnist_dir))
    out = tmp_path / "curve"
    flags = [*TINY_FLAGS, "--n-epochs", "3", "--test-every", "2", "--out", str(out), "--quiet"]
    assert cli.run(time_to_accuracy.main, flags) == 0
    with open(out / "curve.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    assert [r["test_count_acc"] != "" for r in rows] == [False, True, True]  # every 2nd epoch and the last
    walls = [float(r["wall_s"]) for r in rows]
    assert walls == sorted(walls) and walls[0] > 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert [float(r["val_count_acc"]) for r in rows] == [h["val_count_acc"] for h in metrics["history"]]
    assert (out / "curve.png").stat().st_size > 1000


def test_a_closed_pipe_ends_a_command_quietly():
    # `python -m experiments.compare ... | head -1`: the reader leaves early; no traceback, status 141 (SIGPIPE).
    script = ("import sys\nfrom experiments import cli\n"
              "def main(argv):\n    for i in range(200000):\n        print(i)\n    return 0\n"
              "sys.exit(cli.run(main))\n")
    shell = f"{sys.executable} -c '{script}' | head -1; exit ${{PIPESTATUS[0]}}"
    done = subprocess.run(["bash", "-c", shell], capture_output=True, text=True, cwd=Path(__file__).parent.parent)
    assert done.stdout == "0\n" and done.stderr == "" and done.returncode == 141


@pytest.mark.parametrize("module", ["benchmark", "generalise", "downstream"])
def test_seed_lists_are_checked_in_one_line(module, capsys):
    import importlib
    main = importlib.import_module(f"experiments.{module}").main
    assert cli.run(main, ["--seeds", "0,x"]) == 2
    assert capsys.readouterr().err.strip().endswith("--seeds: expected comma-separated integers, got '0,x'")
