"""The notebooks run top to bottom (with nbclient, on a tiny configuration and the synthetic digit folder),
show the figures they draw, match their source in notebooks/build.py, and define no model code of their own."""
import ast
import importlib
import inspect
import pkgutil
import re
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

import air  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
DRAWS = re.compile(r"\w_figure\(|plt\.subplots\(|display\(Image\(")  # a cell that makes a figure to show


def code_of(notebook):
    return [cell.source for cell in notebook.cells if cell.cell_type == "code"]


def shows_image(cell):
    return any("image/png" in o.get("data", {}) for o in cell.outputs)


def test_the_three_notebooks_exist():
    assert [p.stem for p in NOTEBOOKS] == ["01_walkthrough", "02_gradients", "03_ablations"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_top_to_bottom(path, mnist_dir, monkeypatch, tmp_path):
    monkeypatch.setenv("AIR_NOTEBOOK_TINY", "1")
    monkeypatch.setenv("AIR_MNIST_DIR", str(mnist_dir))
    notebook = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(notebook, timeout=300, kernel_name="python3",
                                     resources={"metadata": {"path": str(ROOT / "notebooks")}})
    client.execute()  # raises CellExecutionError naming the cell on any exception
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert not [o for cell in code for o in cell.outputs if o.output_type == "error"]
    drawing = [cell for cell in code if DRAWS.search(cell.source)]
    assert drawing and all(shows_image(cell) for cell in drawing), "a cell that draws a figure shows none"


def test_notebooks_match_their_source_in_build_py():
    import sys
    sys.path.insert(0, str(ROOT / "notebooks"))
    try:
        build = importlib.import_module("build")
    finally:
        sys.path.remove(str(ROOT / "notebooks"))
    for path, cells in zip(NOTEBOOKS, [build.WALKTHROUGH, build.GRADIENTS, build.ABLATIONS]):
        stored = nbformat.read(path, as_version=4)
        assert [c.source for c in stored.cells] == [c.source for c in cells], f"{path.name}: run notebooks/build.py"


def test_notebooks_define_no_model_code():
    """No cell defines a function or class named like one of air's: the model comes from air/ only."""
    names = set()
    for module in pkgutil.iter_modules(air.__path__):
        mod = importlib.import_module(f"air.{module.name}")
        names |= {n for n, obj in vars(mod).items() if (inspect.isfunction(obj) or inspect.isclass(obj))
                  and getattr(obj, "__module__", "").startswith("air")}
    for path in NOTEBOOKS:
        for source in code_of(nbformat.read(path, as_version=4)):
            tree = ast.parse("\n".join(line for line in source.splitlines() if not line.startswith(("%", "!"))))
            defined = {node.name for node in ast.walk(tree) if isinstance(node, (ast.FunctionDef, ast.ClassDef))}
            assert not defined & names, f"{path.name} redefines {defined & names}"
