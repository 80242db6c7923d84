"""`metadisk farmer ...`: set up and run a storage node."""

from __future__ import annotations

import typer

app = typer.Typer(help="Run a farmer: a storage node that rents out disk.", no_args_is_help=True)
