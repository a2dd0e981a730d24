"""``spinlens serve``, registered by the CLI as ``app.command("serve")(serve_command)``."""

from __future__ import annotations

from typing import Annotated

import typer

from spinlens.server.app import Settings, create_app


def serve_command(
    host: Annotated[
        str,
        typer.Option(
            help="Address to listen on. Anything but loopback needs SPINLENS_API_TOKEN set."
        ),
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.", min=1, max=65535)] = 8000,
    workers: Annotated[
        int,
        typer.Option(
            help="Analyses run at once (threads sharing one loaded model).", min=1, max=64
        ),
    ] = 2,
    allow_private: Annotated[
        bool,
        typer.Option(help="Let URL analysis fetch private, loopback and link-local addresses."),
    ] = False,
    database_url: Annotated[
        str | None,
        typer.Option(
            help="SQLAlchemy URL of the store, e.g. postgresql+psycopg://user@host/db "
            "(default: SPINLENS_DATABASE_URL, else SQLite in SPINLENS_HOME).",
            show_default=False,
        ),
    ] = None,
    rate_limit: Annotated[
        int, typer.Option(help="Analyses per minute per client.", min=1)
    ] = Settings.analyses_per_minute,
) -> None:
    """Serve the web UI and the REST API (OpenAPI at /docs)."""
    import uvicorn

    from spinlens.store import Store

    overrides: dict[str, object] = {
        "host": host,
        "workers": workers,
        "allow_private": allow_private,
        "analyses_per_minute": rate_limit,
    }
    if database_url:
        overrides["database_url"] = database_url
    if host in ("127.0.0.1", "localhost"):
        # A page on another site can make the browser resolve its own name to 127.0.0.1
        # (DNS rebinding): only answer requests addressed to the loopback names.
        overrides["allowed_hosts"] = ("127.0.0.1", "localhost")
    settings = Settings.from_env(**overrides)
    settings.validate()
    # Loaded here, before binding, so a broken model or database fails with one line.
    store = Store(settings.database_url)
    pipeline = settings.pipeline_factory()
    app = create_app(settings, pipeline=pipeline, store=store)
    shown = f"[{host}]" if ":" in host else host
    typer.echo(f"spinlens: serving on http://{shown}:{port}/ (API docs at /docs)", err=True)
    if settings.api_token:
        typer.echo("spinlens: API token required (SPINLENS_API_TOKEN)", err=True)
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level="info",
        server_header=False,
        # Rate limits key on the peer address; a proxy's X-Forwarded-For is not trusted.
        proxy_headers=False,
    )
