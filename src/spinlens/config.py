"""Where spinlens keeps things.

Precedence everywhere: command-line flags, then SPINLENS_* variables, then these defaults.
"""

from __future__ import annotations

import os
from pathlib import Path

# The repository's models/ folder (this file is src/spinlens/config.py).
_REPO_MODELS = Path(__file__).resolve().parents[2] / "models"


def home() -> Path:
    """SPINLENS_HOME holds the store, caches and imported catalogues."""
    env = os.environ.get("SPINLENS_HOME")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_DATA_HOME")
    return Path(xdg) / "spinlens" if xdg else Path.home() / ".local" / "share" / "spinlens"


def models_dir() -> Path:
    """SPINLENS_MODELS points at another set of model files; default: the shipped models/."""
    env = os.environ.get("SPINLENS_MODELS")
    return Path(env) if env else _REPO_MODELS
