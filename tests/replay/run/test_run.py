#!/usr/bin/env python3
"""End-to-end tests of `parkway-replay run` against the real daemon (docs/replay.md "Running a fixture").

    test_run.py <parkway binary> <parkway-replay binary> <case>

Each case starts its own daemon (registrar + callpark + router) on free loopback ports, replays one hand-written
fixture from tests/replay/data/run/ and checks the exit code and what the runner printed. The daemon is stopped
by PID when the case ends (parkway_blackbox.Parkway).
"""
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "lib"))
from parkway_blackbox import Parkway, free_port  # noqa: E402

PARKWAY = os.path.abspath(sys.argv[1])
REPLAY = os.path.abspath(sys.argv[2])
DATA = os.path.join(HERE, "..", "data", "run")
DOMAIN = "pbx.example.com"


def daemon():
    moh = (free_port() // 2) * 2
    params = {"moh_ip": "127.0.0.1", "moh_port_min": moh, "moh_port_max": min(moh + 200, 65534)}
    return Parkway(PARKWAY, modules=["registrar", "callpark", "router"], module_params={"callpark": params},
                   proxy={"domains": [DOMAIN, "127.0.0.1"]})


def replay(pw, fixture, *extra, timeout=60):
    cmd = [REPLAY, "run", os.path.join(DATA, fixture), "--server", f"udp:{pw.sip}", "--timeout", "3", "-v", *extra]
    p = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout)
    print(f"$ {' '.join(cmd)}\n--- exit {p.returncode}\n--- stdout:\n{p.stdout}--- stderr:\n{p.stderr}")
    return p


def check(cond, what):
    if not cond:
        raise AssertionError(what)


def case_register_options():
    """REGISTER then OPTIONS: both answered 200, the run passes."""
    with daemon() as pw:
        p = replay(pw, "register_options.json")
        check(p.returncode == 0, f"exit {p.returncode}, want 0")
        check("PASS register_options (5 steps" in p.stdout, "no PASS line")
        check("ok   step 3 alice expect" in p.stdout, "-v did not list step 3")


def case_park_retrieve():
    """Park by INVITE *68103 (hold answer), retrieve by INVITE *88103: the server re-INVITEs and BYEs the parked
    phone, which answers as the fixture says; the second run uses fresh identifiers against the same daemon."""
    with daemon() as pw:
        for _ in range(2):
            p = replay(pw, "park_retrieve.json", "--speed", "2")
            check(p.returncode == 0, f"exit {p.returncode}, want 0")
            check("PASS park_retrieve (15 steps" in p.stdout, "no PASS line")
            for step in ("step 7 bob expect INVITE", "step 9 bob expect ACK", "step 14 bob expect BYE",
                         "step 15 bob send SIP/2.0 200 OK"):
                check(f"ok   {step}" in p.stdout, f"'{step}' did not pass")


def case_retrieve_differs():
    """The fixture expects 200 where the daemon answers 404 (nothing parked): exit 1, the diff names the step."""
    with daemon() as pw:
        p = replay(pw, "retrieve_differs.json")
        check(p.returncode == 1, f"exit {p.returncode}, want 1")
        check("step 3 (carol" in p.stdout, "the diff does not name step 3 and carol")
        check("expected 'SIP/2.0 200 OK'" in p.stdout and "404" in p.stdout, "the diff does not show 200 vs 404")
        check("dialog: {{call1}} = " in p.stdout, "the diff does not name the dialog")
        check("FAIL retrieve_differs" in p.stdout, "no FAIL line")


def case_bad_fixture():
    """A fixture whose step waits for a later step: exit 2, the message names the file and the step."""
    with daemon() as pw:
        p = replay(pw, "bad_after.json")
        check(p.returncode == 2, f"exit {p.returncode}, want 2")
        check("bad_after.json" in p.stderr and "step 3" in p.stderr, "the message does not name the file and step")
        p = replay(pw, "register_options.json", "--bind", "not-an-address")
        check(p.returncode == 2 and "--bind" in p.stderr, "a bad --bind is not exit 2 naming it")


if __name__ == "__main__":
    globals()["case_" + sys.argv[3]]()
    print("ok")
