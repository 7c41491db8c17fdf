#!/usr/bin/env bash
# The independent benchmark server's Python (benches/pyserver/server.py):
# a venv under target/ with the pinned `websockets` from the package
# registry. Prints the venv's python path on stdout.
#
#   scripts/pyserver-venv.sh            create or reuse target/pyserver-venv
#   PYSERVER_VENV=/some/dir scripts/pyserver-venv.sh
#
# Idempotent and fast when present: the venv is reused while the stamp file
# holds the same requirements; otherwise it is rebuilt. Needs python3 >= 3.9
# with the venv module ($PYSERVER_PYTHON picks another interpreter).
set -euo pipefail
cd "$(dirname "$0")/.."

REQUIREMENTS=benches/pyserver/requirements.txt
VENV=${PYSERVER_VENV:-${CARGO_TARGET_DIR:-target}/pyserver-venv}
PYTHON=${PYSERVER_PYTHON:-python3}
case "$VENV" in /*) ;; *) VENV="$PWD/$VENV" ;; esac
STAMP="$VENV/.requirements"

if [ -x "$VENV/bin/python" ] && [ -f "$STAMP" ] && cmp -s "$STAMP" "$REQUIREMENTS"; then
    echo "$VENV/bin/python"
    exit 0
fi

"$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 9) else 1)' \
    || { echo "pyserver-venv: $PYTHON is older than 3.9" >&2; exit 1; }
rm -rf "$VENV"
mkdir -p "$(dirname "$VENV")"
"$PYTHON" -m venv "$VENV" >&2
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$REQUIREMENTS" >&2
# Written last: a half-made venv is never taken for a ready one.
cp "$REQUIREMENTS" "$STAMP"
echo "$VENV/bin/python"
