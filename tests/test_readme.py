"""The README's front door: its Library API snippet runs as written, its length stays a newcomer's page, and it
names no file outside the repository."""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def section(title):
    """The text of the README's `## title` section."""
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", README, flags=re.S | re.M)
    assert match, f"the README has no '## {title}' section"
    return match.group(1)


def test_library_api_snippet_runs_as_written(tmp_path, monkeypatch, capsys):
    code = re.search(r"```python\n(.*?)```", section("Library API"), flags=re.S).group(1)
    monkeypatch.chdir(tmp_path)  # the snippet writes its run folder under runs/
    namespace = {}
    exec(compile(code, "README.md: Library API", "exec"), namespace)
    assert (tmp_path / "runs" / "api" / "metrics.json").is_file()
    images, out = namespace["images"], namespace["out"]
    assert images.shape == (16, 32, 32) and out["count"].shape == (16,)
    accuracy, agreement = capsys.readouterr().out.split()
    assert 0.0 < float(accuracy) < 1.0 and float(agreement) > 0.0  # a trained model counts some scenes right


def test_readme_is_short_and_self_contained():
    assert len(README.splitlines()) <= 200
    assert "shared/" not in README and not re.search(r"\bissue \d", README, flags=re.I)
    for target in re.findall(r"\]\(((?!https?://)[^)#]+)\)", README):
        assert (ROOT / target).exists(), f"the README links to {target}, which is not in the repository"
