"""``spinlens serve``, registered by the CLI as ``app.command("serve")(serve_command)``."""

from __future__ import annotations

from typing import Annotated

import typer

from spinlens.config import Settings
from spinlens.core import Spinlens
from spinlens.server.app import check_settings, create_app

# Flags left out fall back to SPINLENS_* variables, then to the defaults shown here.
_DEFAULTS = Settings.model_fields


def serve_command(
    host: Annotated[
        str | None,
        typer.Option(
            help="Address to listen on. Anything but loopback needs SPINLENS_API_TOKEN set.",
            show_default=_DEFAULTS["host"].default,
        ),
    ] = None,
    port: Annotated[int, typer.Option(help="Port to listen on.", min=1, max=65535)] = 8000,
    workers: Annotated[
        int | None,
        typer.Option(
            help="Analyses run at once (threads sharing one loaded model).",
            min=1,
            max=64,
            show_default=str(_DEFAULTS["workers"].default),
        ),
    ] = None,
    allow_private: Annotated[
        bool | None,
        typer.Option(
            "--allow-private/--no-allow-private",
            help="Let URL analysis fetch private, loopback and link-local addresses.",
            show_default="no-allow-private",
        ),
    ] = None,
    database_url: Annotated[
        str | None,
        typer.Option(
            help="SQLAlchemy URL of the store, e.g. postgresql+psycopg://user@host/db "
            "(default: SPINLENS_DATABASE_URL, else SQLite in SPINLENS_HOME).",
            show_default=False,
        ),
    ] = None,
    rate_limit: Annotated[
        int | None,
        typer.Option(
            help="Analyses per minute per client.",
            min=1,
            show_default=str(_DEFAULTS["analyses_per_minute"].default),
        ),
    ] = None,
    techniques_model: Annotated[
        str | None,
        typer.Option(
            help="Technique model by tier: accurate, fast or baseline (default: "
            "SPINLENS_TECHNIQUES_MODEL, else the best shipped one). A request can pick another.",
            show_default=False,
        ),
    ] = None,
    sensitivity: Annotated[
        str | None,
        typer.Option(
            help="How readily passages are flagged: precise, balanced or thorough (default: "
            "SPINLENS_SENSITIVITY, else the model's own). A request can pick another.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Serve the web UI and the REST API (OpenAPI at /docs)."""
    import uvicorn

    flags = {
        "host": host,
        "workers": workers,
        "allow_private": allow_private,
        "database_url": database_url,
        "analyses_per_minute": rate_limit,
        "techniques_model": techniques_model,
        "sensitivity": sensitivity,
    }
    settings = Settings.from_env(**{k: v for k, v in flags.items() if v is not None})
    if settings.host in ("127.0.0.1", "localhost") and not settings.allowed_hosts:
        # A page on another site can make the browser resolve its own name to 127.0.0.1
        # (DNS rebinding): only answer requests addressed to the loopback names.
        settings = settings.replace(allowed_hosts=("127.0.0.1", "localhost"))
    check_settings(settings)
    core = Spinlens(settings)
    # Loaded here, before binding, so a broken model or database fails with one line.
    core.load()
    app = create_app(spinlens=core)
    shown = f"[{settings.host}]" if ":" in settings.host else settings.host
    typer.echo(f"spinlens: serving on http://{shown}:{port}/ (API docs at /docs)", err=True)
    if settings.api_token:
        typer.echo("spinlens: API token required (SPINLENS_API_TOKEN)", err=True)
    try:
        uvicorn.run(
            app,
            host=settings.host,
            port=port,
            log_level="info",
            server_header=False,
            # Rate limits key on the peer address; a proxy's X-Forwarded-For is not trusted.
            proxy_headers=False,
        )
    finally:
        core.close()
