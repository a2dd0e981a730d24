"""The registry of technique detectors: names a user can pick, loaded once per process."""

from __future__ import annotations

from functools import lru_cache

from spinlens.config import models_dir
from spinlens.errors import SpinlensError
from spinlens.techniques import TechniqueDetector
from spinlens.techniques.baseline import LinearDetector

DEFAULT = "baseline"
# Detector name -> folder under models_dir().
MODEL_FOLDERS: dict[str, str] = {"baseline": "baseline-linear"}


def load_detector(name: str | None = None) -> TechniqueDetector:
    """The detector called ``name`` (default: the linear baseline), loaded once per process."""
    return load_linear(name or DEFAULT)


@lru_cache(maxsize=4)
def load_linear(name: str = DEFAULT) -> LinearDetector:
    """A linear detector by name, with its span classifier (for the PTC tasks)."""
    folder_name = MODEL_FOLDERS.get(name)
    if folder_name is None:
        raise SpinlensError(
            f"unknown technique model {name!r}; available: {', '.join(sorted(MODEL_FOLDERS))}"
        )
    folder = models_dir() / folder_name
    if not folder.is_dir():
        raise SpinlensError(
            f"technique model {name!r} not found at {folder} "
            "(set SPINLENS_MODELS or run `make train-baseline`)"
        )
    return LinearDetector.load(folder)
