#!/usr/bin/env bash
# Regenerates the Python code for proto/ into services/common/src (checked in).
# The directory of each .proto is its Python import path: proto/perflab/contracts/orders/v1
# becomes the module perflab.contracts.orders.v1.orders_pb2.
set -euo pipefail
cd "$(dirname "$0")/.."
out=services/common/src
find "$out/perflab/contracts" -name '*_pb2*.py*' -delete 2>/dev/null || true
mapfile -t protos < <(find proto -name '*.proto' | sort)
python -m grpc_tools.protoc -I proto \
  --python_out="$out" --pyi_out="$out" --grpc_python_out="$out" "${protos[@]}"
# Only .proto files that declare a service get a usable *_pb2_grpc module.
for f in "$out"/perflab/contracts/*/v1/*_pb2_grpc.py; do
  grep -q "Stub" "$f" || rm "$f"
done
