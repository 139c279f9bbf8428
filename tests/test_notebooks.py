"""The notebooks run top to bottom (with nbclient, on a tiny configuration and the synthetic digit folder),
match their source in notebooks/build.py, and define no model code of their own."""
import ast
import importlib
import inspect
import pkgutil
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

import air  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def code_of(notebook):
    return [cell.source for cell in notebook.cells if cell.cell_type == "code"]


def test_the_three_notebooks_exist():
    assert [p.stem for p in NOTEBOOKS] == ["01_walkthrough", "02_gradients", "03_ablations"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_top_to_bottom(path, mnist_dir, monkeypatch, tmp_path):
    monkeypatch.setenv("AIR_NOTEBOOK_TINY", "1")
    monkeypatch.setenv("AIR_MNIST_DIR", str(mnist_dir))
    # The notebooks write their runs into tempfile.mkdtemp() folders and keep them for the reader: in a test
    # the kernel's temporary folder is the test's own, so a test run leaves none in the system's.
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    notebook = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(notebook, timeout=300, kernel_name="python3",
                                     resources={"metadata": {"path": str(ROOT / "notebooks")}})
    client.execute()  # raises CellExecutionError naming the cell on any exception
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert any(o.output_type in ("display_data", "execute_result") for o in outputs)  # at least one figure


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
