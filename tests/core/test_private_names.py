"""No module imports another module's private names (STYLE.md: a leading underscore is
module-private; what another module needs is public). Private *modules* of a package
(``from tenpo.pos import _arrow``) are the package's own business and allowed."""

from __future__ import annotations

import ast
from pathlib import Path

import tenpo

SRC = Path(tenpo.__file__).resolve().parent.parent


def _private_imports() -> list[str]:
    found = []
    for path in sorted((SRC / "tenpo").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not (
                isinstance(node, ast.ImportFrom)
                and node.module
                and node.module.split(".")[0] == "tenpo"
            ):
                continue
            folder = SRC.joinpath(*node.module.split("."))
            for alias in node.names:
                name = alias.name
                if not name.startswith("_") or name.startswith("__"):
                    continue
                if (folder / f"{name}.py").exists() or (folder / name).is_dir():
                    continue  # a package's private module
                found.append(f"{path.relative_to(SRC)}: from {node.module} import {name}")
    return found


def test_no_private_name_is_imported_across_modules() -> None:
    assert _private_imports() == []


def _module_imports() -> dict[str, set[str]]:
    """Each tenpo module's tenpo imports at module level (``if TYPE_CHECKING:`` blocks and
    imports inside functions, which run later, left out)."""
    modules = {}
    for path in (SRC / "tenpo").rglob("*.py"):
        parts = path.relative_to(SRC).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        deps: set[str] = set()
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("tenpo"):
                for alias in node.names:
                    full = f"{node.module}.{alias.name}"
                    deps.add(full if full in modules else node.module)
            elif isinstance(node, ast.Import):
                deps.update(a.name for a in node.names if a.name.startswith("tenpo"))
        graph[name] = {d for d in deps if d in modules and d != name}
    return graph


def test_no_import_circle() -> None:
    """No two tenpo modules import each other, directly or around a circle, at module level."""
    graph = _module_imports()
    state: dict[str, int] = {}  # 1: on the path being walked, 2: done
    circles: list[list[str]] = []

    def walk(name: str, path: list[str]) -> None:
        state[name] = 1
        for dep in sorted(graph[name]):
            if state.get(dep) == 1:
                circles.append([*path[path.index(dep) :], dep])
            elif dep not in state:
                walk(dep, [*path, dep])
        state[name] = 2

    for name in sorted(graph):
        if name not in state:
            walk(name, [name])
    assert circles == []
