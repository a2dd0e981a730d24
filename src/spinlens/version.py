"""The release of spinlens (also ``spinlens.__version__``); a module of its own so that any
module can name it without importing the package's public API."""

__version__ = "0.1.0"
