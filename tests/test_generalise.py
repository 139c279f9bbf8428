"""experiments.generalise: runs (extrapolate / interpolate x AIR / DAIR), trained on their counts only, scored
on every count by the guide and by search, summarised in a table and a figure."""
import csv
import json

import numpy as np

from experiments import cli, generalise

TINY = ["--preset", "best", "--n-train", "48", "--n-val", "16", "--n-test", "48", "--n-epochs", "1",
        "--batch-size", "16", "--jobs", "1", "--n-score", "40"]
SEARCH = ["--search", "--search-steps", "2", "--search-gate", "-1"]


def rows_of(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def test_generalisation_runs_train_on_their_counts_and_are_scored_on_all(capsys, tmp_path, mnist_dir, monkeypatch):
    monkeypatch.setenv("AIR_MNIST_DIR", str(mnist_dir))
    out = tmp_path / "gen"
    assert cli.run(generalise.main, TINY + SEARCH + ["--out", str(out)]) == 0
    for experiment, counts in generalise.EXPERIMENTS.items():
        for inference in ("recurrent", "residual"):
            folder = out / f"{experiment}-{inference}-seed0"
            config = json.loads((folder / "config.json").read_text())
            assert (config["train_counts"], config["inference"], config["max_digits"]) == (list(counts), inference, 3)
            metrics = json.loads((folder / "metrics.json").read_text())
            held_out = generalise.HELD_OUT[experiment]
            assert sum(metrics["val_confusion"][held_out]) == 0  # validation never shows the held-out count
            scores = json.loads((folder / "score-test.json").read_text())
            after = scores["after_true_count"]
            assert sorted(after) == ["1", "2", "3"] and after["3"]["next_present"] is None
            assert after["3"]["stop_auc"] is None and all(0 <= after[n]["stop_auc"] <= 1 for n in ("1", "2"))
            assert after["3"]["stop_logits"] is None
            for n, found in after.items():  # a logit a scene of the count, for the stop figure
                assert len(found["go_logits"]) == found["scenes"]
                assert n == "3" or len(found["stop_logits"]) == found["scenes"]
                assert n == "3" or np.mean(np.array(found["stop_logits"]) > 0) == found["next_present"]
            empty = sum(scores["guide"]["confusion"][0])
            assert sum(a["scenes"] for a in after.values()) == 40 - empty  # every scene with a digit, once
            for scorer in generalise.SCORERS:
                confusion = scores[scorer]["confusion"]
                assert len(confusion) == 4 and sum(map(sum, confusion)) == 40 and all(sum(r) > 0 for r in confusion)
    rows = rows_of(out / "generalisation.csv")
    assert [(r["experiment"], r["model"], r["count by"]) for r in rows] == [
        (e, m, s) for e in ("extrapolate", "interpolate") for m in ("AIR", "DAIR") for s in ("guide", "searched")]
    assert {r["paper, held-out"] for r in rows} == {"about 0.00", "about 0.80", "about 0.60", "about 0.95"}
    assert (out / "generalisation.png").stat().st_size > 1000
    assert (out / "generalisation_extrapolate.png").stat().st_size > 1000
    assert (out / "generalisation_stop.png").stat().st_size > 1000
    assert [(r["experiment"], r["model"]) for r in rows_of(out / "generalisation_ink.csv")] == [
        (e, m) for e in ("extrapolate", "interpolate") for m in ("AIR", "DAIR")]
    assert "**" in (out / "generalisation.md").read_text()  # the held-out count is marked
    # Finished runs are neither trained nor scored again.
    kept = (out / "interpolate-residual-seed0" / "score-test.json").stat().st_mtime_ns
    capsys.readouterr()
    assert cli.run(generalise.main, TINY + SEARCH + ["--out", str(out)]) == 0
    assert capsys.readouterr().out.count("(already complete)") == 4
    assert (out / "interpolate-residual-seed0" / "score-test.json").stat().st_mtime_ns == kept
    assert rows_of(out / "generalisation.csv") == rows
    # A score file from before the stopping measure gains it, its counts and search left as they were.
    path = out / "interpolate-residual-seed0" / "score-test.json"
    old = json.loads(path.read_text())
    for found in old["after_true_count"].values():
        for key in generalise.STOP_KEYS:
            del found[key]
    path.write_text(json.dumps(old))
    assert cli.run(generalise.main, TINY + SEARCH + ["--out", str(out)]) == 0
    new = json.loads(path.read_text())
    assert {k: v for k, v in new.items() if k != "after_true_count"} == {k: v for k, v in old.items()
                                                                        if k != "after_true_count"}
    assert generalise.STOP_KEYS <= set(new["after_true_count"]["2"])


def test_the_memoryless_variant_is_chosen_on_validation_digits_of_every_count(tmp_path, mnist_dir, monkeypatch):
    monkeypatch.setenv("AIR_MNIST_DIR", str(mnist_dir))
    out, published = tmp_path / "gen", tmp_path / "published"
    assert cli.run(generalise.main, TINY + ["--out", str(out), "--experiments", "interpolate", "--models",
                                            "memoryless", "--split", "val", "--publish", str(published)]) == 0
    folder = out / "interpolate-memoryless-seed0"
    assert json.loads((folder / "config.json").read_text())["step_memory"] == "none"
    scores = json.loads((folder / "score-val.json").read_text())
    assert scores["searched"] is None and sum(scores["guide"]["confusion"][2]) > 0  # the held-out count is scored
    assert [(r["model"], r["count by"]) for r in rows_of(out / "generalisation_val.csv")] == [
        ("DAIR, no memory", "guide")]
    assert sorted(p.name for p in (published / folder.name).iterdir()) == ["config.json", "metrics.json",
                                                                           "score-val.json"]
    assert (published / "generalisation_val.png").is_file()
    assert (published / "generalisation_val_interpolate.png").stat().st_size > 1000  # two-digit scenes, read


def test_bad_flags_are_one_line(capsys):
    assert cli.run(generalise.main, ["--seeds", "a,b"]) == 2
    assert "--seeds: expected comma-separated integers" in capsys.readouterr().err
    assert cli.run(generalise.main, ["--models", "residual,lstm"]) == 2
    assert "--models: expected names of recurrent, residual, memoryless, got 'residual,lstm'" in capsys.readouterr().err
    assert cli.run(generalise.main, ["--n-score", "0"]) == 2
    assert "--n-score: must be positive" in capsys.readouterr().err
    assert cli.run(generalise.main, ["--preset", "seed", "--pres-prior", "0.5,0.4"]) == 2
    assert "--pres-prior: needs one probability per step (3), got 2" in capsys.readouterr().err
    assert cli.run(generalise.main, ["--models", "recurrent", "--step-memory", "none"]) == 2
    assert "--step-memory: 'none' needs inference='residual'" in capsys.readouterr().err


def test_the_table_over_seeds_gives_the_mean_the_spread_and_each_extreme_of_the_held_out_count(tmp_path):
    """Two seeds of interpolating DAIR, each scored on 10 scenes a count: the row is their mean per count, the
    sample sd and the lowest and highest seed on the held-out count (2), and the seen counts pooled per seed."""
    def confusion(right_on_two):  # true count x counted; every scene right except some of the two-digit ones
        rows = [[10, 0, 0, 0], [0, 10, 0, 0], [0, 0, right_on_two, 10 - right_on_two], [0, 0, 0, 10]]
        return {"confusion": rows, "per_class_acc": [r[i] / 10 for i, r in enumerate(rows)]}
    runs, scores = [], {}
    for seed, right in ((0, 9), (1, 6)):
        name = f"interpolate-residual-seed{seed}"
        (tmp_path / name).mkdir()
        (tmp_path / name / "metrics.json").write_text(json.dumps({"status": "complete", "wall_s": 100.0 * (seed + 1)}))
        runs.append(generalise.RunSpec(name, "paper", seed, (), str(tmp_path / name), None))
        scores[name] = {"guide": confusion(right), "searched": None}
    table = generalise.summarise(runs, scores)
    assert list(table) == [("interpolate", "residual", "guide")]
    row = table["interpolate", "residual", "guide"]
    assert row["per_count"] == [1.0, 1.0, 0.75, 1.0] and row["seeds"] == 2 and row["wall_s"] == 150.0
    assert abs(row["per_count_sd"][2] - 0.3 / 2 ** 0.5) < 1e-12  # sd (ddof 1) of 0.9 and 0.6
    assert row["held_out_range"] == [0.6, 0.9]
    assert row["seen_acc"] == 1.0  # counts 0, 1 and 3 are all right
    generalise.write_table(tmp_path, table, "generalisation")
    (written,) = rows_of(tmp_path / "generalisation.csv")
    assert (written["sd held-out"], written["held-out, lowest seed"], written["held-out, highest seed"]) == (
        "0.212", "0.600", "0.900")
    assert (written["acc. count 2"], written["paper, held-out"]) == ("0.750", "about 0.95")


def test_the_figure_marks_the_papers_figure_on_each_held_out_bar(tmp_path, monkeypatch):
    """A dash at the paper's held-out accuracy across the held-out bar of AIR and of DAIR, one key entry for all;
    none for the memoryless variant, which the paper has not."""
    drawn, real = [], generalise.figure
    monkeypatch.setattr(generalise, "figure", lambda *size: drawn.append(real(*size)) or drawn[-1])
    row = {"per_count": [1.0, 0.9, 0.5, 0.8], "per_count_sd": [0.0] * 4, "seeds": 2}
    table = {(e, m, "guide"): row for e in generalise.EXPERIMENTS for m in ("recurrent", "residual", "memoryless")}
    generalise.plot(tmp_path, table, "generalisation", "test")
    (fig,) = drawn
    for ax, experiment in zip(fig.axes, generalise.EXPERIMENTS):
        dashes = [line for line in ax.get_lines() if line.get_label() == generalise.PAPER_LABEL]
        marked = sorted((float(line.get_ydata()[0]), float(np.mean(line.get_xdata()))) for line in dashes)
        held = generalise.HELD_OUT[experiment]
        expected = sorted(generalise.PAPER[experiment, label] for label in ("AIR", "DAIR"))
        assert [round(y, 2) for y, _ in marked] == [round(max(v, 0.005), 2) for v in expected]
        assert all(abs(x - held) < 0.4 for _, x in marked)  # on the held-out count's bars, not elsewhere
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend.count(generalise.PAPER_LABEL) == 1


def test_the_stop_figure_pools_the_seeds_logits_on_either_side_of_the_threshold(tmp_path, monkeypatch):
    """A panel an experiment and model that has logits: the two-digit scenes' third-step logits and the three-digit
    ones', every seed's, clipped into the plotted range, the threshold at 0, the over-count share in the title."""
    drawn, real = [], generalise.figure
    monkeypatch.setattr(generalise, "figure", lambda *size: drawn.append(real(*size)) or drawn[-1])
    runs = [generalise.RunSpec(f"interpolate-residual-seed{s}", "paper", s, (), str(tmp_path / str(s)), None)
            for s in (0, 1)]
    stops = {0: [-3.0, 1.0, -50.0], 1: [2.0, -1.0, -2.0]}  # goes on in 1 of 3 scenes for each seed
    scores = {r.name: {"after_true_count": {
        "2": {"stop_logits": stops[s], "go_logits": [5.0, 6.0, 7.0], "next_present": 1 / 3, "stop_auc": 0.9},
        "3": {"stop_logits": None, "go_logits": [4.0, 30.0], "next_present": None, "stop_auc": None}}}
        for s, r in enumerate(runs)}
    path = generalise.plot_stops(tmp_path, runs, scores, "generalisation", "test")
    assert path == tmp_path / "generalisation_stop.png" and path.is_file()
    (fig,) = drawn
    (ax,) = [a for a in fig.axes if a.get_visible()]
    heights = [sum(bar.get_height() for bar in container) for container in ax.containers]
    assert heights == [6, 4]  # both seeds' two-digit scenes, then their three-digit ones, none lost to the clip
    assert [line.get_xdata()[0] for line in ax.get_lines()] == [0.0]
    assert "goes on 33%" in ax.get_title() and "DAIR" in ax.get_title() and "never saw 2" in ax.get_title()
    scores = {name: {"after_true_count": {"2": {"stop_logits": None}}} for name in scores}  # no logits kept
    assert generalise.plot_stops(tmp_path, runs, scores, "generalisation", "test") is None


def test_the_stop_auc_is_the_chance_that_the_higher_count_has_the_higher_logit():
    assert generalise.rank_auc([0.0, 1.0], [1.0, 2.0]) == 0.875  # three pairs above, one tie counting half
    assert generalise.rank_auc([0.0, 0.5], [1.0, 2.0]) == 1.0 and generalise.rank_auc([3.0], [1.0, 2.0]) == 0.0
