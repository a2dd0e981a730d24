"""The one way benchmark scripts update docs/benchmarks.md: each owns one "## " section; and
the table rows more than one section shows."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

DOC = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"


def write_section(section: str, doc: Path = DOC) -> None:
    """Replace the section whose first line is ``section``'s "## " heading (up to the next
    "## " heading) or append it; every other section stays as it is."""
    heading = section.splitlines()[0]
    if not heading.startswith("## "):
        raise ValueError(f"a section starts with a '## ' heading, not {heading!r}")
    text = doc.read_text(encoding="utf-8") if doc.exists() else "# Benchmarks\n"
    pattern = re.compile(rf"^{re.escape(heading)}\n.*?(?=^## |\Z)", re.S | re.M)
    body = section.rstrip("\n") + "\n\n"
    if pattern.search(text):
        text = pattern.sub(lambda _: body, text, count=1)
    else:
        text = text.rstrip("\n") + "\n\n" + body
    doc.parent.mkdir(parents=True, exist_ok=True)
    doc.write_text(text.rstrip("\n") + "\n", encoding="utf-8")


# model.json's ``reliability`` keys, as the reliability tables name them.
RELIABILITY_KINDS = (("techniques", "technique spans"), ("ANY", "SI (any technique)"))


def reliability_rows(reliability: Mapping[str, Sequence[Mapping[str, Any]]], lead: str = "") -> str:
    """Rows (kind, predicted bin, spans, mean predicted, observed correct) of a model's
    cross-fitted reliability bins, each row opened by the cells ``lead`` (e.g. "| fast ")."""
    return "\n".join(
        f"{lead}| {label} | {b['bin']} | {b['spans']} | {b['predicted']:.2f} "
        f"| {b['observed']:.2f} |"
        for key, label in RELIABILITY_KINDS
        for b in reliability.get(key, [])
    )
