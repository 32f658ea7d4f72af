#!/usr/bin/env bash
# Set up from a fresh clone and run OSTree's own shell tests (Debian package ostree-tests) against
# larch: prints one TAP line per test and "K/65 upstream tests pass". Needs the packages
# `ostree-tests` (the suite and its HTTP server), `gnupg`, `attr` and `parallel`.
set -euo pipefail
cd "$(dirname "$0")/../.."
if [ "$(pnpm --version 2>/dev/null || true)" != "12.4.2" ]; then
  npm i -g pnpm@12.4.2 >/dev/null
fi
log=$(mktemp)
trap 'rm -f "$log"' EXIT
pnpm install --frozen-lockfile >"$log" 2>&1 || { cat "$log"; exit 1; }
pnpm build >"$log" 2>&1 || { cat "$log"; exit 1; }
node tooling/conformance/run.mjs "$@"
