"""The import rules of DESIGN.md: store/ never imports grpc or the contract; server/ never
imports sqlalchemy (persistence is the store's job)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def _offenders(package: str, banned: tuple[str, ...]) -> list[str]:
    out = []
    for path in sorted((ROOT / package).rglob("*.py")):
        for name in _imports(path):
            if name.split(".")[0] in banned or any(name.startswith(b + ".") or name == b for b in banned):
                out.append(f"{path.relative_to(ROOT)}: {name}")
    return out


@pytest.mark.parametrize(
    ("package", "banned"),
    [
        ("store", ("grpc", "grpc_status", "grpc_health", "grpc_reflection", "mlgenai", "google.protobuf", "server")),
        ("server", ("sqlalchemy", "alembic", "psycopg")),
        ("client/src/mlgenai", ("server", "store", "sqlalchemy")),
    ],
)
def test_layer_imports(package: str, banned: tuple[str, ...]) -> None:
    assert _offenders(package, banned) == []
