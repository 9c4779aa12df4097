"""The layering of the package: the import-linter contracts of pyproject.toml hold, and no two
modules import each other, directly or through others (imports inside functions count)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO

grimp = pytest.importorskip("grimp", reason="the dev extra (import-linter) is not installed")
nx = pytest.importorskip("networkx", reason="the dev extra (networkx) is not installed")


def test_the_import_contracts_hold() -> None:
    lint = Path(sys.executable).with_name("lint-imports")
    res = subprocess.run([str(lint), "--no-cache"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]
    assert "0 broken" in res.stdout


def test_no_module_imports_itself_through_others() -> None:
    graph = grimp.build_graph("etle", cache_dir=None)
    g = nx.DiGraph()
    for m in graph.modules:
        for n in graph.find_modules_directly_imported_by(m):
            # a package's __init__ re-exporting its submodules is not a cycle of the layering
            if not n.startswith(m + "."):
                g.add_edge(m, n)
    cycles = [sorted(c) for c in nx.strongly_connected_components(g) if len(c) > 1]
    assert cycles == []
