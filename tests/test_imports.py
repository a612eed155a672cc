"""The package's modules import one another without cycles (function-level imports included)."""

from __future__ import annotations

import ast
import subprocess
import sys
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import streamal

PACKAGE = Path(streamal.__file__).parent


def module_files() -> dict[str, Path]:
    """Every module of ``streamal`` by dotted name (a package by its own name)."""
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def _type_checking_only(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and ast.unparse(node.test) in {
        "TYPE_CHECKING",
        "typing.TYPE_CHECKING",
    }


def imported(path: Path, name: str, modules: dict[str, Path]) -> set[str]:
    """The ``streamal`` modules that the module ``name`` at ``path`` imports anywhere in its code.

    Imports under ``if TYPE_CHECKING:`` never run, so they do not count.
    """
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    nodes: list[ast.AST] = [ast.parse(path.read_text(encoding="utf-8"))]
    while nodes:
        node = nodes.pop()
        nodes += [c for c in ast.iter_child_nodes(node) if not _type_checking_only(c)]
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parents = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parents, *([node.module] if node.module else [])])
            targets = [
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                for alias in node.names
            ]
        else:
            continue
        for target in targets:
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def test_no_module_imports_itself_through_others() -> None:
    modules = module_files()
    graph = {name: imported(path, name, modules) for name, path in modules.items()}
    try:
        tuple(TopologicalSorter(graph).static_order())
    except CycleError as error:
        raise AssertionError(f"import cycle: {' -> '.join(error.args[1])}") from None


def test_the_shared_cli_module_imports_no_command_or_tool() -> None:
    probe = (
        "import sys, streamal.cli.common; "
        "print(' '.join(m for m in sys.modules "
        "if m.startswith(('streamal.tools', 'streamal.cli.')) and m != 'streamal.cli.common'))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == ""
