#!/usr/bin/env bash
# `sam build` without Docker and without a Python 3.13 interpreter (see docs/contracts.md, LOCAL-AWS.md):
# every resource uses BuildMethod: makefile; the layer's Makefile asks pip for cp313 manylinux aarch64 wheels.
# Then checks that the artefacts are what Lambda python3.13/arm64 needs.
# Usage: bash scripts/sam-build.sh [RESOURCE_LOGICAL_ID]   (default: everything; sam builds one id or all)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/sam-env.sh"
cd "$ROOT"
ensure_sam

if [[ $# -gt 1 ]]; then
    echo "usage: $0 [RESOURCE_LOGICAL_ID]" >&2
    exit 2
fi
BUILD_DIR="${SAM_BUILD_DIR:-$ROOT/.aws-sam/build}"
# The layer Makefile runs `$(PYTHON) -m pip`: the sam venv always has pip, whatever the machine has.
export PYTHON="$SAM_VENV/bin/python"

start=$(date +%s)
"$SAM" build --template-file template.yaml --build-dir "$BUILD_DIR" --cached --cache-dir "$ROOT/.aws-sam/cache" "$@"

fail() { echo "sam-build check FAILED: $*" >&2; exit 1; }

built_ids=("$@")
if [[ ${#built_ids[@]} -eq 0 ]]; then
    built_ids=(CoreLayer OAuthFunction AdminApiFunction AdminAuthorizerFunction TokenKeepAliveFunction EntitySyncFunction
        RetryFanoutFunction WebhookIntakeFunction InboundWorkerFunction CdcCatchUpFunction InitialSyncFunction)
fi
for id in "${built_ids[@]}"; do
    dir="$BUILD_DIR/$id"
    [[ -d "$dir" ]] || fail "$id: no artefact folder $dir"
    if [[ "$id" == "CoreLayer" ]]; then
        so=$(find "$dir/python/pydantic_core" -name '_pydantic_core.cpython-313-aarch64-linux-gnu.so' | head -n1)
        [[ -n "$so" ]] || fail "CoreLayer: no cp313 aarch64 pydantic_core extension"
        if command -v file >/dev/null && ! file "$so" | grep -q 'ARM aarch64'; then
            fail "CoreLayer: $so is not an aarch64 ELF"
        fi
        [[ -f "$dir/python/qbsync/__init__.py" ]] || fail "CoreLayer: qbsync package missing"
        for pkg in aws_lambda_powertools pydantic requests jwt; do
            [[ -d "$dir/python/$pkg" ]] || fail "CoreLayer: $pkg missing"
        done
        [[ ! -e "$dir/python/botocore" ]] || fail "CoreLayer: botocore shipped (shadows the runtime's boto3)"
        if find "$dir/python" -name '*.cpython-3[0-9]*-x86_64-linux-gnu.so' | grep -q .; then
            fail "CoreLayer: x86_64 extensions shipped"
        fi
    else
        [[ -f "$dir/app.py" ]] || fail "$id: app.py missing"
    fi
    if [[ "$id" == "CoreLayer" ]]; then
        # the layer ships bytecode compiled for Lambda's python3.13 (layers/core/Makefile: read-only code
        # directories would compile it again on every cold start); bytecode of any other Python is wrong
        if find "$dir" -name '*.pyc' ! -name '*.cpython-313.pyc' | grep -q .; then
            fail "$id: bytecode of another Python than 3.13 shipped"
        fi
    elif find "$dir" -name '__pycache__' -o -name '*.pyc' | grep -q .; then
        fail "$id: bytecode of the build machine shipped"
    fi
    echo "ok  $id"
done
echo "sam build OK in $(( $(date +%s) - start )) s -> $BUILD_DIR"
