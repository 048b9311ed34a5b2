#!/usr/bin/env bash
# Runs schemathesis (from PyPI) against a running gateway: `scripts/schemathesis.sh run <openapi url> …`.
# The first call creates a virtualenv under .backends/schemathesis (git-ignored) with exactly these versions
# (schemathesis and everything it pulls in, from `pip freeze`); later calls reuse it. Needs python3 with venv.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
VENV="$ROOT/.backends/schemathesis"
REQUIREMENTS='anyio==4.16.0
certifi==2026.10.18
charset-normalizer==3.5.2
click==8.5.1
graphql-core==3.3.2
harfile==0.6.0
hypothesis==6.170.15
hypothesis-graphql==0.13.5
idna==3.20
iniconfig==2.3.1
jsonschema_rs==0.60.3
markdown-it-py==4.3.0
MarkupSafe==3.0.4
mdurl==0.1.2
packaging==26.3
pluggy==1.7.0
Pygments==2.21.0
pyrate-limiter==4.5.1
pytest==9.2.0
PyYAML==6.0.3
requests==2.34.2
rich==15.0.0
schemathesis==4.32.5
sortedcontainers==2.4.0
typing_extensions==4.16.0
urllib3==2.8.0
Werkzeug==3.1.9'
STAMP=$(printf '%s' "$REQUIREMENTS" | sha256sum | cut -c1-16)

if [ "$(cat "$VENV/.installed" 2>/dev/null)" != "$STAMP" ]; then
  mkdir -p "$ROOT/.backends"
  # One installer at a time (parallel test runs); the second finds the stamp and skips.
  exec 9>"$ROOT/.backends/schemathesis.lock"
  flock 9
  if [ "$(cat "$VENV/.installed" 2>/dev/null)" != "$STAMP" ]; then
    rm -rf "$VENV"
    python3 -m venv "$VENV"
    printf '%s\n' "$REQUIREMENTS" > "$VENV/requirements.txt"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check --no-deps -r "$VENV/requirements.txt"
    "$VENV/bin/st" --version >/dev/null
    echo "$STAMP" > "$VENV/.installed"
  fi
  exec 9>&-
fi
# Keep schemathesis' own files (hypothesis database, reports) out of the work tree.
cd "$VENV"
exec "$VENV/bin/st" "$@"
