"""Placeholder CLI module: register(app) adds this group's commands."""

import typer


def register(app: typer.Typer) -> None:
    """Add this module's commands to the robench app."""
