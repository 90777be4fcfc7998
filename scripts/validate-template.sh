#!/usr/bin/env bash
# Template checks run by `make lint` and CI. Installs what it needs itself (idempotent):
#   1. cfn-lint template.yaml                       (.venv)
#   2. cfn-lint on the offline samtranslator output (runtimes, policies, generated resources)
#   3. sam validate --lint                          (.venv-sam, aws-sam-cli pinned in scripts/sam-env.sh)
#   4. asl-validator on statemachines/*.asl.json    (npm ci; skipped, saying so, when there are none)
#   5. with --with-build: scripts/sam-build.sh      (sam build without Docker + artefact checks, ~30 s)
# Usage: bash scripts/validate-template.sh [--with-build]
set -euo pipefail
WITH_BUILD=0
case "${1:-}" in
    "") ;;
    --with-build) WITH_BUILD=1 ;;
    *) echo "usage: $0 [--with-build]" >&2; exit 2 ;;
esac
source "$(dirname "${BASH_SOURCE[0]}")/sam-env.sh"
cd "$ROOT"

PY="$ROOT/.venv/bin/python"
[[ -x "$PY" ]] || { echo "missing .venv: run 'make venv' first" >&2; exit 1; }
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT

step() { echo "==> $*"; }
timed() {
    local t0=$SECONDS
    "$@"
    echo "    ($(( SECONDS - t0 )) s)"
}

step "cfn-lint template.yaml"
timed "$ROOT/.venv/bin/cfn-lint" template.yaml

step "cfn-lint on the translated template"
timed "$PY" -m scripts.translate_template template.yaml -o "$TMP/translated.json"
# W1020: SAM itself emits Fn::Sub without variables after resolving parameter defaults; not ours to fix.
timed "$ROOT/.venv/bin/cfn-lint" --ignore-checks W1020 -- "$TMP/translated.json"

step "sam validate --lint (aws-sam-cli $SAM_CLI_VERSION)"
ensure_sam
timed "$SAM" validate --lint --template-file template.yaml --region "$AWS_DEFAULT_REGION"

ASL_DIR="${ASL_DIR:-statemachines}"  # overridable to test the checker itself
step "asl-validator on $ASL_DIR/*.asl.json"
shopt -s nullglob
asl_files=("$ASL_DIR"/*.asl.json)
if [[ ${#asl_files[@]} -eq 0 ]]; then
    echo "    no $ASL_DIR/*.asl.json yet: nothing to validate"
else
    if [[ ! -x node_modules/.bin/asl-validator ]] || [[ package-lock.json -nt node_modules/.package-lock.json ]]; then
        timed npm ci --no-audit --no-fund --loglevel=error
    fi
    args=()
    for f in "${asl_files[@]}"; do args+=(--json-path "$f"); done
    timed node_modules/.bin/asl-validator "${args[@]}"
fi

if [[ $WITH_BUILD -eq 1 ]]; then
    step "sam build (scripts/sam-build.sh)"
    timed bash "$ROOT/scripts/sam-build.sh"
fi

echo "template checks passed"
