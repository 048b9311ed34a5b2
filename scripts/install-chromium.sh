#!/usr/bin/env bash
# Installs Debian's chromium, which the status-page test (test/http/ui.test.ts) drives with playwright-core,
# when it is missing. Root (or sudo) and Debian's apt repositories are needed; nothing is downloaded from
# anywhere else (playwright's own browser builds are not used). Safe to run concurrently and repeatedly.
set -euo pipefail

CHROMIUM=${STREAMGATE_CHROMIUM:-/usr/bin/chromium}
[ -x "$CHROMIUM" ] && exit 0

SUDO=
if [ "$(id -u)" != 0 ]; then
  command -v sudo >/dev/null || { echo "install-chromium: not root and no sudo" >&2; exit 1; }
  SUDO="sudo -n"
fi
command -v apt-get >/dev/null || { echo "install-chromium: apt-get not found (Debian/Ubuntu only)" >&2; exit 1; }

# One installer at a time (parallel test workers); apt's own lock waits as well.
exec 9>"${TMPDIR:-/tmp}/streamgate-install-chromium.lock"
flock 9
[ -x "$CHROMIUM" ] && exit 0

export DEBIAN_FRONTEND=noninteractive
APT="$SUDO apt-get -q -o DPkg::Lock::Timeout=300"
# The package lists may be missing or stale on a fresh machine: update once if the first try fails.
if ! $APT install -y --no-install-recommends chromium fonts-dejavu-core; then
  $APT update
  $APT install -y --no-install-recommends chromium fonts-dejavu-core
fi
[ -x "$CHROMIUM" ] || { echo "install-chromium: $CHROMIUM still missing after apt-get install" >&2; exit 1; }
