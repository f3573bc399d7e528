#!/usr/bin/env bash
# Regenerate the committed gRPC/protobuf modules of trainflow.serving.protos from the .proto files.
# Imports come out package-absolute (trainflow.serving.protos...) because the .proto files import each
# other by their path under src/. The KServe module is moved into a private descriptor pool: tritonclient
# registers the same `inference.*` symbols in the default pool, and a process using both must work.
# Typed stubs (*_pb2.pyi) come out beside the modules, for mypy and editors.
#
#   scripts/gen_protos.sh [ROOT]    ROOT holds trainflow/serving/protos/**.proto (default: src/);
#                                   tests/serving/test_protos.py regenerates into a copy and compares.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
PY="${PYTHON:-$HERE/../.venv/bin/python}"
cd "${1:-$HERE/../src}"
PROTOS=trainflow/serving/protos
find "$PROTOS" \( -name '*_pb2*.py' -o -name '*_pb2.pyi' \) -delete
"$PY" -m grpc_tools.protoc -I. --python_out=. --pyi_out=. $(find "$PROTOS" -name '*.proto' | sort)
"$PY" -m grpc_tools.protoc -I. --grpc_python_out=. $(grep -l '^service ' -r "$PROTOS" --include='*.proto' | sort)
KSERVE="$PROTOS/kserve/grpc_predict_v2_pb2.py"
"$PY" - "$KSERVE" <<'PYEOF'
import sys
path = sys.argv[1]
text = open(path).read()
old = "DESCRIPTOR = _descriptor_pool.Default().AddSerializedFile("
assert old in text, "generated code changed: update gen_protos.sh"
text = text.replace(old, "POOL = _descriptor_pool.DescriptorPool()  # private: see gen_protos.sh\n"
                         "DESCRIPTOR = POOL.AddSerializedFile(")
open(path, "w").write(text)
PYEOF
for dir in $(find "$PROTOS" -type d); do
  [ -f "$dir/__init__.py" ] || echo '"""Generated protobuf modules (scripts/gen_protos.sh)."""' > "$dir/__init__.py"
done
