"""The command-line interface: thin Typer commands over the robench API. Only this package prints."""
