"""The package version, importable without torch (the ground floor of the layering)."""

__version__ = "0.1.0"
