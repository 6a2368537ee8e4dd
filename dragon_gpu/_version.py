"""The package version, in a module of its own so that modules can import it without importing
the package's ``__init__`` (whose lazy attributes import those modules)."""

__version__ = "0.1.0"
