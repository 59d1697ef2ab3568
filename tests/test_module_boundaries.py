"""No module of the package uses another module's private (`_`-prefixed) names."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import REPOSITORY_ROOT

PACKAGE = "eva_coralbay"


def _is_module(dotted: str) -> bool:
    path = REPOSITORY_ROOT.joinpath(*dotted.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def _private_uses(path: Path) -> list[str]:
    """`from pkg.mod import _name` and `mod._name` of the package's modules in one file.

    A `_`-prefixed module (`eva_coralbay._io`) is the package's internal module, meant to be
    imported within it; its names and the names of other packages are not checked.
    """
    tree = ast.parse(path.read_text())
    modules: dict[str, str] = {}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(PACKAGE):
            for alias in node.names:
                dotted = f"{node.module}.{alias.name}"
                if _is_module(dotted):
                    modules[alias.asname or alias.name] = dotted
                elif alias.name.startswith("_"):
                    found.append(f"{path}:{node.lineno}: from {node.module} import {alias.name}")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith(PACKAGE):
                    modules[alias.asname or alias.name] = alias.name
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in modules
            and node.attr.startswith("_")
            and not node.attr.startswith("__")
            and not _is_module(f"{modules[node.value.id]}.{node.attr}")
        ):
            found.append(f"{path}:{node.lineno}: {node.value.id}.{node.attr}")
    return found


def test_no_module_uses_another_modules_private_names() -> None:
    files = sorted((REPOSITORY_ROOT / PACKAGE).rglob("*.py"))
    assert len(files) > 50
    found = [use for path in files for use in _private_uses(path)]
    assert found == []


def test_the_check_sees_private_uses(tmp_path: Path) -> None:
    source = tmp_path / "module.py"
    source.write_text(
        "from eva_coralbay.data.adapters.decathlon_format import _cache_key\n"
        "from eva_coralbay.data.adapters import decathlon_format as df\n"
        "from eva_coralbay import _io\n"
        "df._entry_case_id('x')\n"
        "_io.sha256_of\n"
    )
    assert [use.split(": ", 1)[1] for use in _private_uses(source)] == [
        "from eva_coralbay.data.adapters.decathlon_format import _cache_key",
        "df._entry_case_id",
    ]
