"""Load the real Lambda handlers (``functions/<name>/app.py``) by file path.

``functions/`` is not a package (each directory is one Lambda's code root), so the handlers
are loaded the way the Lambda runtime does: one module per file, not through an import path.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

Handler = Callable[[dict[str, Any], Any], Any]

FUNCTIONS = ("ingest", "sender")


class HandlerLoadError(RuntimeError):
    pass


def default_functions_dir() -> Path | None:
    """``<repo>/functions`` for a checkout (the package lives in ``<repo>/layers/shared``)."""
    import dmhub_adapter

    package_dir = Path(dmhub_adapter.__file__).resolve().parent
    candidates = [package_dir.parents[2] / "functions", Path.cwd() / "functions"]
    for candidate in candidates:
        if all((candidate / name / "app.py").is_file() for name in FUNCTIONS):
            return candidate
    return None


def resolve_functions_dir(explicit: str | os.PathLike[str] | None) -> Path:
    if explicit:
        path = Path(explicit).resolve()
        missing = [name for name in FUNCTIONS if not (path / name / "app.py").is_file()]
        if missing:
            raise HandlerLoadError(f"{path}: no {', '.join(f'{m}/app.py' for m in missing)}")
        return path
    found = default_functions_dir()
    if found is None:
        raise HandlerLoadError(
            "cannot find the functions/ directory (ingest/app.py, sender/app.py); "
            "run from the repository or pass --functions-dir"
        )
    return found


def load_handler(functions_dir: Path, name: str, attribute: str = "lambda_handler") -> Handler:
    """Import ``functions_dir/name/app.py`` as its own module and return its handler."""
    path = functions_dir / name / "app.py"
    spec = importlib.util.spec_from_file_location(f"dmhub_adapter_local_{name}_app", path)
    if spec is None or spec.loader is None:
        raise HandlerLoadError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        raise HandlerLoadError(f"importing {path} failed: {type(exc).__name__}: {exc}") from exc
    handler = getattr(module, attribute, None)
    if not callable(handler):
        raise HandlerLoadError(f"{path} has no callable {attribute}")
    return handler  # type: ignore[no-any-return]
