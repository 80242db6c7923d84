"""The base classes of every body on the wire.

Request bodies refuse fields they do not know (a typo is an error, not a silent default); answers
ignore them, so that a newer peer may add fields.

Each model builds its validator when first used (``defer_build``), not when its module is
imported: a command that lists buckets builds two models, not the whole API's (~45 ms of CPU
at start-up; docs/client.md, "Start-up").
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Answer(BaseModel):
    """A response body."""

    model_config = ConfigDict(defer_build=True)


class Request(BaseModel):
    """A request body."""

    model_config = ConfigDict(extra="forbid", defer_build=True)
