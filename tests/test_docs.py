"""The README's module map (Development section) names every module of the package, and nothing that is gone."""
from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "cmet_cli"


def _module_map() -> str:
    text = (ROOT / "README.md").read_text()
    start = text.index("```\nsrc/cmet_cli/")
    return text[start:text.index("```\n", start + 4)]


def test_module_map_matches_the_tree() -> None:
    block = _module_map()
    named = set(re.findall(r"\b(\w+\.py)\b", block))
    modules = {p.name for p in PACKAGE.rglob("*.py") if p.name not in ("__init__.py", "__main__.py")}
    assert modules - named == set(), "modules missing from the README's module map"
    assert named - modules == set(), "the README's module map names modules that do not exist"
    packages = {p.parent.name for p in PACKAGE.glob("*/__init__.py")}
    assert packages == set(re.findall(r"^  (\w+)/", block, re.M))
