"""Published sweeps: two sweeps may publish into one folder without dropping each other's rows, and the sweep files
behind the README's results table name exactly the runs published from them, with the same settings. No training:
the sweep files are only read."""
import csv
import dataclasses
import json
from pathlib import Path

import pytest

from air.config import Config
from air.runs import publish
from experiments import sweep

ROOT = Path(__file__).resolve().parents[1]
SWEEPS = ROOT / "experiments" / "sweeps"
RESULTS = ROOT / "docs" / "results"


def write_sweep_folder(folder, rows, fields):
    """A finished sweep folder: results.csv with `rows` and a run folder with small files for each row."""
    folder.mkdir(parents=True)
    with open(folder / "results.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    for row in rows:
        (folder / row["run"]).mkdir()
        (folder / row["run"] / "metrics.json").write_text(json.dumps({"status": "complete", "run": row["run"]}))
        (folder / row["run"] / "config.json").write_text("{}")


def read_rows(path):
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        return reader.fieldnames, list(reader)


def test_a_second_sweep_publishing_into_a_folder_keeps_the_first_ones_rows(tmp_path):
    best = tmp_path / "runs" / "best"
    write_sweep_folder(best, [{"run": "best-seed0", "preset": "best", "seed": "0", "test_count_acc": "0.9"},
                              {"run": "best-seed1", "preset": "best", "seed": "1", "test_count_acc": "0.91"}],
                       ["run", "preset", "seed", "test_count_acc"])
    paper = tmp_path / "runs" / "paper"
    write_sweep_folder(paper, [{"run": "paper-seed0", "preset": "paper", "seed": "0", "test_count_acc": "0.98",
                                "pres_estimator": "reinforce"}],
                       ["run", "preset", "seed", "test_count_acc", "pres_estimator"])
    target = tmp_path / "docs" / "results" / "shared"

    publish(best, target)
    assert (target / "results.csv").read_bytes() == (best / "results.csv").read_bytes()  # a fresh folder: a copy
    publish(paper, target)
    fields, rows = read_rows(target / "results.csv")
    assert fields == ["run", "preset", "seed", "test_count_acc", "pres_estimator"]
    assert [(r["run"], r["test_count_acc"], r["pres_estimator"]) for r in rows] == [
        ("best-seed0", "0.9", ""), ("best-seed1", "0.91", ""), ("paper-seed0", "0.98", "reinforce")]
    assert sorted(p.name for p in target.iterdir() if p.is_dir()) == ["best-seed0", "best-seed1", "paper-seed0"]

    # Publishing the first sweep again, with a changed score, replaces its own rows and keeps the other's.
    (best / "results.csv").write_text((best / "results.csv").read_text().replace("0.91", "0.92"))
    publish(best, target)
    fields, rows = read_rows(target / "results.csv")
    assert fields == ["run", "preset", "seed", "test_count_acc", "pres_estimator"]
    assert [(r["run"], r["test_count_acc"]) for r in rows] == [
        ("best-seed0", "0.9"), ("best-seed1", "0.92"), ("paper-seed0", "0.98")]

    # A sweep that holds every run already published leaves a byte-for-byte copy of its own results.csv.
    publish(paper, tmp_path / "alone")
    publish(paper, tmp_path / "alone")
    assert (tmp_path / "alone" / "results.csv").read_bytes() == (paper / "results.csv").read_bytes()


def differences(spec, published):
    """{field: (the sweep's value, the published one)} where a sweep's run and a published config.json differ; a
    field added to Config since the run was published counts at its default, as reading the old run gives it."""
    now = json.loads(json.dumps(dataclasses.asdict(spec.config())))
    defaults = json.loads(json.dumps(dataclasses.asdict(Config())))
    return {k: (now[k], published.get(k, defaults[k])) for k in now if now[k] != published.get(k, defaults[k])}


@pytest.mark.parametrize("files, folder", [
    (["presets_5seeds.toml", "paper_reinforce_5seeds.toml"], "presets_5seeds"),
    (["paper_enumerate_5seeds.toml"], "paper_enumerate_5seeds"),
])
def test_the_results_tables_sweeps_train_exactly_the_published_runs(files, folder):
    specs, outs = [], set()
    for name in files:
        out, runs, _ = sweep.read_sweep(SWEEPS / name)
        outs.add(str(out))
        specs += runs
    assert len(outs) == 1  # sweeps published into one folder share one sweep folder
    published = sorted(p.name for p in (RESULTS / folder).iterdir() if (p / "config.json").is_file())
    assert sorted(spec.name for spec in specs) == published
    with open(RESULTS / folder / "results.csv", newline="") as f:
        assert sorted(row["run"] for row in csv.DictReader(f)) == published
    for spec in specs:
        config = json.loads((RESULTS / folder / spec.name / "config.json").read_text())
        assert not differences(spec, config), f"{spec.name}: {differences(spec, config)}"


def test_no_sweep_file_names_a_published_folder_that_does_not_exist():
    for path in SWEEPS.glob("*.toml"):
        for line in path.read_text().splitlines():
            if line.startswith("#") and ("--publish docs/results/" in line or "--out docs/results/" in line):
                target = line.split("docs/results/", 1)[1].split()[0]
                assert (RESULTS / target).is_dir(), f"{path.name} names docs/results/{target}, which does not exist"
