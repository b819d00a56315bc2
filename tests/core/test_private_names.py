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
