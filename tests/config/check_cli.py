#!/usr/bin/env python3
"""Black-box checks of the parkway command line: --check-config on every bad file (non-zero exit, message with
file, key and line), --check-config on the example (exit 0, "config OK"), --dump-config (valid TOML that
documents core keys and module parameters), --version."""
import glob
import os
import subprocess
import sys
import tomllib

parkway, bad_dir, example = sys.argv[1:4]
failures = 0


def check(cond, what):
    global failures
    if not cond:
        failures += 1
        print(f"FAIL: {what}")


def run(*args):
    return subprocess.run([parkway, *args], capture_output=True, text=True, timeout=20)


for path in sorted(glob.glob(os.path.join(bad_dir, "*.toml"))):
    with open(path) as f:
        expect = f.readline().removeprefix("# expect: ").strip()
    r = run("--check-config", path)
    check(r.returncode == 2, f"{path}: exit {r.returncode}, expected 2")
    check(r.stderr.startswith(f"config error: {path}"), f"{path}: message does not start with the file: {r.stderr!r}")
    at = 0
    for piece in expect.split(" * "):
        found = r.stderr.find(piece, at)
        check(found >= 0, f"{path}: {piece!r} not in {r.stderr!r}")
        at = max(at, found)

r = run("--check-config", example)
check(r.returncode == 0 and "config OK" in r.stdout, f"example config: {r.returncode} {r.stdout!r} {r.stderr!r}")

r = run("--dump-config")
check(r.returncode == 0, "--dump-config exit code")
try:
    doc = tomllib.loads(r.stdout)
    check(doc["proxy"]["t1_ms"] == 500, "dump: proxy.t1_ms default")
    check(doc["proxy"]["listen"] == ["udp:127.0.0.1:5060", "tcp:127.0.0.1:5060"], "dump: proxy.listen default")
    check(doc["module"]["registrar"]["min_expires"] == 60, "dump: registrar min_expires")
    check("routes" in doc["module"]["router"], "dump: router routes")
    check("# min_expires (int):" in r.stdout, "dump: help text for module parameters")
except (tomllib.TOMLDecodeError, KeyError) as e:
    check(False, f"--dump-config is not a usable TOML config: {e}")
# The dump itself passes --check-config (every module table it leaves active belongs to a loaded module).
import tempfile
with tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False) as f:
    f.write(r.stdout)
    dumped = f.name
r2 = run("--check-config", dumped)
check(r2.returncode == 0 and "config OK" in r2.stdout, f"--check-config on the dump: {r2.stdout!r} {r2.stderr!r}")
os.remove(dumped)

r = run("--version")
check(r.returncode == 0 and r.stdout.startswith("parkway "), f"--version: {r.stdout!r}")

print(f"{'FAILED' if failures else 'OK'}: {failures} failure(s)")
sys.exit(1 if failures else 0)
