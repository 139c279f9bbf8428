"""experiments.downstream: the command, its bad input, and its results file read back and drawn."""
import csv
import json

import pytest

from air import readouts
from experiments import cli, downstream, train
from tests.test_cli import TINY_FLAGS


@pytest.fixture
def tiny_run(tmp_path, mnist_dir, monkeypatch):
    monkeypatch.setenv("AIR_MNIST_DIR", str(mnist_dir))
    run_dir = tmp_path / "run"
    assert cli.run(train.main, [*TINY_FLAGS, "--out", str(run_dir), "--no-figures", "--quiet"]) == 0
    return run_dir


def test_the_command_writes_a_row_per_task_readout_budget_and_seed(tiny_run, tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["--run", str(tiny_run), "--budgets", "20,10", "--seeds", "0,1", "--n-test", "30", "--max-steps", "3",
            "--out", str(out)]
    assert cli.run(downstream.main, argv) == 0
    with open(out / "downstream.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 4 * 5 * 2 * 2
    assert {(r["task"], r["features"], r["labelled"], r["seed"]) for r in rows} == {
        (t, r, b, s) for t in readouts.TASKS for r in readouts.FEATURES for b in ("10", "20") for s in "01"}
    assert all(0 <= float(r["test_acc"]) <= 1 and r["n_scored"] == "30" and r["steps"] == "3" for r in rows)
    assert all(1 <= int(r["kept_step"]) <= 3 for r in rows)
    assert (out / "downstream.png").stat().st_size > 0
    note = json.loads((out / "model.json").read_text())
    assert note["run"] == str(tiny_run) and note["config"]["canvas_size"] == 32
    assert note["training"]["max_steps"] == 3 and note["training"]["split"] == "test"
    printed = capsys.readouterr().out
    assert "test accuracy, mean +- sd over 2 seeds" in printed and "80 classifiers in" in printed


@pytest.mark.parametrize("argv, message", [
    (["--budgets", "0,10"], "--budgets: expected integers >= 1"),
    (["--budgets", "ten"], "--budgets: expected comma-separated integers"),
    (["--tasks", "sum,product"], "--tasks: expected some of sum, order, digit, sum2"),
    (["--hidden", "0"], "--hidden: must be positive"),
    (["--split", "train"], "--split: invalid choice"),
    (["--features", "glimpse"], "--features: expected some of objects, decoded, air, pixels, cnn"),
    (["--passes", "0"], "--passes: must be positive"),
    (["--reads", "what,size"], "--reads: expected some of where, what, what_sd"),
    (["--draw", "no/such.csv"], "--draw: no such results file no/such.csv"),
    (["--pretrained", "nope"], "--pretrained: no pretrained model 'nope'"),
    (["--run", "no/such/run"], "RUN: "),
])
def test_bad_input_is_one_line_and_status_2(argv, message, tmp_path, capsys):
    assert cli.run(downstream.main, [*argv, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_validation_scenes_are_scored_apart_from_the_test_scenes(tiny_run, tmp_path, capsys):
    """--split val scores the validation digits (to choose settings on) and names its column for it."""
    out = tmp_path / "val"
    argv = ["--run", str(tiny_run), "--budgets", "10", "--seeds", "0", "--tasks", "sum2", "--features", "objects",
            "--n-test", "20", "--max-steps", "2", "--draws", "posterior", "--hidden", "16", "--split", "val",
            "--reads", "what_sd,what", "--out", str(out)]
    assert cli.run(downstream.main, argv) == 0
    rows = downstream.read_rows(out / "downstream.csv")
    assert "val_acc" in rows[0] and "test_acc" not in rows[0] and 0 <= downstream.score(rows[0]) <= 1
    assert json.loads((out / "model.json").read_text())["training"] == {
        "passes": 100, "max_steps": 2, "hidden": 16, "draws": True, "reads": ["what", "what_sd"], "split": "val",
        "n_scored": 20, "budgets": [10]}
    assert "val accuracy, mean +- sd over 1 seed" in capsys.readouterr().out


def test_a_stopped_experiment_resumes_keeping_its_rows_and_asks_for_the_same_flags(tiny_run, tmp_path, capsys):
    out = tmp_path / "out"
    flags = lambda seeds, steps: ["--run", str(tiny_run), "--budgets", "10", "--seeds", seeds, "--tasks", "digit",
                                  "--features", "air", "--n-test", "20", "--max-steps", steps, "--out", str(out)]
    assert cli.run(downstream.main, flags("0", "2")) == 0
    first = downstream.read_rows(out / "downstream.csv")
    assert cli.run(downstream.main, flags("0", "2")) == 2  # a folder with results is not overwritten
    assert cli.run(downstream.main, [*flags("0", "3"), "--resume"]) == 2  # nor continued with other training
    # Resumed with a second seed: the first seed's row is kept as it was, not redone, and the second joins it;
    # a note written before --reads existed reads as the default slot.
    note = json.loads((out / "model.json").read_text())
    del note["training"]["reads"]
    (out / "model.json").write_text(json.dumps(note))
    assert cli.run(downstream.main, [*flags("0,1", "2"), "--resume"]) == 0
    rows = downstream.read_rows(out / "downstream.csv")
    assert rows[0] == first[0] and [r["seed"] for r in rows] == [0, 1]
    err = capsys.readouterr().err
    assert "holds results already; --resume continues them" in err and "was made with another training" in err


def test_the_plain_mnist_check_scores_the_cnn_on_centred_digits(tmp_path, mnist_dir, monkeypatch, capsys):
    monkeypatch.setenv("AIR_MNIST_DIR", str(mnist_dir))
    out = tmp_path / "plain"
    argv = ["--plain-mnist", "--budgets", "10", "--seeds", "0", "--n-test", "20", "--max-steps", "2", "--out",
            str(out)]
    assert cli.run(downstream.main, argv) == 0
    rows = downstream.read_rows(out / "plain_mnist.csv")
    assert [(r["task"], r["features"], r["labelled"], r["n_scored"]) for r in rows] == [
        ("plain MNIST digit", "cnn", 10, 20)]
    assert 0 <= rows[0]["test_acc"] <= 1 and "plain MNIST  cnn      10 labelled" in capsys.readouterr().out


def test_the_csv_reads_back_and_draws(tiny_run, tmp_path):
    out = tmp_path / "out"
    argv = ["--run", str(tiny_run), "--budgets", "10", "--seeds", "0", "--tasks", "digit", "--features", "air,pixels",
            "--n-test", "20", "--max-steps", "2", "--out", str(out)]
    assert cli.run(downstream.main, argv) == 0
    rows = downstream.read_rows(out / "downstream.csv")
    assert [(r["task"], r["features"], r["labelled"], r["seed"]) for r in rows] == [("digit", "air", 10, 0),
                                                                                  ("digit", "pixels", 10, 0)]
    assert set(downstream.summary(rows)) == {("digit", "air", 10), ("digit", "pixels", 10)}
    assert len(downstream.figure(rows, "t").axes) == 1
    assert cli.run(downstream.main, ["--draw", str(out / "downstream.csv"), str(out / "downstream.csv"),
                                     "--out", str(tmp_path / "drawn")]) == 0
    assert (tmp_path / "drawn" / "downstream.png").stat().st_size > 0
    with pytest.raises(FileNotFoundError, match="no downstream results"):
        downstream.read_rows(tmp_path / "none.csv")


def test_a_drawn_figure_names_its_files_by_their_folders_under_the_one_they_share():
    assert downstream.sources(["r/a/downstream.csv", "r/b/downstream.csv", "r/b/10k/downstream.csv"]) == \
        "in r: a, b, b/10k"
    assert downstream.sources(["r/a/downstream.csv", "r/a/other.csv"]) == "in r/a: ., other.csv"
    assert downstream.sources(["r/a/downstream.csv"]) == "r/a"
