"""The committed protobuf and gRPC modules (and their typed stubs) are what scripts/gen_protos.sh makes of the .proto files."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PROTOS = Path("trainflow") / "serving" / "protos"
GENERATED = ("*_pb2.py", "*_pb2.pyi", "*_pb2_grpc.py")


def generated(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for pattern in GENERATED for p in (root / PROTOS).rglob(pattern)}


def test_committed_protos_match_what_the_proto_files_generate(tmp_path: Path) -> None:
    src = REPO / "src"
    for proto in (src / PROTOS).rglob("*.proto"):
        target = tmp_path / proto.relative_to(src)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(proto, target)
    out = subprocess.run(
        ["bash", str(REPO / "scripts" / "gen_protos.sh"), str(tmp_path)],
        capture_output=True,
        text=True,
        env={"PYTHON": sys.executable, "PATH": "/usr/bin:/bin"},
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    fresh, committed = generated(tmp_path), generated(src)
    assert sorted(fresh) == sorted(committed), "run scripts/gen_protos.sh and commit what it writes"
    stale = [name for name in fresh if fresh[name] != committed[name]]
    assert not stale, f"{stale} differ from their .proto files: run scripts/gen_protos.sh and commit the result"
