#!/usr/bin/env bash
# Regenerate the committed gRPC/protobuf modules of trainflow.serving.protos from the .proto files.
# Imports come out package-absolute (trainflow.serving.protos...) because the .proto files import each
# other by their path under src/. The KServe module is moved into a private descriptor pool: tritonclient
# registers the same `inference.*` symbols in the default pool, and a process using both must work.
set -euo pipefail
cd "$(dirname "$0")/../src"
PY="${PYTHON:-../.venv/bin/python}"
PROTOS=trainflow/serving/protos
find "$PROTOS" -name '*_pb2*.py' -delete
"$PY" -m grpc_tools.protoc -I. --python_out=. $(find "$PROTOS" -name '*.proto' | sort)
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
