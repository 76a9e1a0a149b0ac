#!/usr/bin/env bash
# Rebuilds the operator console's committed build output ui/dist from ui/src (docs/console.md). Needs node + npm
# and the npm registry (or its cache). The C++ build and the .deb use ui/dist as committed and need neither.
# Writes dist/.source-hash: the SHA-256 of the sources, which the ctest test console.dist_matches_sources checks.
set -euo pipefail
cd "$(dirname "$0")"
npm ci --no-audit --no-fund
npx vite build
python3 ../tests/console/source_hash.py . > dist/.source-hash
echo "ui/dist rebuilt; commit it together with the sources"
