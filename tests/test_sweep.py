"""experiments.sweep: the file's grid becomes runs; joblib and a loopback Dask cluster run the same runs to the
same results; complete runs are skipped, so a stopped sweep resumes; bad sweep files are one-line errors."""
import csv
import dataclasses
import json
import os
import shutil
import tempfile
from pathlib import Path

import pytest

from air.checkpoint import write_json
from experiments import cli, sweep

TINY = """
presets = ["seed"]
seeds = [0]
[base]
n_train = 32
n_val = 16
n_test = 16
n_epochs = 2
batch_size = 16
[grid]
pres_estimator = ["relaxed", "enumerate"]
"""


@pytest.fixture
def tiny_sweep(tmp_path, mnist_dir, monkeypatch):
    monkeypatch.setenv("AIR_MNIST_DIR", str(mnist_dir))
    path = tmp_path / "tiny.toml"
    path.write_text(TINY)
    return path


def read_rows(folder):
    with open(folder / "results.csv") as f:
        return {row["run"]: row for row in csv.DictReader(f)}


def test_a_grid_is_every_combination_times_presets_and_seeds(tmp_path):
    path = tmp_path / "grid.toml"
    path.write_text('presets = ["seed", "best"]\nseeds = [0, 1, 2]\n[base]\nn_epochs = 3\n'
                    '[grid]\npres_estimator = ["relaxed", "enumerate"]\nlr = [0.001, 0.002]\n')
    out, runs, swept = sweep.read_sweep(path)
    assert len(runs) == 2 * 3 * 2 * 2 and swept == ["pres_estimator", "lr"]
    assert str(out) == "runs/sweeps/grid"
    assert len({r.folder for r in runs}) == len(runs)
    one = next(r for r in runs if r.name == "best-pres_estimator=enumerate,lr=0.001-seed2")
    config = one.config()
    assert (config.inference, config.pres_estimator, config.lr, config.n_epochs, config.seed) == \
        ("residual", "enumerate", 0.001, 3, 2)


def test_a_list_of_runs_and_tuple_fields(tmp_path):
    path = tmp_path / "list.toml"
    path.write_text('out = "elsewhere"\n[[runs]]\ninference = "residual"\n[[runs]]\nlog_scale_range = [-1.0, -0.5]\n')
    out, runs, swept = sweep.read_sweep(path)
    assert str(out) == "elsewhere" and [r.name for r in runs] == ["seed-inference=residual-seed0",
                                                                  "seed-log_scale_range=-1.0x-0.5-seed0"]
    assert runs[1].config().log_scale_range == (-1.0, -0.5)


@pytest.mark.parametrize("text, problem", [
    ("presets = [\"nope\"]", "unknown preset 'nope'"),
    ("[grid]\nno_such_field = [1, 2]", "no_such_field is not a Config field"),
    ("[grid]\nlr = [-1.0]", "lr: must be positive"),
    ("[grid]\nlr = 0.1", "grid.lr must be a non-empty list"),
    ("seeds = [0.5]", "seeds must be a non-empty list of integers"),
    ("colour = 3", "unknown key 'colour'"),
    ("[grid]\nlr = [0.1]\n[[runs]]\nlr = 0.1", "either [grid] or [[runs]]"),
    ("presets = [", "not valid TOML"),
])
def test_bad_sweep_files_are_one_line_errors(capsys, tmp_path, text, problem):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    assert cli.run(sweep.main, [str(path), "--dry-run"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and problem in err, err


def test_joblib_runs_the_grid_writes_results_and_resumes(capsys, tiny_sweep, tmp_path):
    out = tmp_path / "sweep"
    assert cli.run(sweep.main, [str(tiny_sweep), "--out", str(out), "--jobs", "2"]) == 0
    rows = read_rows(out)
    assert set(rows) == {"seed-pres_estimator=relaxed-seed0", "seed-pres_estimator=enumerate-seed0"}
    for name, row in rows.items():
        assert row["status"] == "complete" and row["skipped"] == "False"
        assert float(row["test_count_acc"]) == json.loads((out / name / "metrics.json").read_text())["test_count_acc"]
        assert row["n_epochs"] == "2" and float(row["wall_s"]) > 0
    assert (out / "sweep.png").stat().st_size > 1000
    # A second call finds both runs complete and trains nothing; losing one run's metrics redoes only that one.
    capsys.readouterr()
    assert cli.run(sweep.main, [str(tiny_sweep), "--out", str(out)]) == 0
    assert "(2 already complete)" in capsys.readouterr().out
    (out / "seed-pres_estimator=relaxed-seed0" / "metrics.json").unlink()
    assert cli.run(sweep.main, [str(tiny_sweep), "--out", str(out), "--jobs", "1"]) == 0
    again = read_rows(out)
    assert again["seed-pres_estimator=enumerate-seed0"]["skipped"] == "True"
    assert again["seed-pres_estimator=relaxed-seed0"]["skipped"] == "False"
    assert again["seed-pres_estimator=relaxed-seed0"]["test_count_acc"] == rows["seed-pres_estimator=relaxed-seed0"][
        "test_count_acc"]
    # --publish copies the small files a commit keeps, never a checkpoint.
    published = tmp_path / "docs" / "results" / "tiny"
    assert cli.run(sweep.main, [str(tiny_sweep), "--out", str(out), "--publish", str(published)]) == 0
    kept = sorted(str(p.relative_to(published)) for p in published.rglob("*") if p.is_file())
    assert kept == sorted(["results.csv", "sweep.png"] + [f"{name}/{f}" for name in rows
                                                          for f in ("config.json", "metrics.json")])
    assert (published / "results.csv").read_text() == (out / "results.csv").read_text()


def test_a_folder_holding_another_configuration_is_neither_reused_nor_overwritten(capsys, tiny_sweep, tmp_path):
    out = tmp_path / "sweep"
    assert cli.run(sweep.main, [str(tiny_sweep), "--out", str(out)]) == 0
    kept = (out / "seed-pres_estimator=relaxed-seed0" / "metrics.json").read_text()
    # A run written before a field existed holds that field's default: still the same configuration.
    old = out / "seed-pres_estimator=relaxed-seed0" / "config.json"
    old.write_text(json.dumps({k: v for k, v in json.loads(old.read_text()).items() if k != "param_average"}))
    capsys.readouterr()
    assert cli.run(sweep.main, [str(tiny_sweep), "--out", str(out)]) == 0
    assert "(2 already complete)" in capsys.readouterr().out
    tiny_sweep.write_text(TINY.replace("n_epochs = 2", "n_epochs = 3"))
    capsys.readouterr()
    assert cli.run(sweep.main, [str(tiny_sweep), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "2 run folders hold runs of another configuration" in err and "n_epochs is 2 there, 3 here" in err
    assert (out / "seed-pres_estimator=relaxed-seed0" / "metrics.json").read_text() == kept


def test_a_damaged_checkpoint_fails_its_run_and_is_left_as_it_was(capsys, tmp_path, mnist_dir, monkeypatch):
    monkeypatch.setenv("AIR_MNIST_DIR", str(mnist_dir))
    path = tmp_path / "one.toml"
    path.write_text(TINY[:TINY.index("[grid]")])
    out, [spec], _ = sweep.read_sweep(path)
    folder = tmp_path / "sweep" / spec.name
    folder.mkdir(parents=True)
    write_json(folder / "config.json", dataclasses.asdict(spec.config()))  # the run's own, so it would resume
    (folder / "checkpoint.npz").write_bytes(b"PK\x03\x04 cut short")
    assert cli.run(sweep.main, [str(path), "--out", str(tmp_path / "sweep"), "--jobs", "1"]) == 1
    row = read_rows(tmp_path / "sweep")[spec.name]
    assert row["status"].startswith("failed: ") and "damaged or truncated" in row["status"]
    assert f"1 run failed: {spec.name}" in capsys.readouterr().err
    assert (folder / "checkpoint.npz").read_bytes() == b"PK\x03\x04 cut short"
    assert sorted(p.name for p in folder.iterdir()) == ["checkpoint.npz", "config.json"]


def test_a_loopback_dask_cluster_runs_the_same_runs_to_the_same_results(tiny_sweep, tmp_path):
    distributed = pytest.importorskip("dask.distributed", reason="Dask is not installed: the light test extra skips "
                                      "the Dask backend; pip install -e '.[dev]' runs it")
    assert cli.run(sweep.main, [str(tiny_sweep), "--out", str(tmp_path / "joblib")]) == 0
    import dask
    # Every dask server (scheduler, nannies, workers) makes a scratch folder: the test's, not /tmp/dask-scratch-space.
    with dask.config.set({"temporary-directory": str(tmp_path / "dask")}), \
            distributed.LocalCluster(n_workers=2, threads_per_worker=1, host="127.0.0.1", dashboard_address=":0",
                                     processes=True) as cluster:
        argv = [str(tiny_sweep), "--out", str(tmp_path / "dask"), "--backend", "dask",
                "--scheduler", cluster.scheduler_address]
        assert cli.run(sweep.main, argv) == 0
    for name in read_rows(tmp_path / "joblib"):
        by_joblib = json.loads((tmp_path / "joblib" / name / "metrics.json").read_text())
        by_dask = json.loads((tmp_path / "dask" / name / "metrics.json").read_text())
        assert [h["loss"] for h in by_dask["history"]] == [h["loss"] for h in by_joblib["history"]]
        assert by_dask["test_count_acc"] == by_joblib["test_count_acc"]


def test_ray_backend_without_ray_says_how_to_get_it(capsys, tiny_sweep, tmp_path, monkeypatch):
    import builtins
    real_import = builtins.__import__

    def no_ray(name, *args, **kwargs):
        if name == "ray":
            raise ImportError("No module named 'ray'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_ray)
    assert cli.run(sweep.main, [str(tiny_sweep), "--out", str(tmp_path / "r"), "--backend", "ray"]) == 2
    assert "--backend ray: needs ray" in capsys.readouterr().err


@pytest.fixture
def ray_temp_dir(monkeypatch):
    """Ray's session folder (sockets, logs, spilled objects) in a short temporary folder, removed afterwards:
    pytest's tmp_path is too long for the sockets' paths, and Ray would otherwise leave /tmp/ray behind. Set
    before ray is imported, as a script's first import of it would be."""
    folder = tempfile.mkdtemp(prefix="air-ray-")
    monkeypatch.setenv("RAY_TMPDIR", folder)
    monkeypatch.setenv("HOME", folder)  # and Ray's ~/.ray/auth_token
    # Ray's dashboard process asks cloud metadata servers (169.254.169.254, metadata.google.internal) which cloud
    # it runs on, usage reports or not, unless ~/ray_bootstrap_config.yaml names the provider: name none.
    (Path(folder) / "ray_bootstrap_config.yaml").write_text("provider:\n  type: local\n")
    monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "0")
    # Read when ray is first imported, which here is the test's importorskip, before sweep can set it.
    monkeypatch.setenv("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def test_a_local_ray_runs_the_same_runs_to_the_same_results(tiny_sweep, tmp_path, ray_temp_dir):
    ray = pytest.importorskip("ray", reason="Ray is not installed: the light test extra skips the Ray backend; "
                                            "pip install -e '.[dev]' runs it")
    assert cli.run(sweep.main, [str(tiny_sweep), "--out", str(tmp_path / "joblib")]) == 0
    try:
        assert cli.run(sweep.main, [str(tiny_sweep), "--out", str(tmp_path / "ray"), "--backend", "ray"]) == 0
        # sweep's own local Ray, on loopback only
        assert {node["NodeManagerAddress"] for node in ray.nodes()} == {"127.0.0.1"}
    finally:
        ray.shutdown()
    assert set(read_rows(tmp_path / "ray")) == set(read_rows(tmp_path / "joblib"))
    for name in read_rows(tmp_path / "joblib"):
        by_joblib = json.loads((tmp_path / "joblib" / name / "metrics.json").read_text())
        by_ray = json.loads((tmp_path / "ray" / name / "metrics.json").read_text())
        assert [h["loss"] for h in by_ray["history"]] == [h["loss"] for h in by_joblib["history"]]
        assert by_ray["test_count_acc"] == by_joblib["test_count_acc"]


@pytest.mark.skipif(os.environ.get("CI") != "true", reason="checks CI's environment (CI=true)")
def test_ci_has_every_backend_so_nothing_is_skipped_there():
    """CI installs the dev extra, so the Dask, Ray and notebook tests run there rather than skip."""
    import importlib
    for module in ("dask.distributed", "ray", "nbclient", "nbformat", "ipykernel"):
        importlib.import_module(module)
