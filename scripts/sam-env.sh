# Sourced by scripts/validate-template.sh and scripts/sam-build.sh: makes sure aws-sam-cli is available in its
# own venv (.venv-sam). aws-sam-cli pins boto3/pydantic versions that clash with the app's, so it never
# shares .venv. Idempotent: a stamp file records the installed version.
SAM_CLI_VERSION="1.170.0"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SAM_VENV="$ROOT/.venv-sam"
SAM="$SAM_VENV/bin/sam"
export SAM_CLI_TELEMETRY=0
export AWS_DEFAULT_REGION="${AWS_DEFAULT_REGION:-us-east-1}"

ensure_sam() {
    local stamp="$SAM_VENV/.installed-$SAM_CLI_VERSION"
    if [[ -f "$stamp" && -x "$SAM" ]]; then
        return 0
    fi
    echo "==> installing aws-sam-cli==$SAM_CLI_VERSION into .venv-sam (once)"
    "${PYTHON_BOOT:-python3}" -m venv "$SAM_VENV"
    "$SAM_VENV/bin/python" -m pip install --quiet --disable-pip-version-check "aws-sam-cli==$SAM_CLI_VERSION"
    touch "$stamp"
}
