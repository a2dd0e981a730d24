"""The narratives tests' fixture folder.

The two EUvsDisinfo-layout files are kept as ``*.csv.in`` with a first line saying their rows are
invented, so no committed file reads like the real export; the tests get them as plain ``.csv``
files in a temporary copy of the folder.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path

SOURCE = Path(__file__).parent / "fixtures" / "narratives"


def _materialise() -> Path:
    folder = Path(tempfile.mkdtemp(prefix="spinlens-narrative-fixtures-"))
    atexit.register(shutil.rmtree, folder, True)
    for path in SOURCE.iterdir():
        if path.name.endswith(".csv.in"):
            text = path.read_text(encoding="utf-8").split("\n", 1)[1]
            (folder / path.name.removesuffix(".in")).write_text(text, encoding="utf-8")
        elif path.is_file():
            shutil.copy(path, folder / path.name)
    return folder


FIXTURES = _materialise()
