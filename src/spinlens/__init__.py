"""spinlens: see how a news or blog article manipulates its reader."""

__version__ = "0.1.0"
