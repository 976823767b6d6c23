"""The package's floors only point down, and no modules import each other in a circle (scripts/check_layers.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

import check_layers


def test_the_package_has_no_circles_and_no_upward_or_sideways_imports():
    out = subprocess.run([sys.executable, str(ROOT / "scripts" / "check_layers.py")], capture_output=True, text=True,
                         check=False)
    assert out.returncode == 0, out.stdout
    assert out.stdout.strip().endswith("0 layering problem(s) in " + str(len(check_layers.modules())) + " modules")


def test_the_check_finds_circles_upward_and_sideways_imports(tmp_path):
    package = tmp_path / "pixelmcp"
    files = {
        "__init__.py": "",
        "errors.py": "",
        "config.py": "from pixelmcp import errors\n",
        "router.py": "from pixelmcp.tools import state\n",  # upward
        "tools/__init__.py": "",
        "tools/state.py": "from pixelmcp import router\n",  # with router.py: a circle
        "engine/__init__.py": "",
        "engine/pool.py": "def f():\n    from pixelmcp.providers import openai\n",  # sideways, inside a function
        "providers/__init__.py": "",
        "providers/openai.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ..config import x\n",
    }
    for name, text in files.items():
        (package / name).parent.mkdir(parents=True, exist_ok=True)
        (package / name).write_text(text)
    found = check_layers.problems(tmp_path)
    assert "import circle: pixelmcp.router <-> pixelmcp.tools.state" in found
    assert any(p.startswith("upward import: pixelmcp.router") and "pixelmcp.tools.state" in p for p in found)
    assert any(p.startswith("sideways import: pixelmcp.engine.pool") and "pixelmcp.providers.openai" in p
               for p in found)
    assert not any("config" in p for p in found)  # the relative TYPE_CHECKING import points down: allowed
