#!/usr/bin/env bash
# The whole test suite: build, type-check, layer check, then every vitest project (unit,
# conformance, protocol, interop with real NBD clients, daemon end-to-end with SIGKILL).
# Ends with a plain `Tests: N passed, N failed, N skipped` line.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== build"
pnpm -s build >/dev/null
echo "== typecheck"
pnpm -s typecheck
echo "== layers"
pnpm -s check:layers

report=$(mktemp /tmp/torus-vitest.XXXXXX.json)
trap 'rm -f "$report"' EXIT
echo "== tests"
rc=0
pnpm exec vitest run --reporter=default --reporter=json --outputFile="$report" "$@" || rc=$?
if [ -s "$report" ]; then
  node -e '
    const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
    console.log(`Tests: ${r.numPassedTests} passed, ${r.numFailedTests} failed, ${r.numPendingTests + r.numTodoTests} skipped`);
    if (r.numTotalTests === 0) { console.error("no tests ran"); process.exit(1) }
  ' "$report" || rc=1
else
  echo "Tests: 0 passed, 1 failed (vitest wrote no report)"
  rc=1
fi
exit "$rc"
