"""``spinlens serve``: the REST API and the web UI, thin faces of one core (``Spinlens``)."""

from spinlens.config import Settings
from spinlens.server.app import create_app

__all__ = ["Settings", "create_app"]
