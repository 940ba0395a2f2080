"""The package layout's rules: the runtime has no import cycles and never imports the tools,
and a built layer that carries development tooling fails the build check."""

from __future__ import annotations

import ast
import importlib.util
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

RUNTIME = ROOT / "layers" / "shared" / "dmhub_adapter"


def _module_name(path: Path) -> str:
    parts = path.relative_to(RUNTIME.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, name: str) -> set[str]:
    """Modules of the runtime package that ``path`` imports, at any depth of the file."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def _graph() -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in RUNTIME.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        graph[name] = {m for m in _imports(path, name) if m in modules and m != name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph`` (a package importing its own submodules is not one)."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for target in sorted(graph.get(node, ())):
            if node.startswith(target + "."):  # a submodule importing its own package's __init__
                continue
            if target.startswith(node + "."):  # a package's __init__ importing its submodules
                continue
            if state.get(target) == 1:
                return [*stack[stack.index(target):], target]
            if target not in state:
                cycle = visit(target)
                if cycle:
                    return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


def test_the_runtime_package_has_no_import_cycle() -> None:
    graph = _graph()
    assert sum(len(edges) for edges in graph.values()) > 100  # the walk does see the imports
    assert find_cycle(graph) is None, f"import cycle: {' -> '.join(find_cycle(graph) or [])}"


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert find_cycle({"p.a": {"p.b"}, "p.b": {"p.c"}, "p.c": {"p.a"}}) == ["p.a", "p.b", "p.c", "p.a"]
    assert find_cycle({"p.a": {"p.b"}, "p.b": set()}) is None


def test_the_runtime_never_imports_the_tools() -> None:
    offenders = sorted(
        str(path.relative_to(ROOT))
        for path in RUNTIME.rglob("*.py")
        if any(m.split(".")[0] in ("dmhub_adapter_tools", "moto", "pytest") for m in _imports(path, _module_name(path)))
    )
    assert offenders == []


def _check_build() -> object:
    spec = importlib.util.spec_from_file_location("check_build", ROOT / "scripts" / "check_build.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["check_build"] = module
    spec.loader.exec_module(module)
    return module


def _layer(tmp_path: Path, *extra: str) -> Path:
    python = tmp_path / "SharedLayer" / "python"
    for relative in ("dmhub_adapter/__init__.py", *extra):
        source = python / relative
        source.parent.mkdir(parents=True, exist_ok=True)
        source.write_text("x = 1\n", encoding="utf-8")
        cache = source.parent / "__pycache__"
        cache.mkdir(exist_ok=True)
        # an unchecked-hash .pyc header (flags 0b01), as the layer's Makefile compiles them
        (cache / f"{source.stem}.cpython-313.pyc").write_bytes(b"\0" * 4 + (1).to_bytes(4, "little") + b"\0" * 8)
    return tmp_path / "SharedLayer"


def test_the_build_check_accepts_a_runtime_only_layer(tmp_path: Path) -> None:
    check = _check_build()
    assert check.check_layer(_layer(tmp_path)) == []  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "tooling",
    ["dmhub_adapter_tools/__init__.py", "moto/__init__.py", "dmhub_adapter/emulator.py"],
)
def test_the_build_check_refuses_a_layer_with_tooling(tmp_path: Path, tooling: str) -> None:
    check = _check_build()
    layer = _layer(tmp_path, tooling)
    if tooling == "dmhub_adapter/emulator.py":
        (layer / "python" / tooling).write_text("from dmhub_adapter_tools.emulator import server\n", encoding="utf-8")
    problems = check.check_layer(layer)  # type: ignore[attr-defined]
    assert any("tooling" in problem for problem in problems), problems


def test_the_build_check_allows_docstrings_that_name_the_tools(tmp_path: Path) -> None:
    check = _check_build()
    layer = _layer(tmp_path, "dmhub_adapter/ingest.py")
    docstring = '"""Replayed by dmhub_adapter_tools.replay."""\n'
    (layer / "python" / "dmhub_adapter" / "ingest.py").write_text(docstring, encoding="utf-8")
    assert check.check_layer(layer) == []  # type: ignore[attr-defined]


def _undocumented_public_names(source: str, label: str) -> list[str]:
    """Public classes, functions and methods of public classes in `source` without a docstring."""
    missing: list[str] = []

    def visit(body: list[ast.stmt], prefix: str) -> None:
        for node in body:
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                continue
            if node.name.startswith("_"):
                continue
            if ast.get_docstring(node) is None:
                missing.append(f"{label}:{node.lineno} {prefix}{node.name}")
            if isinstance(node, ast.ClassDef):
                visit(node.body, f"{prefix}{node.name}.")

    visit(ast.parse(source).body, "")
    return missing


def test_every_public_name_of_the_runtime_has_a_docstring() -> None:
    missing = [
        name
        for path in sorted(RUNTIME.rglob("*.py"))
        for name in _undocumented_public_names(path.read_text(encoding="utf-8"), str(path.relative_to(ROOT)))
    ]
    assert not missing, "public names without a docstring:\n" + "\n".join(missing)


def test_the_docstring_check_finds_an_undocumented_method() -> None:
    source = (
        'class Public:\n    """Documented."""\n'
        "    def run(self) -> None:\n        pass\n"
        "    def _private(self) -> None:\n        pass\n"
    )
    assert _undocumented_public_names(source, "m.py") == ["m.py:3 Public.run"]
