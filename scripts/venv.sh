#!/usr/bin/env bash
# Creates (or updates) the virtualenv with every service and the development tooling (dev/)
# installed editable, pinned by constraints.txt. pip's wheel cache lives outside the clone, so a
# fresh clone reuses it.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${1:-.venv}
python=${PYTHON:-python3.11}
command -v "$python" >/dev/null || python=python3
[ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --upgrade pip
editable=()
for dir in services/*/ dev/; do editable+=(-e "$dir"); done
"$venv/bin/python" -m pip install --progress-bar off -c constraints.txt \
  -r requirements-dev.txt "${editable[@]}"
