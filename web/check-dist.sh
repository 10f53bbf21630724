#!/usr/bin/env bash
# The server embeds web/dist in its binary so that a fresh machine runs the
# demo with `cargo run` alone, with no Node. The built bundle is therefore
# committed, and this script (run by CI) proves it is exactly what the
# committed sources and package-lock.json build:
#
#   1. npm ci            (the locked dependencies, nothing newer)
#   2. npm test          (the Vitest unit tests)
#   3. npm run build     (type check, then rebuilds web/dist)
#   4. fails if web/dist now differs from the committed one
#   5. the browser tests, when Debian's Chromium is installed (`apt-get
#      install -y chromium`; skipped, and said so, if not): against the mock
#      server, then against a real `deconflict demo` the tests start (the
#      binary is built first with `cargo build -p deconflict` unless
#      DECONFLICT_BIN names one)
#
# After changing anything under web/src: `npm run build` and commit web/dist.
set -euo pipefail
cd "$(dirname "$0")"

npm ci --no-audit --no-fund --loglevel=error
npm test --silent
npm run --silent build >/dev/null

changed="$(git status --porcelain --untracked-files=all -- dist)"
if [ -n "$changed" ]; then
  echo "web/dist differs from a fresh build of the committed sources:" >&2
  echo "$changed" >&2
  echo "fix: cd web && npm ci && npm run build, then commit web/dist" >&2
  exit 1
fi
echo "web/dist matches a fresh build ($(du -sk dist | cut -f1) KiB)"

chromium="${CHROMIUM_PATH:-/usr/bin/chromium}"
if [ -x "$chromium" ]; then
  echo "browser tests against the mock server"
  npm run --silent test:e2e
  bin="${DECONFLICT_BIN:-}"
  if [ -z "$bin" ]; then
    (cd .. && cargo build --quiet -p deconflict)
    bin="$(cd "${CARGO_TARGET_DIR:-../target}" && pwd)/debug/deconflict"
  fi
  echo "browser tests against a real deconflict demo ($bin)"
  DECONFLICT_BIN="$bin" npm run --silent test:e2e
elif [ "${DECONFLICT_REQUIRE_CLIENTS:-0}" = 1 ]; then
  echo "no Chromium at $chromium, and DECONFLICT_REQUIRE_CLIENTS=1 (CI) forbids skipping the browser tests" >&2
  exit 1
else
  echo "browser tests skipped: no Chromium at $chromium (apt-get install -y chromium)"
fi
