#!/usr/bin/env python3
"""Browser test of the operator console (docs/console.md) against the real daemon, SIPp and Debian's Chromium:

    test_console.py <parkway binary> <work dir under the build folder>

This script starts the daemon (registrar + callpark + router, loopback ports), a registered SIPp phone for the
parker, and `node console.mjs`, which drives Chromium with playwright-core (npm, no browser download). The two
talk over the driver's stdin/stdout, one JSON object a line: the driver asks for SIP things to happen
({"need": "park", ...}) and this script answers once they did ({"ok": true, ...}). Every process started here is
stopped here. Screenshots land in <work dir>/screenshots.

Exit 77 (ctest: skipped) when chromium, node or npm is missing.
"""
import json
import os
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "sipp-park"))
import test_park  # noqa: E402  (its Suite: daemon + SIPp roles; argv[1] is the parkway binary there too)
from test_park import Suite, final  # noqa: E402

WORK = os.path.abspath(sys.argv[2])
CHROMIUM = os.environ.get("PARKWAY_CHROMIUM", "/usr/bin/chromium")
DOMAIN = test_park.DOMAIN

# recall_time is long: the recall in this test is the one the operator forces from the page.
PROVISION = """
[[domain]]
name = "@DOMAIN@"
recall_time = 600
ring_time = 20
recall_mode = "parker"

[[domain.group]]
name = "sales"
members = ["1001", "1002", "1003", "1004"]

[[domain.lot]]
name = "main"
first = 701
last = 712
choice = "first"
"""


def npm_ci():
    """playwright-core into WORK/node_modules from the committed lock file; skipped when that lock is installed."""
    os.makedirs(WORK, exist_ok=True)
    lock = os.path.join(HERE, "package-lock.json")
    stamp = os.path.join(WORK, "node_modules", ".parkway-lock")
    want = open(lock, "rb").read()
    if os.path.exists(stamp) and open(stamp, "rb").read() == want:
        return 0.0
    t0 = time.monotonic()
    for name in ("package.json", "package-lock.json"):
        shutil.copyfile(os.path.join(HERE, name), os.path.join(WORK, name))
    subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--prefer-offline", "--loglevel=error"], cwd=WORK,
                   check=True, timeout=240)
    with open(stamp, "wb") as f:
        f.write(want)
    return time.monotonic() - t0


def main():
    missing = [p for p in ("node", "npm") if not shutil.which(p)] + ([] if os.path.exists(CHROMIUM) else [CHROMIUM])
    if missing:
        print(f"skipped: {', '.join(missing)} not installed (scripts/setup.sh installs them)")
        sys.exit(77)
    t_start = time.monotonic()
    npm_seconds = npm_ci()
    shots = os.path.join(WORK, "screenshots")
    os.makedirs(shots, exist_ok=True)
    with Suite(provision=PROVISION, admin=True) as s:
        pw = s.pw
        url = f"http://127.0.0.1:{pw.admin_port}"
        phone = s.phone("1003", answer=0, timeout=120)  # the parker: rings when the call is recalled
        env = dict(os.environ, CONSOLE_URL=url, CONSOLE_TOKEN=pw.admin_token, CONSOLE_DOMAIN=DOMAIN,
                   CONSOLE_CHROMIUM=CHROMIUM, CONSOLE_SHOTS=shots,
                   CONSOLE_NODE_MODULES=os.path.join(WORK, "node_modules"))
        driver = subprocess.Popen(["node", os.path.join(HERE, "console.mjs")], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, bufsize=1)
        parked = []
        try:
            for line in driver.stdout:
                line = line.rstrip("\n")
                if not line.startswith("{"):
                    print(f"driver: {line}")
                    continue
                msg = json.loads(line)
                if "need" not in msg:
                    print(f"driver: {line}")
                    continue
                need = msg["need"]
                reply = {"ok": True}
                if need == "park":
                    # A call transferred to msg["dial"] by 1003 (Referred-By names the parker).
                    p = s.park(msg.get("user", "2001"), msg["dial"], parker="1003", display=msg.get("display"))
                    s.expect(final(p) == 200, f"park to {msg['dial']} answered {final(p)}", p)
                    parked.append(p)
                elif need == "rang":
                    s.expect(phone.wait_line("invite ", 8), "the parker's phone did not ring after Recall now", phone)
                    reply["from"] = phone.value("invite ", "from")
                elif need == "log":
                    reply["log"] = pw.log()[-4000:]
                else:
                    s.fail(f"the driver asked for {need!r}")
                driver.stdin.write(json.dumps(reply) + "\n")
                driver.stdin.flush()
            rc = driver.wait(timeout=30)
        finally:
            if driver.poll() is None:
                driver.kill()
                driver.wait()
        if rc != 0:
            s.fail(f"console driver failed (exit {rc})", phone, *parked)
    print(f"console browser test: OK in {time.monotonic() - t_start:.1f} s (npm ci {npm_seconds:.1f} s); "
          f"screenshots in {shots}")


if __name__ == "__main__":
    main()
