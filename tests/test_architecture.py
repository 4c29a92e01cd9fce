"""The house rules that keep the package easy to live in: every module imports on its own (no import cycles),
no module imports the package root, and imports flow one way between the layers of docs/architecture.md."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "hepsbi"

#: Layers, lowest first: a package may import packages of lower layers only (same layer: not each other).
LAYERS = [
    {"_version", "errors"},
    {"files"},
    {"space"},
    {"simulators"},
    {"data"},
    {"physics", "estimators", "inference", "diagnostics"},
    {"report"},
    {"workflow"},
    {"cli"},
]
RANK = {name: i for i, layer in enumerate(LAYERS) for name in layer}


def modules() -> list[str]:
    names = []
    for path in sorted(SRC.rglob("*.py")):
        parts = path.relative_to(SRC.parent).with_suffix("").parts
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def _runtime_nodes(tree: ast.AST) -> list[ast.AST]:
    """Every node except those under ``if TYPE_CHECKING:`` (imports for annotations only, never executed)."""
    out, todo = [], [tree]
    while todo:
        node = todo.pop()
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            todo += node.orelse
            continue
        out.append(node)
        todo += list(ast.iter_child_nodes(node))
    return out


def imported(path: Path) -> list[str]:
    """The hepsbi modules a source file imports at run time (at any depth of the file: lazy imports count too)."""
    found = []
    for node in _runtime_nodes(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "hepsbi":
            found.append(node.module)
        elif isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.split(".")[0] == "hepsbi"]
    return found


def test_every_module_imports_on_its_own():
    script = (
        "import importlib, sys\n"
        "failed = []\n"
        f"for name in {modules()!r}:\n"
        "    for loaded in [m for m in sys.modules if m == 'hepsbi' or m.startswith('hepsbi.')]:\n"
        "        del sys.modules[loaded]\n"
        "    try:\n"
        "        importlib.import_module(name)\n"
        "    except Exception as exc:\n"
        "        failed.append(f'{name}: {type(exc).__name__}: {exc}')\n"
        "print('\\n'.join(failed))\n"
        "sys.exit(1 if failed else 0)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("path", sorted(SRC.rglob("*.py")), ids=lambda p: str(p.relative_to(SRC)))
def test_imports_flow_one_way(path):
    rel = path.relative_to(SRC)
    if rel.parts == ("__init__.py",):
        return  # the package root gathers the public names
    own = rel.parts[0].removesuffix(".py")
    for module in imported(path):
        parts = module.split(".")
        assert len(parts) > 1, f"{rel} imports the package root 'hepsbi' (import from the module that defines it)"
        target = parts[1]
        if target == own:
            continue
        assert RANK[target] < RANK[own], (f"{rel} imports hepsbi.{target}: {own} (layer {RANK[own]}) may only import "
                                          f"lower layers, {target} is layer {RANK[target]}")
