"""The registry of technique detectors: the tiers a user picks by name, loaded once per process.

* ``accurate``: the base-size encoder (MPNet, ``mpnet-ptc``) blended with the small one
  (``minilm-ptc``) as ``mpnet-minilm-ptc`` (see ``ensemble``): best findings, slowest; the
  default;
* ``fast``: a small encoder (minilm-ptc@4, a MiniLM student distilled from ``accurate``'s
  members), the tier for batch runs over crawls;
* ``baseline``: the linear model, numpy only, the yardstick.

A model folder's name (``minilm-ptc``, ``baseline-linear``, ``mpnet-ptc``) still works as an alias
of its tier. Each detector reports at a sensitivity level (``precise``, ``balanced``, ``thorough``;
see ``sensitivity``), chosen per call over one shared loaded model.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from spinlens.config import models_dir
from spinlens.errors import SpinlensError
from spinlens.techniques.baseline import LinearDetector
from spinlens.techniques.decoding import DEFAULT_SENSITIVITY
from spinlens.techniques.ensemble import EnsembleDetector, is_ensemble
from spinlens.techniques.findings import TokenTagger, reliability_from_meta
from spinlens.techniques.transformer import TransformerDetector


@dataclass(frozen=True)
class Tier:
    folder: str  # under models_dir()
    transformer: bool  # served by ONNX Runtime (else the numpy linear model)
    missing_hint: str  # what to do when the folder is absent


TIERS: dict[str, Tier] = {
    "accurate": Tier("mpnet-minilm-ptc", True, "set SPINLENS_MODELS or reinstall spinlens"),
    "fast": Tier("minilm-ptc", True, "set SPINLENS_MODELS or reinstall spinlens"),
    "baseline": Tier("baseline-linear", False, "set SPINLENS_MODELS or reinstall spinlens"),
}
# Model folder names accepted for their tier (analyses made before the tiers name them so).
ALIASES = {tier.folder: name for name, tier in TIERS.items()}
ALIASES["mpnet-ptc"] = "accurate"  # the accurate tier before it blended in minilm-ptc
DEFAULT = "accurate"
# What corpus runs (batch, watch) use unless told: the tier made for crawls.
CORPUS_DEFAULT = "fast"
# Tier names, then aliases: what --model accepts.
NAMES = (*TIERS, *ALIASES)


def tier_of(name: str | None) -> str:
    """The tier ``name`` stands for (default: :data:`DEFAULT`), or one clear error."""
    name = name or DEFAULT
    if name in TIERS:
        return name
    if name in ALIASES:
        return ALIASES[name]
    raise SpinlensError(
        f"unknown technique model {name!r}; choose one of: {', '.join(TIERS)} "
        f"(or a model folder: {', '.join(sorted(ALIASES))})"
    )


def load_detector(
    name: str | None = None, sensitivity: str = DEFAULT_SENSITIVITY
) -> TokenTagger[Any]:
    """The detector of tier (or alias) ``name`` reporting at ``sensitivity``; the model is
    loaded once per process and shared by every level."""
    tier = tier_of(name)
    model: TokenTagger[Any] = (
        load_transformer(tier) if TIERS[tier].transformer else load_linear(tier)
    )
    return model if model.sensitivity == sensitivity else model.with_sensitivity(sensitivity)


def _folder(tier: str) -> str:
    folder = models_dir() / TIERS[tier].folder
    if not folder.is_dir():
        raise SpinlensError(
            f"technique model {tier!r} not found at {folder} ({TIERS[tier].missing_hint})"
        )
    return str(folder)


@lru_cache(maxsize=4)
def load_linear(name: str = "baseline") -> LinearDetector:
    """A linear detector by tier or alias, at the default sensitivity."""
    tier = tier_of(name)
    if TIERS[tier].transformer:
        raise SpinlensError(f"technique model {name!r} is not a linear model")
    return LinearDetector.load(_folder(tier))


@lru_cache(maxsize=4)
def load_transformer(name: str = "fast") -> TransformerDetector | EnsembleDetector:
    """A fine-tuned transformer detector (or a blend of them) by tier or alias, at the default
    sensitivity."""
    tier = tier_of(name)
    if not TIERS[tier].transformer:
        raise SpinlensError(f"technique model {name!r} is not a transformer model")
    folder = _folder(tier)
    return (
        EnsembleDetector.load(folder) if is_ensemble(folder) else TransformerDetector.load(folder)
    )


@lru_cache(maxsize=8)
def validation_f1(model_name: str, sensitivity: str = DEFAULT_SENSITIVITY) -> dict[str, float]:
    """Per-technique validation F1 (task FLC: span and technique right) of the model that
    analyses name as ``model_name`` (e.g. ``minilm-ptc@4``); empty when the model is unknown.
    A loaded detector has the same as ``technique_reliability``."""
    for tier in TIERS.values():
        try:
            meta = json.loads((models_dir() / tier.folder / "model.json").read_text("utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(meta, dict) and meta.get("name") == model_name:
            return reliability_from_meta(meta, sensitivity)
    return {}
