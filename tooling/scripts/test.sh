#!/usr/bin/env bash
# Set up from a fresh clone (only Node 20 and npm needed) and run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/../.."
if [ "$(pnpm --version 2>/dev/null || true)" != "12.4.2" ]; then
  npm i -g pnpm@12.4.2 >/dev/null
fi
pnpm install --frozen-lockfile
pnpm test
