"""Commands for reports (to be built)."""

import click


def register(cli: click.Group) -> None:
    """Add this module's commands to the group."""
