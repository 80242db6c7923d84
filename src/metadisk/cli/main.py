"""The `metadisk` command: one Typer app with a sub-app per role."""

from __future__ import annotations

import typer

from metadisk.cli import bridge, farmer

app = typer.Typer(
    name="metadisk",
    help="Decentralized, end-to-end encrypted object storage.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(farmer.app, name="farmer")
app.add_typer(bridge.app, name="bridge")


def main() -> None:
    """Entry point of the `metadisk` console script."""
    app()
