"""The README cannot rot (issue 16): its Python API section runs as written, and its Layout names
every package of src/spinlens and nothing that is not there.

The section's python blocks run in order, as the cells of one notebook, in a scratch folder that
holds a copy of examples/, with a fresh SPINLENS_HOME and the baseline technique model
(SPINLENS_TECHNIQUES_MODEL: the section's keyword arguments name no model, so the variable
applies, as the README says it does).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from .conftest import REPO

README = REPO / "README.md"


def section(heading: str) -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index(f"\n{heading}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end >= 0 else len(text)]


def python_blocks(text: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", text, re.S | re.M)


def test_the_python_api_section_runs_as_written(tmp_path: Path) -> None:
    blocks = python_blocks(section("## Python API"))
    assert len(blocks) >= 4, "the Python API section lost its examples"
    code = "\n".join(blocks)
    for name in ("analyze(", "analyze_many(", "to_frames(", "to_json()", "to_html()"):
        assert name in code, f"the Python API section no longer shows {name}"
    assert "techniques_model=" not in code.replace("# e.g. techniques_model=", "")
    shutil.copytree(REPO / "examples", tmp_path / "examples")
    env = {
        **os.environ,
        "SPINLENS_HOME": str(tmp_path / "home"),
        "SPINLENS_TECHNIQUES_MODEL": "baseline",
    }
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    # What the comments promise.
    assert "failed: missing.html - no such file (" in out
    assert "notes.txt: no such file (to analyse these words, use analyze_text" in out
    assert "1 added, 0 bad rows" in out
    assert "team The grain deal feeds only rich Western countries" in out
    assert "<mark" in (tmp_path / "report.html").read_text(encoding="utf-8")
    assert "0 []" in out  # the Python API stores nothing: an empty history


def test_the_layout_names_where_each_concern_lives() -> None:
    layout = section("## Layout")
    listed = set(re.findall(r"^  (\w+(?:\.py|/))\s", layout, re.M))
    src = REPO / "src" / "spinlens"
    for name in sorted(listed):
        assert (src / name.rstrip("/")).exists(), f"the Layout lists {name}, which is gone"
    packages = {p.name + "/" for p in src.iterdir() if (p / "__init__.py").exists()}
    assert packages <= listed, f"packages missing from the Layout: {sorted(packages - listed)}"
    for concern in ("core.py", "config.py", "extract.py", "frames.py", "pipeline.py"):
        assert concern in listed
