"""The notebooks run top to bottom (with nbclient, on a tiny configuration and the synthetic digit folder),
show the figures they draw, remove their temporary folders, match their source in notebooks/build.py, and
define no model code of their own. Notebook 03 shows the committed ablation results or stops: its stand-in
exists only in the tests' tiny mode, says so, and build.py --execute never writes it."""
import ast
import importlib
import inspect
import os
import pkgutil
import re
import sys
from pathlib import Path

import pytest

_HOW = "not installed: pip install -e '.[dev]' runs the notebook tests too"
nbformat = pytest.importorskip("nbformat", reason=f"nbformat {_HOW}")
nbclient = pytest.importorskip("nbclient", reason=f"nbclient {_HOW}")
pytest.importorskip("ipykernel", reason=f"ipykernel {_HOW}")

import air  # noqa: E402
from experiments import sweep  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
ABLATIONS = ROOT / "notebooks" / "03_ablations.ipynb"
DRAWS = re.compile(r"\w_figure\(|plt\.subplots\(|display\(Image\(")  # a cell that makes a figure to show


@pytest.fixture(scope="module")
def build():
    sys.path.insert(0, str(ROOT / "notebooks"))
    try:
        return importlib.import_module("build")
    finally:
        sys.path.remove(str(ROOT / "notebooks"))


@pytest.fixture
def kernel_tmp(monkeypatch, tmp_path):
    """The kernels' temporary folder ($TMPDIR), inside tmp_path: a notebook must leave it empty."""
    folder = tmp_path / "kernel-tmp"
    folder.mkdir()
    monkeypatch.setenv("TMPDIR", str(folder))
    return folder


def execute(notebook, cwd=ROOT / "notebooks"):
    """Run `notebook` top to bottom, in place, in a kernel started in `cwd` (CellExecutionError on a failure)."""
    nbclient.NotebookClient(notebook, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(cwd)}}).execute()
    return notebook


def read(path):
    return nbformat.read(path, as_version=4)


def code_of(notebook):
    return [cell.source for cell in notebook.cells if cell.cell_type == "code"]


def text_of(cell):
    """What a code cell printed."""
    return "".join(o.text for o in cell.outputs if o.output_type == "stream")


def shows_image(cell):
    return any("image/png" in o.get("data", {}) for o in cell.outputs)


def test_the_notebooks_exist():
    assert [p.stem for p in NOTEBOOKS] == ["01_walkthrough", "02_gradients", "03_ablations", "04_downstream",
                                           "05_latents"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_top_to_bottom(path, mnist_dir, monkeypatch, kernel_tmp):
    monkeypatch.setenv("AIR_NOTEBOOK_TINY", "1")
    monkeypatch.setenv("AIR_MNIST_DIR", str(mnist_dir))
    notebook = execute(read(path))  # raises CellExecutionError naming the cell on any exception
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert not [o for cell in code for o in cell.outputs if o.output_type == "error"]
    drawing = [cell for cell in code if DRAWS.search(cell.source)]
    assert drawing and all(shows_image(cell) for cell in drawing), "a cell that draws a figure shows none"
    assert not list(kernel_tmp.iterdir()), "the notebook left temporary files"


def test_the_ablations_stand_in_says_so_everywhere(mnist_dir, monkeypatch, kernel_tmp, build):
    monkeypatch.setenv("AIR_NOTEBOOK_TINY", "1")
    monkeypatch.setenv("AIR_MNIST_DIR", str(mnist_dir))
    notebook = execute(read(ABLATIONS))
    printing = [cell for cell in notebook.cells if cell.cell_type == "code" and text_of(cell)]
    assert len(printing) >= 2 and all(build.STAND_IN in text_of(cell) for cell in printing)
    assert build.stand_in_outputs(notebook)
    assert not list(kernel_tmp.iterdir()), "the stand-in sweep's folder is left behind"


def write_ablation_results(path):
    """A results.csv as experiments.sweep writes it: three settings of the best preset, two seeds each."""
    rows = []
    for run, overrides, accs in [("as-is", {}, (0.90, 0.91)), ("relaxed", {"pres_estimator": "relaxed"}, (0.88, 0.86)),
                                 ("sse", {"likelihood": "sse"}, (0.70, 0.72))]:
        for seed, acc in enumerate(accs):
            rows.append({"run": f"{run}-s{seed}", "preset": "best", "seed": seed, **overrides,
                         "status": "complete", "test_count_acc": acc, "best_val_count_acc": acc,
                         "last_val_count_acc": acc, "test_recon_mse": 0.01, "test_box_iou": 0.8, "best_epoch": 9,
                         "n_steps": 900, "wall_s": 45.0, "skipped": False})
    return sweep.write_results(path.parent, rows, ["pres_estimator", "likelihood"])


@pytest.mark.parametrize("cwd", [ROOT, ROOT / "notebooks"], ids=["from-root", "from-notebooks"])
def test_the_ablations_notebook_reads_a_results_file(cwd, monkeypatch, kernel_tmp, tmp_path, build):
    results = write_ablation_results(tmp_path / "sweep" / "results.csv")
    monkeypatch.delenv("AIR_NOTEBOOK_TINY", raising=False)
    # Relative to the repository root whichever folder the kernel starts in, as the committed file's default is.
    monkeypatch.setenv("AIR_ABLATION_RESULTS", os.path.relpath(results, ROOT))
    notebook = execute(read(ABLATIONS), cwd=cwd)
    text = "".join(text_of(cell) for cell in notebook.cells if cell.cell_type == "code")
    assert f"6 runs from {results.resolve()}" in text
    assert re.search(r"best as is +acc 0\.905 ± 0\.005 over 2 seed\(s\)", text)
    assert re.search(r"pres_estimator=relaxed +acc 0\.870 ± 0\.010 over 2 seed\(s\)", text)
    assert re.search(r"likelihood=sse +acc 0\.710 ± 0\.010 over 2 seed\(s\)", text)
    assert "STAND-IN" not in text and not build.stand_in_outputs(notebook)
    assert shows_image(notebook.cells[-1])
    assert not list(kernel_tmp.iterdir())


def test_the_ablations_notebook_stops_without_its_results(monkeypatch, kernel_tmp, tmp_path):
    monkeypatch.delenv("AIR_NOTEBOOK_TINY", raising=False)
    monkeypatch.setenv("AIR_ABLATION_RESULTS", str(tmp_path / "missing" / "results.csv"))
    notebook = read(ABLATIONS)
    with pytest.raises(nbclient.exceptions.CellExecutionError) as error:
        execute(notebook)
    assert error.value.ename == "FileNotFoundError"
    assert error.value.evalue.startswith(f"{tmp_path / 'missing' / 'results.csv'}: no ablation results.")
    assert not any("STAND-IN" in text_of(cell) for cell in notebook.cells if cell.cell_type == "code")
    assert not list(kernel_tmp.iterdir())


def test_the_ablations_notebook_reads_the_committed_file_by_default(build):
    source = "\n".join(code_of(read(ABLATIONS)))
    assert f'ROOT / os.environ.get("AIR_ABLATION_RESULTS", "{build.ABLATION_RESULTS}")' in source
    assert build.ABLATION_RESULTS == "docs/results/ablations/results.csv"


@pytest.mark.parametrize("environ, committed, reason", [
    ({"AIR_NOTEBOOK_TINY": "1"}, True, "tiny mode"),
    ({"AIR_ABLATION_RESULTS": "runs/sweeps/ablations/results.csv"}, True, "AIR_ABLATION_RESULTS is set"),
    ({}, False, "docs/results/ablations/results.csv is missing"),
], ids=["tiny", "other-results", "no-results"])
def test_build_refuses_to_execute_what_the_notebooks_must_not_show(build, monkeypatch, tmp_path, environ, committed,
                                                                    reason):
    monkeypatch.delenv("AIR_NOTEBOOK_TINY", raising=False)
    monkeypatch.delenv("AIR_ABLATION_RESULTS", raising=False)
    for key, value in environ.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(build, "ROOT", tmp_path / "repo")
    if committed:
        write_ablation_results(tmp_path / "repo" / build.ABLATION_RESULTS)
    ran = []
    monkeypatch.setattr(build, "run_notebook", ran.append)
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(build.Refused, match=reason):
        build.build(["01_walkthrough", "03_ablations"], execute=True, folder=out)
    assert not ran and not list(out.iterdir())


def test_build_writes_nothing_when_a_notebook_shows_the_stand_in(build, monkeypatch, tmp_path):
    monkeypatch.delenv("AIR_NOTEBOOK_TINY", raising=False)
    monkeypatch.delenv("AIR_ABLATION_RESULTS", raising=False)
    monkeypatch.setattr(build, "ROOT", tmp_path / "repo")
    write_ablation_results(tmp_path / "repo" / build.ABLATION_RESULTS)

    def run_notebook(notebook):  # as if notebook 03's kernel had found the tiny mode on after all
        for cell in notebook.cells:
            if cell.cell_type == "code" and "AIR_ABLATION_RESULTS" in cell.source:
                cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=f"{build.STAND_IN}\n")]

    monkeypatch.setattr(build, "run_notebook", run_notebook)
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(build.Refused, match="03_ablations: cells .* show the stand-in"):
        build.build(["01_walkthrough", "03_ablations"], execute=True, folder=out)
    assert not list(out.iterdir())
    assert build.build(["01_walkthrough", "03_ablations"], folder=out) == [out / "01_walkthrough.ipynb",
                                                                           out / "03_ablations.ipynb"]


def test_notebooks_match_their_source_in_build_py(build):
    assert list(build.NOTEBOOKS) == [p.stem for p in NOTEBOOKS]
    for path in NOTEBOOKS:
        stored = read(path)
        assert [c.source for c in stored.cells] == [c.source for c in build.NOTEBOOKS[path.stem]], \
            f"{path.name}: run notebooks/build.py"


def test_notebooks_define_no_model_code():
    """No cell defines a function or class named like one of air's: the model comes from air/ only."""
    names = set()
    for module in pkgutil.iter_modules(air.__path__):
        mod = importlib.import_module(f"air.{module.name}")
        names |= {n for n, obj in vars(mod).items() if (inspect.isfunction(obj) or inspect.isclass(obj))
                  and getattr(obj, "__module__", "").startswith("air")}
    for path in NOTEBOOKS:
        for source in code_of(read(path)):
            tree = ast.parse("\n".join(line for line in source.splitlines() if not line.startswith(("%", "!"))))
            defined = {node.name for node in ast.walk(tree) if isinstance(node, (ast.FunctionDef, ast.ClassDef))}
            assert not defined & names, f"{path.name} redefines {defined & names}"
