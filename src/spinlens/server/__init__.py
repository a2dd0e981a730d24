"""``spinlens serve``: the REST API and the web UI over one pipeline and one store."""

from spinlens.server.app import Settings, create_app

__all__ = ["Settings", "create_app"]
