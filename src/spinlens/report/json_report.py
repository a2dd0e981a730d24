"""The ``spinlens.analysis/v1`` JSON and its JSON Schema.

The schema is generated from the data model, so the model stays the single source of truth;
docs/analysis.schema.json is :func:`schema_text` (regenerate it with
``python -c "from spinlens.report.json_report import schema_text as s; print(s(), end='')"
> docs/analysis.schema.json``) and a test keeps the two identical.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from spinlens.model import SCHEMA, Analysis

INDEX_SCHEMA = "spinlens.index/v1"


def render_json(analysis: Analysis) -> str:
    return _dump(analysis.to_json_dict())


def render_index_json(documents: Sequence[dict[str, Any]]) -> str:
    return _dump({"schema": INDEX_SCHEMA, "documents": list(documents)})


def json_schema() -> dict[str, Any]:
    """JSON Schema (draft 2020-12) of what :func:`render_json` writes."""
    schema = Analysis.model_json_schema(by_alias=True, mode="serialization")
    # Pin the version string: a consumer validating v1 must reject any other version.
    schema["properties"]["schema"] = {
        "const": SCHEMA,
        "description": "Format name and version of this document.",
    }
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        **schema,
        "title": SCHEMA,
    }


def schema_text() -> str:
    return _dump(json_schema())


def _dump(data: object) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"
