#!/usr/bin/env python3
"""Check that src/pixelmcp has no import circles and that its floors only point down.

    python scripts/check_layers.py

Every import counts: module-level, inside functions, and under TYPE_CHECKING. A module may import
modules of its own package, and modules on lower floors; never a floor above, nor a sideways
package on its own floor. Prints each violation and exits 1 if there is any.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = "pixelmcp"

#: Top to bottom. Each floor lists packages or modules (the longest matching name decides a module's place).
FLOORS: tuple[tuple[str, ...], ...] = (
    ("pixelmcp.cli",),
    ("pixelmcp.server",),
    ("pixelmcp.tools",),
    ("pixelmcp.service",),
    ("pixelmcp.router",),
    ("pixelmcp.engine", "pixelmcp.providers"),
    ("pixelmcp.backends",),
    ("pixelmcp.prompts", "pixelmcp.media"),
    ("pixelmcp.config",),
    ("pixelmcp.catalog", "pixelmcp.registry", "pixelmcp.errors", "pixelmcp"),
)


def modules(src: Path = SRC) -> dict[str, Path]:
    found = {}
    for path in sorted((src / PACKAGE).rglob("*.py")):
        parts = list(path.relative_to(src).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    here = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = here.split(".")[: len(here.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            targets = [f"{base}.{alias.name}" for alias in node.names] + [base]
        else:
            continue
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def place(name: str) -> tuple[int, str]:
    """(floor, room): the floor index (0 = top) and the package or module that holds `name` there."""
    best = None
    for floor, rooms in enumerate(FLOORS):
        for room in rooms:
            if (name == room or name.startswith(room + ".")) and (best is None or len(room) > len(best[1])):
                best = (floor, room)
    if best is None:
        raise SystemExit(f"{name} is on no floor: add it to FLOORS in {__file__}")
    return best


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def problems(src: Path = SRC) -> list[str]:
    found = modules(src)
    graph = {name: imports_of(name, path, set(found)) for name, path in found.items()}
    out = [f"import circle: {' <-> '.join(c)}" for c in circles(graph)]
    for name, targets in sorted(graph.items()):
        floor, room = place(name)
        for target in sorted(targets):
            target_floor, target_room = place(target)
            if target_floor < floor:
                out.append(f"upward import: {name} (floor {floor}) imports {target} (floor {target_floor})")
            elif target_floor == floor and target_room != room and not target_room.startswith(room + "."):
                out.append(f"sideways import: {name} ({room}) imports {target} ({target_room}) on the same floor")
    return out


def main() -> int:
    found = problems()
    for line in found:
        print(line)
    print(f"{len(found)} layering problem(s) in {len(modules())} modules")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
