"""The catalogue's vectors on disk, so that a catalogue is embedded once per content.

One file per *slot* (the starter families, or one catalogue of one store), named by a key that
the texts and the encoders that read them determine: a slot keeps only its latest file, so
changing one catalogue neither evicts nor re-embeds the others, and removing a catalogue drops
its file (``drop``).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from spinlens.config import home

PREFIX = "narratives-"


def default_cache_dir() -> Path:
    return home() / "cache"


def store_slot(store_path: Path) -> str:
    """The slot prefix of the catalogues of the store at ``store_path``."""
    return hashlib.sha256(str(store_path.resolve()).encode()).hexdigest()[:10]


def catalogue_slot(prefix: str, catalogue: str) -> str:
    """The slot of ``catalogue`` among those under ``prefix`` (its name may hold any character)."""
    return f"{prefix}-{hashlib.sha256(catalogue.encode()).hexdigest()[:10]}"


def content_key(readers: str, texts: Sequence[str]) -> str:
    """Changes whenever a text, their order or an encoder that reads them does."""
    digest = hashlib.sha256(f"{readers}|{len(texts)}|one-by-one".encode())
    for text in texts:
        digest.update(b"\x00" + text.encode("utf-8", "surrogatepass"))
    return digest.hexdigest()[:16]


class VectorCache:
    """``folder``/narratives-SLOT-KEY.npy files, written atomically."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def load(self, slot: str, key: str, shape: tuple[int, int]) -> np.ndarray | None:
        """The vectors stored for ``slot`` and ``key``, when there are and they fit ``shape``."""
        try:
            vectors = np.load(self._path(slot, key), allow_pickle=False)
        except (OSError, ValueError):
            return None
        return vectors if vectors.shape == shape else None

    def save(self, slot: str, key: str, vectors: np.ndarray) -> None:
        """Write atomically, then drop the slot's older versions: only the latest is ever used."""
        target = self._path(slot, key)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            partial = target.with_suffix(f".{os.getpid()}.tmp")
            with partial.open("wb") as f:
                np.save(f, vectors, allow_pickle=False)
            partial.replace(target)
            for old in self._files(slot):
                if old != target:
                    old.unlink(missing_ok=True)
        except OSError:
            pass  # a cache that cannot be written only costs time on the next run

    def drop(self, slot: str) -> int:
        """Delete every file of ``slot``; how many there were."""
        files = self._files(slot)
        for path in files:
            path.unlink(missing_ok=True)
        return len(files)

    def _path(self, slot: str, key: str) -> Path:
        return self.folder / f"{PREFIX}{slot}-{key}.npy"

    def _files(self, slot: str) -> list[Path]:
        # The key never holds "-": a file is of ``slot`` when its name less the key is it (the
        # glob alone would also take slot-other's files).
        found = self.folder.glob(f"{PREFIX}{slot}-*.npy")
        return [p for p in found if p.name.rsplit("-", 1)[0] == f"{PREFIX}{slot}"]
