"""The one place spinlens reads its configuration: :class:`Settings`.

Precedence everywhere: keyword arguments (the command line's flags), then ``SPINLENS_*``
environment variables, then the defaults below. Every setting ``name`` has the variable
``SPINLENS_NAME`` (``SPINLENS_HOME``, ``SPINLENS_DATABASE_URL``, ``SPINLENS_API_TOKEN``...);
``models_dir`` is ``SPINLENS_MODELS``. Nothing else in spinlens reads ``SPINLENS_*`` variables.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from spinlens.errors import UsageError

# The repository's models/ folder (this file is src/spinlens/config.py).
_REPO_MODELS = Path(__file__).resolve().parents[2] / "models"

# A long article is ~100 kB of HTML; 10 MB leaves room for bloated pages while keeping one
# document's memory bounded (it is decoded, then extracted, in memory).
DEFAULT_MAX_BYTES = 10_000_000

# How readily the technique detector flags a passage (see spinlens.techniques.detectors).
Sensitivity = Literal["precise", "balanced", "thorough"]


def _default_home() -> Path:
    # XDG_DATA_HOME is the desktop's convention, not a spinlens variable: only the default.
    xdg = os.environ.get("XDG_DATA_HOME")
    return Path(xdg) / "spinlens" if xdg else Path.home() / ".local" / "share" / "spinlens"


class Settings(BaseSettings):
    """How spinlens runs: the CLI, the server, the batch engines and ``Spinlens(**settings)``
    all build one of these. ``Settings(workers=4)``: 4 whatever ``SPINLENS_WORKERS`` says."""

    model_config = SettingsConfigDict(
        env_prefix="SPINLENS_",
        env_ignore_empty=True,  # SPINLENS_API_TOKEN= (empty) is no token, not an empty one
        frozen=True,
        extra="forbid",  # a mistyped setting fails with its name instead of being ignored
        populate_by_name=True,
    )

    # Where things live.
    home: Path = Field(
        default_factory=_default_home,
        description="Holds the store, caches and imported catalogues.",
    )
    models_dir: Path = Field(
        default=_REPO_MODELS,
        validation_alias=AliasChoices("models_dir", "SPINLENS_MODELS"),
        description="Another set of model files; default: the shipped models/.",
    )
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL of the store; default: SQLite in home.",
    )

    # What an analysis does.
    techniques_model: str | None = Field(
        default=None, description="Technique detector by name; default: the best shipped one."
    )
    sensitivity: Sensitivity | None = Field(
        default=None, description="precise, balanced or thorough; default: the model's own."
    )
    technique_thresholds: Path | None = Field(
        default=None, description="A JSON file of per-technique decoding thresholds."
    )
    narratives: bool = Field(default=True, description="Match known disinformation narratives.")
    catalogues: tuple[str, ...] | None = Field(
        default=None, description="Catalogues matched against (default: all of them)."
    )

    # Reading sources.
    allow_private: bool = Field(
        default=False, description="Let URL analysis reach private and loopback addresses."
    )
    max_bytes: int = Field(default=DEFAULT_MAX_BYTES, ge=1, description="Largest page read.")
    fetch_timeout: float = Field(default=15.0, gt=0)

    # Serving (spinlens serve).
    host: str = "127.0.0.1"
    api_token: str | None = None
    workers: int = Field(default=2, description="Analyses run at once by the server.")
    # A pasted or uploaded page can be as large as a fetched one, plus the form's overhead;
    # None: max_bytes + 64 kB.
    max_body_bytes: int | None = None
    requests_per_minute: int = 600  # per client, every request but static files and /healthz
    analyses_per_minute: int = 30  # per client, requests that start an analysis
    max_pending: int = 64  # analyses queued or running before new ones get 503
    allowed_hosts: tuple[str, ...] = ()  # Host header values accepted; empty: any

    @field_validator("api_token", "database_url")
    @classmethod
    def _blank_is_none(cls, value: str | None) -> str | None:
        return value.strip() or None if value is not None else None

    @classmethod
    def from_env(cls, **flags: object) -> Settings:
        """The flags given, then the environment, then the defaults; a bad value is one line."""
        try:
            return cls(**flags)  # type: ignore[arg-type]
        except ValidationError as error:
            raise UsageError(settings_error(error)) from None

    def replace(self, **changes: object) -> Settings:
        """These settings with some changed (validated; the environment is not read again)."""
        return type(self).from_env(**{**dict(self), **changes})

    @property
    def store_url(self) -> str:
        """The store's database: ``database_url``, else an SQLite file in ``home``."""
        return self.database_url or f"sqlite:///{self.home / 'spinlens.db'}"

    @property
    def catalogue_path(self) -> Path:
        """The store of imported catalogues."""
        return self.home / "catalogue.sqlite3"

    @property
    def cache_dir(self) -> Path:
        return self.home / "cache"

    @property
    def body_limit(self) -> int:
        """The largest request body the server reads."""
        return self.max_body_bytes if self.max_body_bytes is not None else self.max_bytes + 64_000


def settings_error(error: ValidationError) -> str:
    """One line naming the setting (and so its SPINLENS_ variable) and what is wrong."""
    parts = []
    for item in error.errors()[:3]:
        where = ".".join(str(p) for p in item.get("loc", ()))
        what = str(item.get("msg", "invalid")).removeprefix("Value error, ")
        parts.append(f"setting {where}: {what}" if where else what)
    return "; ".join(parts) or "invalid settings"


def home() -> Path:
    """SPINLENS_HOME, for code that runs without a Spinlens object (trainers, tools)."""
    return Settings.from_env().home


def models_dir() -> Path:
    """SPINLENS_MODELS, else the shipped models/ folder."""
    return Settings.from_env().models_dir
