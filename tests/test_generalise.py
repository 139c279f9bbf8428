"""experiments.generalise: four runs (extrapolate / interpolate x AIR / DAIR), trained on their counts only,
scored on every count, summarised in a table and a figure."""
import csv
import json

from experiments import cli, generalise

TINY = ["--preset", "best", "--n-train", "48", "--n-val", "16", "--n-test", "48", "--n-epochs", "1",
        "--batch-size", "16", "--jobs", "1"]


def test_generalisation_runs_train_on_their_counts_and_are_scored_on_all(capsys, tmp_path, mnist_dir, monkeypatch):
    monkeypatch.setenv("AIR_MNIST_DIR", str(mnist_dir))
    out = tmp_path / "gen"
    assert cli.run(generalise.main, TINY + ["--out", str(out)]) == 0
    for experiment, counts in generalise.EXPERIMENTS.items():
        for inference in ("recurrent", "residual"):
            folder = out / f"{experiment}-{inference}-seed0"
            config = json.loads((folder / "config.json").read_text())
            assert (config["train_counts"], config["inference"], config["max_digits"]) == (list(counts), inference, 3)
            metrics = json.loads((folder / "metrics.json").read_text())
            assert len(metrics["confusion"]) == 4 and all(sum(row) > 0 for row in metrics["confusion"])
            held_out = generalise.HELD_OUT[experiment]
            assert sum(metrics["val_confusion"][held_out]) == 0  # validation never shows the held-out count
    with open(out / "generalisation.csv") as f:
        rows = list(csv.DictReader(f))
    assert [(r["experiment"], r["model"]) for r in rows] == [("extrapolate", "AIR"), ("extrapolate", "DAIR"),
                                                            ("interpolate", "AIR"), ("interpolate", "DAIR")]
    assert (out / "generalisation.png").stat().st_size > 1000
    assert "**" in (out / "generalisation.md").read_text()  # the held-out count is marked
    # Finished runs are not trained again.
    capsys.readouterr()
    assert cli.run(generalise.main, TINY + ["--out", str(out)]) == 0
    assert capsys.readouterr().out.count("(already complete)") == 4


def test_bad_seeds_are_one_line(capsys):
    assert cli.run(generalise.main, ["--seeds", "a,b"]) == 2
    assert "--seeds: expected comma-separated integers" in capsys.readouterr().err
