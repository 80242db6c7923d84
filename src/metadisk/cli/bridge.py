"""`metadisk bridge ...`: run the bridge (the JSON API that keeps the map)."""

from __future__ import annotations

import typer

app = typer.Typer(help="Run a bridge: the metadata and accounts service.", no_args_is_help=True)
