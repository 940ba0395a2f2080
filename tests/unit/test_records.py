"""dmhub_adapter.records: each behaviour a record offers, side by side with ``@dataclass``.

Every case declares the same class both ways and requires the same outcome (value, equality,
hash, exception type), so a record can stand wherever a dataclass stood.
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from collections.abc import Callable
from typing import Any, ClassVar

import pytest

from dmhub_adapter.records import field, record
from tests.conftest import ROOT


def _pair(frozen: bool = False, eq: bool = True) -> tuple[type[Any], type[Any]]:
    """The same class declared as a dataclass and as a record."""

    def body(decorator: Callable[[type[Any]], type[Any]], make_field: Callable[..., Any]) -> type[Any]:
        class Order:
            limit: ClassVar[int] = 3
            id: str
            amount: int = 0
            tags: list[str] = make_field(default_factory=list)

            def total(self) -> int:
                return int(self.amount) * 2

        return decorator(Order)

    return (body(dataclasses.dataclass(frozen=frozen, eq=eq), dataclasses.field),
            body(record(frozen=frozen, eq=eq), field))


def _outcome(action: Callable[[], Any]) -> Any:
    try:
        return ("ok", action())
    except Exception as exc:  # the type is the outcome compared
        return ("raised", type(exc))


CALLS: list[tuple[tuple[Any, ...], dict[str, Any]]] = [
    (("a",), {}),
    (("a", 5), {}),
    (("a", 5, ["x"]), {}),
    ((), {"id": "a", "tags": ["y"]}),
    ((), {"amount": 1, "id": "b"}),
    ((), {}),  # id missing
    (("a",), {"id": "b"}),  # id twice
    (("a",), {"nope": 1}),  # no such field
    (("a", 1, [], 4), {}),  # too many
]


@pytest.mark.parametrize("frozen", [False, True])
@pytest.mark.parametrize(("args", "kwargs"), CALLS)
def test_construction_matches_a_dataclass(frozen: bool, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    dataclass_type, record_type = _pair(frozen)
    expected = _outcome(lambda: dataclass_type(*args, **kwargs))
    got = _outcome(lambda: record_type(*args, **kwargs))
    assert got[0] == expected[0]
    if expected[0] == "raised":
        assert got[1] is expected[1] is TypeError
        return
    made, reference = got[1], expected[1]
    assert (made.id, made.amount, made.tags) == (reference.id, reference.amount, reference.tags)
    assert made.total() == reference.total()
    assert repr(made) == repr(reference)


def test_factories_make_a_new_object_per_record() -> None:
    _, record_type = _pair()
    first, second = record_type("a"), record_type("b")
    first.tags.append("x")
    assert second.tags == [] and first.tags is not second.tags


@pytest.mark.parametrize("frozen", [False, True])
def test_equality_and_hash_match_a_dataclass(frozen: bool) -> None:
    for eq in (True, False):
        dataclass_type, record_type = _pair(frozen, eq)
        for kind in (dataclass_type, record_type):
            same = kind("a", 1) == kind("a", 1)
            different = kind("a", 1) == kind("a", 2)
            assert (same, different) == ((True, False) if eq else (False, False)), kind
        assert (dataclass_type.__hash__ is None) == (record_type.__hash__ is None)
        if frozen and eq:
            assert hash(record_type("a", 1, ())) == hash(record_type("a", 1, ()))
        assert record_type("a") != "a"


def test_frozen_records_refuse_assignment_as_dataclasses_do() -> None:
    dataclass_type, record_type = _pair(frozen=True)
    for kind in (dataclass_type, record_type):
        item = kind("a")
        with pytest.raises(dataclasses.FrozenInstanceError):
            item.amount = 2
        with pytest.raises(dataclasses.FrozenInstanceError):
            del item.amount
    thawed = _pair(frozen=False)[1]("a")
    thawed.amount = 7
    assert thawed.amount == 7


def test_a_required_field_after_a_default_is_refused_when_declared() -> None:
    class Bad:
        first: int = 0
        second: int

    with pytest.raises(TypeError, match="second"):
        record(Bad)


def test_subclasses_add_fields_after_their_parents() -> None:
    @record(frozen=True)
    class Base:
        a: int

    @record(frozen=True)
    class Child(Base):
        b: str = "x"

    assert Child(1).b == "x" and Child(1, "y") == Child(a=1, b="y")
    assert repr(Child(1)).endswith("Child(a=1, b='x')")


def test_defining_a_record_costs_a_fraction_of_a_dataclass() -> None:
    """The reason records exist, checked as a count of work rather than a time: a dataclass
    compiles generated source (``exec``) for each class; a record compiles nothing."""
    program = """
import builtins, dataclasses
from dmhub_adapter.records import record
calls = []
real_exec = builtins.exec
builtins.exec = lambda *a, **k: (calls.append(1), real_exec(*a, **k))[1]
@record(frozen=True)
class A:
    x: int
    y: str = ""
print(len(calls))
@dataclasses.dataclass(frozen=True)
class B:
    x: int
    y: str = ""
print(len(calls))
"""
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, check=True,
                          cwd=ROOT, env={"PYTHONPATH": str(ROOT / "layers" / "shared")})
    after_record, after_dataclass = (int(line) for line in done.stdout.split())
    assert after_record == 0 and after_dataclass > 0


def test_replace_matches_dataclasses_replace() -> None:
    from dmhub_adapter.records import replace

    dataclass_type, record_type = _pair(frozen=True)
    for kind, copy in ((dataclass_type, dataclasses.replace), (record_type, replace)):
        original = kind("a", 1, ["t"])
        changed = copy(original, amount=2)
        assert (changed.id, changed.amount, changed.tags) == ("a", 2, ["t"]) and original.amount == 1
        with pytest.raises(TypeError):
            copy(original, nope=1)
    with pytest.raises(TypeError):
        replace(object())
