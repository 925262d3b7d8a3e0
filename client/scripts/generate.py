"""Generate the ``mlgenai.v1`` Python modules from ``proto/`` into ``client/src``.

Run through ``make proto``. It writes ``*_pb2.py``, ``*_pb2_grpc.py`` and their mypy-protobuf
``.pyi`` stubs, copies the ``.proto`` sources next to them (so users of the wheel have the
contract), and adds ``__init__.py``. The output is committed; CI regenerates it and fails when
it differs (``make proto-check``), so the committed code always matches the contract.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROTO_ROOT = ROOT / "proto"
OUT = ROOT / "client" / "src"
PACKAGE = OUT / "mlgenai" / "v1"


def main() -> int:
    protos = sorted(p.relative_to(PROTO_ROOT).as_posix() for p in (PROTO_ROOT / "mlgenai").rglob("*.proto"))
    bindir = Path(sys.executable).parent
    for old in PACKAGE.glob("*"):
        if old.name != "__init__.py":
            old.unlink()
    cmd = [
        sys.executable,
        "-m",
        "grpc_tools.protoc",
        f"-I{PROTO_ROOT}",
        f"--plugin=protoc-gen-mypy={bindir / 'protoc-gen-mypy'}",
        f"--plugin=protoc-gen-mypy_grpc={bindir / 'protoc-gen-mypy_grpc'}",
        f"--python_out={OUT}",
        f"--grpc_python_out={OUT}",
        f"--mypy_out={OUT}",
        f"--mypy_grpc_out={OUT}",
        *protos,
    ]
    subprocess.run(cmd, check=True, cwd=ROOT)
    for proto in protos:
        shutil.copyfile(PROTO_ROOT / proto, OUT / proto)
    init = PACKAGE / "__init__.py"
    init.write_text('"""Generated from proto/mlgenai/v1 by client/scripts/generate.py. Do not edit."""\n')
    print(f"generated {len(protos)} proto files into {PACKAGE.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
