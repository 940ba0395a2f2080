"""Pydantic at the edges, one way: the strict base model and readable validation errors.

Every model that reads operator-written config (mapping files, an adapter's ``verification``,
``reply`` and ``options`` blocks) derives from :class:`StrictModel`, so a typo'd key is an
error rather than a silently ignored setting. Every place that turns a pydantic
``ValidationError`` into words for a person (``check-config``, the mapping engine's unmapped
reasons, the ingest's) uses :func:`error_location` and :func:`error_message`, so they all
speak the same way: ``field 'a.b': the reason``, without pydantic's internal markers.

Example::

    try:
        Block.model_validate(data)
    except ValidationError as exc:
        problems = [f"{'.'.join(error_location(e['loc']))}: {error_message(e)}" for e in exc.errors()]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:
    from pydantic_core import ErrorDetails


class StrictModel(BaseModel):
    """A config model that refuses unknown keys and accepts fields by name or alias."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


def error_location(location: Sequence[str | int]) -> list[str]:
    """An error's location (``error["loc"]``) as path parts, without pydantic's ``function-…``
    validator markers."""
    return [str(part) for part in location if not str(part).startswith("function-")]


def error_message(error: ErrorDetails) -> str:
    """The error's message as written by the validator (pydantic's ``Value error, `` dropped)."""
    return error["msg"].removeprefix("Value error, ")


def error_lines(errors: Sequence[ErrorDetails], prefix: Sequence[str] = ()) -> list[str]:
    """One ``path: message`` line per error (just the message where there is no path);
    ``prefix`` names the block the errors are relative to."""
    lines = []
    for error in errors:
        path = ".".join([*prefix, *error_location(error["loc"])])
        lines.append(f"{path}: {error_message(error)}" if path else error_message(error))
    return lines
