#!/usr/bin/env python3
"""The SHA-256 of the operator console's sources (ui/index.html, ui/src/*, ui/vite.config.js, ui/package.json,
ui/package-lock.json), as ui/build.sh stamps it into ui/dist/.source-hash.

    source_hash.py UI_DIR            print the hash
    source_hash.py UI_DIR --check    exit 1 when ui/dist/.source-hash differs (sources edited, dist not rebuilt)
"""
import hashlib
import os
import sys

ui = sys.argv[1]
files = ["index.html", "vite.config.js", "package.json", "package-lock.json"]
for root, _, names in os.walk(os.path.join(ui, "src")):
    files += [os.path.relpath(os.path.join(root, n), ui) for n in names]
h = hashlib.sha256()
for rel in sorted(files):
    with open(os.path.join(ui, rel), "rb") as f:
        data = f.read()
    h.update(rel.encode() + b"\0" + str(len(data)).encode() + b"\0" + data)
digest = h.hexdigest()
if "--check" not in sys.argv:
    print(digest)
    sys.exit(0)
stamp_path = os.path.join(ui, "dist", ".source-hash")
stamp = open(stamp_path).read().strip() if os.path.exists(stamp_path) else "(missing)"
if stamp != digest:
    print(f"ui/dist is stale: the sources hash to {digest}, ui/dist/.source-hash says {stamp}.\n"
          "Run ui/build.sh and commit ui/dist with the sources (docs/console.md).")
    sys.exit(1)
print(f"ui/dist matches its sources ({digest[:12]})")
