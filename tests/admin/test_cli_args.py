#!/usr/bin/env python3
"""Every program the tree builds turns bad arguments into a usage message: exit 2 with what was wrong and how
to call it on stderr, never an uncaught exception (an abort) or a file created from a flag. --help prints the
usage on stdout and exits 0.

usage: test_cli_args.py NAME=PATH...   (parkway, parkctl, bench_engine, engine_embed)"""
import os
import subprocess
import sys
import tempfile

programs = dict(arg.split("=", 1) for arg in sys.argv[1:])
failures = 0

# Per program: arguments that are wrong, each a different kind (unknown flag, missing value, not a number,
# too many / unknown positional).
BAD = {
    "parkway": [["--bogus"], ["--config"], ["--check-config"], ["--config", "/nonexistent/parkway.toml"],
                ["stray"], []],
    "parkctl": [["--bogus", "parked"], ["--timeout", "abc", "parked"], ["--timeout"], ["--timeout", "-5", "health"],
                ["events", "--count", "many"], ["parked", "get"], ["frobnicate"], []],
    "bench_engine": [["--bogus"], ["abc"], ["-1"], ["1", "/nonexistent/dir"], ["1", "/tmp", "extra"]],
    "engine_embed": [["--bogus"], ["a.db", "b.db"]],
}


def check(cond, what):
    global failures
    if not cond:
        failures += 1
        print(f"FAIL: {what}")


with tempfile.TemporaryDirectory() as cwd:  # a program that took a flag for a file name would leave it here
    for name, path in programs.items():
        r = subprocess.run([path, "--help"], capture_output=True, text=True, timeout=20, cwd=cwd)
        check(r.returncode == 0, f"{name} --help: exit {r.returncode}")
        check("usage" in r.stdout.lower(), f"{name} --help: no usage on stdout: {r.stdout[:200]!r}")
        for args in BAD[name]:
            r = subprocess.run([path, *args], capture_output=True, text=True, timeout=20, cwd=cwd)
            what = f"{name} {' '.join(args)!r}"
            check(r.returncode == 2, f"{what}: exit {r.returncode}, expected 2 (stderr {r.stderr[:300]!r})")
            check("terminate called" not in r.stderr, f"{what}: uncaught exception: {r.stderr[:300]!r}")
            check("usage" in r.stderr.lower() or "--help" in r.stderr, f"{what}: no usage hint: {r.stderr[:300]!r}")
    left = os.listdir(cwd)
    check(not left, f"files created from arguments: {left}")

print(f"{'FAILED' if failures else 'OK'}: {failures} failure(s)")
sys.exit(1 if failures else 0)
