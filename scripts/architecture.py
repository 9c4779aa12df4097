#!/usr/bin/env python
"""Figures of the code's shape, for issue reviews: the largest modules, import cycles between
modules and between the sibling packages of ``etle`` (deferred imports inside functions count),
and the places issue 15 names (default database URL, ``ETLE_*`` settings, the largest classes and functions).

    .venv/bin/python scripts/architecture.py [--json out.json] [--root DIR]

Needs grimp and networkx (the ``dev`` extra).  ``--root`` points at another checkout (e.g. a
``git worktree`` of an older commit) to compare before and after.
"""

from __future__ import annotations

import argparse
import ast
import json
import re
import sys
from pathlib import Path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", type=Path, default=Path(__file__).resolve().parents[1])
    ap.add_argument("--json", type=Path)
    ap.add_argument("--top", type=int, default=12)
    args = ap.parse_args()
    root = args.root.resolve()
    sys.path.insert(0, str(root))
    import grimp
    import networkx as nx

    graph = grimp.build_graph("etle", cache_dir=None)
    files = sorted((root / "etle").rglob("*.py"))
    sizes = sorted(((len(f.read_text(encoding="utf-8").splitlines()), str(f.relative_to(root))) for f in files), reverse=True)

    modules = nx.DiGraph()
    packages = nx.DiGraph()
    for m in graph.modules:
        modules.add_node(m)
        for n in graph.find_modules_directly_imported_by(m):
            modules.add_edge(m, n)
            a, b = ".".join(m.split(".")[:2]), ".".join(n.split(".")[:2])
            if a != b and "etle" not in (a, b):
                packages.add_edge(a, b)
    # a package's __init__ importing its own submodules is no cycle of the code's layering
    module_cycles = [sorted(c) for c in nx.strongly_connected_components(modules) if len(c) > 1
                     and not all(x.startswith(min(c, key=len) + ".") or x == min(c, key=len) for x in c)]
    package_cycles = [sorted(c) for c in nx.strongly_connected_components(packages) if len(c) > 1]

    text = {f: f.read_text(encoding="utf-8") for f in files}
    db_default = sum(t.count("sqlite:///etle.db") for t in text.values())
    env_modules = sorted(str(f.relative_to(root)) for f, t in text.items() if re.search(r"environ\.get\(\s*[\"']ETLE_", t) or re.search(r"environ\[\s*[\"']ETLE_[A-Z0-9_]+[\"']\s*\](?!\s*=)", t) or re.search(r"getenv\(\s*[\"']ETLE_", t))
    env_names = sorted({m for t in text.values() for m in re.findall(r"[\"'](ETLE_[A-Z0-9_]+)[\"']", t)})
    classes: list[tuple[int, str]] = []
    functions: list[tuple[int, str]] = []
    for f, t in text.items():
        for node in ast.walk(ast.parse(t)):
            if isinstance(node, ast.ClassDef):
                n = len([b for b in node.body if isinstance(b, (ast.FunctionDef, ast.AsyncFunctionDef))])
                classes.append((n, f"{f.relative_to(root)}:{node.name}"))
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                functions.append((node.end_lineno - node.lineno + 1, f"{f.relative_to(root)}:{node.name}"))
    classes.sort(reverse=True)
    functions.sort(reverse=True)
    report = {
        "files": len(files), "lines": sum(s for s, _ in sizes), "largest": [{"lines": s, "file": f} for s, f in sizes[: args.top]],
        "module_cycles": module_cycles, "package_cycles": package_cycles,
        "sqlite_default_literals": db_default, "etle_env_names": len(env_names), "modules_reading_etle_env": len(env_modules),
        "largest_classes_by_methods": [{"methods": n, "class": c} for n, c in classes[:5]],
        "longest_functions": [{"lines": n, "function": c} for n, c in functions[:5]],
    }
    print(f"etle: {report['files']} files, {report['lines']} lines")
    print("largest modules:")
    for s, f in sizes[: args.top]:
        print(f"  {s:6d}  {f}")
    print(f"module import cycles: {len(module_cycles)}")
    for c in module_cycles:
        print("  " + " <-> ".join(c))
    print(f"sibling-package import cycles: {len(package_cycles)}")
    for c in package_cycles:
        print("  " + " <-> ".join(c))
    print(f"'sqlite:///etle.db' literals: {db_default}; ETLE_* names: {len(env_names)}, read from the environment outside etle/config/settings.py in "
          f"{len(env_modules)} modules: {', '.join(env_modules)}")
    print("classes with the most methods: " + "; ".join(f"{c} {n}" for n, c in classes[:5]))
    print("longest functions: " + "; ".join(f"{c} {n} lines" for n, c in functions[:5]))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
