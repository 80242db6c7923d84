"""The base classes of every body on the wire.

Request bodies refuse fields they do not know (a typo is an error, not a silent default); answers
ignore them, so that a newer peer may add fields.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Answer(BaseModel):
    """A response body."""


class Request(BaseModel):
    """A request body."""

    model_config = ConfigDict(extra="forbid")
