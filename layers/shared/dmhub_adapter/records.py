"""Records: dataclass-style classes that cost a cold start nothing to define.

``@dataclass`` writes each class's ``__init__``, ``__repr__`` and ``__eq__`` as source text and
runs ``exec`` on them when the class is defined: about 0.5 ms per class on Python 3.13, paid
by every cold start for every dataclass on its way to the first request (the ingest's path had
about thirty, some 15 ms against a budget of about 40). :func:`record` gives the same
declarations the same behaviour for what this package uses — fields by annotation, defaults and
:func:`field` factories, positional or keyword construction, ``frozen``, equality by fields and
a ``repr`` — with one shared ``__init__`` instead of generated ones, so defining a class costs
microseconds. Type checkers read it as a dataclass (:pep:`681`).

Example::

    @record(frozen=True)
    class Point:
        x: int
        y: int = 0
        tags: list[str] = field(default_factory=list)

    Point(1) == Point(x=1, y=0)   # True
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import FrozenInstanceError
from typing import Any, TypeVar, dataclass_transform

_T = TypeVar("_T", bound=type)
_R = TypeVar("_R")
_MISSING: Any = object()
_FIELDS = "__record_fields__"


class _Factory:
    __slots__ = ("make",)

    def __init__(self, make: Callable[[], Any]) -> None:
        self.make = make


def field(*, default: Any = _MISSING, default_factory: Callable[[], Any] | None = None) -> Any:
    """A field's default: a value, or a factory called for each new record (as ``dataclasses.field``)."""
    if default_factory is not None:
        return _Factory(default_factory)
    return default


def _init(self: Any, *args: Any, **kwargs: Any) -> None:
    fields: tuple[tuple[str, Any], ...] = getattr(type(self), _FIELDS)
    if len(args) > len(fields):
        raise TypeError(f"{type(self).__name__}() takes {len(fields)} positional arguments, got {len(args)}")
    setter = object.__setattr__
    for position, (name, default) in enumerate(fields):
        if position < len(args):
            if name in kwargs:
                raise TypeError(f"{type(self).__name__}() got multiple values for argument {name!r}")
            value = args[position]
        elif name in kwargs:
            value = kwargs.pop(name)
        elif default is _MISSING:
            raise TypeError(f"{type(self).__name__}() missing required argument {name!r}")
        elif type(default) is _Factory:
            value = default.make()
        else:
            value = default
        setter(self, name, value)
    if kwargs:
        unexpected = next(name for name in kwargs if all(name != known for known, _ in fields))
        raise TypeError(f"{type(self).__name__}() got an unexpected keyword argument {unexpected!r}")


def _repr(self: Any) -> str:
    shown = ", ".join(f"{name}={getattr(self, name)!r}" for name, _ in getattr(type(self), _FIELDS))
    return f"{type(self).__qualname__}({shown})"


def _eq(self: Any, other: object) -> Any:  # bool, or NotImplemented for another class
    if type(other) is not type(self):
        return NotImplemented
    return all(getattr(self, name) == getattr(other, name) for name, _ in getattr(type(self), _FIELDS))


def _hash(self: Any) -> int:
    return hash(tuple(getattr(self, name) for name, _ in getattr(type(self), _FIELDS)))


def _frozen_setattr(self: Any, name: str, value: Any) -> None:
    raise FrozenInstanceError(f"cannot assign to field {name!r}")


def _frozen_delattr(self: Any, name: str) -> None:
    raise FrozenInstanceError(f"cannot delete field {name!r}")


def _make(cls: _T, frozen: bool, eq: bool) -> _T:
    fields: list[tuple[str, Any]] = []
    inherited = getattr(cls, _FIELDS, ())
    own = cls.__dict__.get("__annotations__", {})  # noqa: RUF063 - inspect's import costs more than a record
    for name, default in inherited:
        if name not in own:
            fields.append((name, default))
    for name, annotation in own.items():
        if str(annotation).startswith("ClassVar"):
            continue
        fields.append((name, cls.__dict__.get(name, _MISSING)))
    required_after_default = [
        name for index, (name, default) in enumerate(fields)
        if default is _MISSING and any(d is not _MISSING for _, d in fields[:index])
    ]
    if required_after_default:
        raise TypeError(f"{cls.__name__}: field {required_after_default[0]!r} without a default follows one with")
    setattr(cls, _FIELDS, tuple(fields))
    cls.__init__ = _init  # type: ignore[misc]
    if "__repr__" not in cls.__dict__:
        cls.__repr__ = _repr  # type: ignore[assignment]
    if eq and "__eq__" not in cls.__dict__:
        cls.__eq__ = _eq  # type: ignore[assignment]
        cls.__hash__ = _hash if frozen else None  # type: ignore[assignment]
    if frozen:
        cls.__setattr__ = _frozen_setattr  # type: ignore[assignment]
        cls.__delattr__ = _frozen_delattr  # type: ignore[assignment]
    return cls


def replace(obj: _R, /, **changes: Any) -> _R:
    """A copy of the record ``obj`` with ``changes`` to its fields (as ``dataclasses.replace``;
    a factory field not changed keeps the original's object)."""
    fields: tuple[tuple[str, Any], ...] | None = getattr(type(obj), _FIELDS, None)
    if fields is None:
        raise TypeError("replace() takes a record")
    unknown = set(changes) - {name for name, _ in fields}
    if unknown:
        raise TypeError(f"{type(obj).__name__} has no field {sorted(unknown)[0]!r}")
    values = {name: changes[name] if name in changes else getattr(obj, name) for name, _ in fields}
    return type(obj)(**values)


@dataclass_transform(field_specifiers=(field,))
def record(cls: _T | None = None, /, *, frozen: bool = False, eq: bool = True) -> Any:
    """Make ``cls`` a record: an ``__init__`` taking its annotated fields (in order, positional
    or by name), a ``repr``, equality by fields (``eq=False``: by identity) and, with
    ``frozen=True``, no assignment after ``__init__`` (and a hash by fields). Used bare
    (``@record``) or with options (``@record(frozen=True)``); returns the class itself."""
    if cls is None:
        return lambda klass: _make(klass, frozen, eq)
    return _make(cls, frozen, eq)
