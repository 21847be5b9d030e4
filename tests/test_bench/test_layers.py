"""Layering: the benchmark library does not import the command-line layer (issue 24); the model resolver
lives in ``lsnet_deploy.model_choice`` and ``cli.common`` keeps re-exporting it."""

from __future__ import annotations

import ast
from pathlib import Path

import lsnet_deploy.bench

BENCH = Path(lsnet_deploy.bench.__file__).parent


def imported_modules(path: Path) -> set[str]:
    """Every module a file imports, relative imports resolved against lsnet_deploy.bench."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = ["lsnet_deploy", "bench"][:max(0, 2 - node.level + 1)] if node.level else []
            found.add(".".join([*base, node.module] if node.module else base))
    return found


def test_the_bench_package_never_imports_the_cli():
    offenders = {path.name: sorted(m for m in imported_modules(path) if m.startswith("lsnet_deploy.cli"))
                 for path in BENCH.glob("*.py")}
    assert {name: mods for name, mods in offenders.items() if mods} == {}


def test_resolve_model_lives_outside_the_cli_and_is_still_re_exported(capsys):
    from lsnet_deploy.cli import common
    from lsnet_deploy.model_choice import resolve_model

    assert common.resolve_model is resolve_model
    model = resolve_model("lsnet_t", None, (64, 64))
    assert "randomly initialized" in capsys.readouterr().err and not model.training
    resolve_model("lsnet_t", None, (64, 64), warn=False)
    assert capsys.readouterr().err == ""
