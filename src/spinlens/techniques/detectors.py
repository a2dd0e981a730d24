"""The registry of technique detectors: names a user can pick, loaded once per process."""

from __future__ import annotations

import json
from functools import lru_cache

from spinlens.config import models_dir
from spinlens.errors import SpinlensError
from spinlens.techniques import TechniqueDetector
from spinlens.techniques.baseline import LinearDetector
from spinlens.techniques.transformer import TransformerDetector

# The fine-tuned transformer beat the baseline on the shared validation split (SI F1 0.342 vs
# 0.296, TC micro-F1 0.606 vs 0.563, FLC F1 0.219 vs 0.173; docs/benchmarks.md).
DEFAULT = "minilm-ptc"
# Detector name -> folder under models_dir().
MODEL_FOLDERS: dict[str, str] = {"baseline": "baseline-linear", "minilm-ptc": "minilm-ptc"}
# Names served by the fine-tuned transformer (ONNX Runtime); the others are linear models.
TRANSFORMERS = frozenset({"minilm-ptc"})


def load_detector(name: str | None = None) -> TechniqueDetector:
    """The detector called ``name`` (default: :data:`DEFAULT`), loaded once per process."""
    name = name or DEFAULT
    if name in TRANSFORMERS:
        return load_transformer(name)
    return load_linear(name)


def _folder(name: str) -> str:
    folder_name = MODEL_FOLDERS.get(name)
    if folder_name is None:
        raise SpinlensError(
            f"unknown technique model {name!r}; available: {', '.join(sorted(MODEL_FOLDERS))}"
        )
    folder = models_dir() / folder_name
    if not folder.is_dir():
        raise SpinlensError(
            f"technique model {name!r} not found at {folder} "
            "(set SPINLENS_MODELS or train it with `spinlens train`)"
        )
    return str(folder)


@lru_cache(maxsize=4)
def load_linear(name: str = "baseline") -> LinearDetector:
    """A linear detector by name, with its span classifier (for the PTC tasks)."""
    if name in TRANSFORMERS:
        raise SpinlensError(f"technique model {name!r} is not a linear model")
    return LinearDetector.load(_folder(name))


@lru_cache(maxsize=4)
def load_transformer(name: str = "minilm-ptc") -> TransformerDetector:
    """A fine-tuned transformer detector by name (its thresholds: see ``transformer``)."""
    if name not in TRANSFORMERS:
        raise SpinlensError(f"technique model {name!r} is not a transformer model")
    return TransformerDetector.load(_folder(name))


@lru_cache(maxsize=8)
def validation_f1(model_name: str) -> dict[str, float]:
    """Per-technique validation F1 (task FLC: span and technique right) of the model that
    analyses name as ``model_name`` (e.g. ``minilm-ptc@1``); empty when the model is unknown."""
    for folder_name in MODEL_FOLDERS.values():
        try:
            meta = json.loads((models_dir() / folder_name / "model.json").read_text("utf-8"))
            if meta.get("name") != model_name:
                continue
            per_technique = meta["validation"]["per_technique_f1"]
            return {t: float(v["flc"]) for t, v in per_technique.items()}
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            continue
    return {}
