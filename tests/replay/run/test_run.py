#!/usr/bin/env python3
"""End-to-end tests of `parkway-replay run` against the real daemon (docs/replay.md "Running a fixture").

    test_run.py <parkway binary> <parkway-replay binary> <case>

Each case starts its own daemon (registrar + callpark + router) on free loopback ports, replays one hand-written
fixture from tests/replay/data/run/ and checks the exit code and what the runner printed. The daemon is stopped
by PID when the case ends (parkway_blackbox.Parkway).
"""
import os
import re
import subprocess
import sys
import tempfile
import json

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "lib"))
from parkway_blackbox import Parkway, free_port  # noqa: E402

PARKWAY = os.path.abspath(sys.argv[1])
REPLAY = os.path.abspath(sys.argv[2])
DATA = os.path.join(HERE, "..", "data", "run")
DOMAIN = "pbx.example.com"


def daemon(users=None):
    """users: {name: password} of pbx.example.com, which then wants digest (docs/auth.md); else no auth."""
    moh = (free_port() // 2) * 2
    params = {"moh_ip": "127.0.0.1", "moh_port_min": moh, "moh_port_max": min(moh + 200, 65534)}
    auth = None
    workdir = tempfile.mkdtemp(prefix="parkway-replay-run-")
    if users:
        path = os.path.join(workdir, "users.toml")
        with open(path, "w") as f:
            for name, password in users.items():
                f.write(f'[[user]]\ndomain = "{DOMAIN}"\nname = "{name}"\npassword = "{password}"\n\n')
        auth = {"unauthenticated_domains": ["127.0.0.1"], "users_file": path}
    pw = Parkway(PARKWAY, modules=["registrar", "callpark", "router"], module_params={"callpark": params},
                 proxy={"domains": [DOMAIN, "127.0.0.1"]}, auth=auth, workdir=workdir)
    pw._own_dir = True  # remove the folder (and users.toml) at close
    return pw


def replay(pw, fixture, *extra, timeout=60):
    # os.path.join keeps an absolute fixture path as it is
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
    phone, which answers as the fixture says. Run twice against the same daemon (fresh identifiers each time):
    at --speed 4 the fixture's two 1 s waits take a quarter, at --speed 1 the full time."""
    with daemon() as pw:
        for speed, fast in (("4", True), ("1", False)):
            p = replay(pw, "park_retrieve.json", "--speed", speed)
            check(p.returncode == 0, f"exit {p.returncode}, want 0")
            m = re.search(r"PASS park_retrieve \(15 steps, ([0-9.]+) s\)", p.stdout)
            check(m, "no PASS line")
            took = float(m.group(1))
            check(took < 1.8 if fast else took >= 2.0, f"--speed {speed} took {took} s")
            for step in ("step 7 bob expect INVITE", "step 9 bob expect ACK", "step 14 bob expect BYE",
                         "step 15 bob send 200 OK"):
                check(f"ok   {step}" in p.stdout, f"'{step}' did not pass")


def case_blf_watch():
    """A BLF subscription (RFC 4235, RFC 6665): the 200 and the first NOTIFY are unordered steps; the phone answers
    both NOTIFYs as the fixture says; the unsubscribe's final NOTIFY says terminated."""
    with daemon() as pw:
        p = replay(pw, "blf_watch.json")
        check(p.returncode == 0, f"exit {p.returncode}, want 0")
        for step in ("step 4 dave expect NOTIFY", "step 5 dave send 200 OK", "step 8 dave expect NOTIFY",
                     "step 9 dave send 200 OK"):
            check(f"ok   {step}" in p.stdout, f"'{step}' did not pass")


def case_call_cancel():
    """A call through the server to a registered phone, CANCELled while ringing: the CANCEL follows the INVITE's
    transaction, the ringing phone's 200 to the CANCEL and 487 are sent, and the ACK of the 487 is nta's."""
    with daemon() as pw:
        p = replay(pw, "call_cancel.json")
        check(p.returncode == 0, f"exit {p.returncode}, want 0")
        check("ok   step 10 alice expect CANCEL" in p.stdout, "the CANCEL did not reach alice")
        check("ok   step 13 bob expect 487" in p.stdout, "bob did not get the 487")
        check("(nta acknowledged the 487)" in p.stdout, "the fixture's ACK of a 487 was not left to nta")


def case_retrieve_differs():
    """The fixture expects 200 where the daemon answers 404 (nothing parked): exit 1, the diff names the step."""
    with daemon() as pw:
        p = replay(pw, "retrieve_differs.json")
        check(p.returncode == 1, f"exit {p.returncode}, want 1")
        check("step 3 carol:" in p.stdout, "the diff does not name step 3 and carol")
        check("expected 'SIP/2.0 200 OK'" in p.stdout and "404" in p.stdout, "the diff does not show 200 vs 404")
        check("dialog: {{call1}} = " in p.stdout, "the diff does not name the dialog")
        check("FAIL retrieve_differs" in p.stdout, "no FAIL line")


def case_digest():
    """A domain with digest: the fixture's challenge is answered from the participant's password (Authorization
    recomputed); a fixture recorded without authentication passes when --password lets the runner answer the
    challenge itself, and fails (401 where 200 was expected) without it."""
    with daemon({"1001": "secret-1001"}) as pw:
        p = replay(pw, "register_challenge.json")
        check(p.returncode == 0, f"exit {p.returncode}, want 0")
        check("ok   step 4 alice expect 200 OK" in p.stdout, "the REGISTER with credentials failed")
        p = replay(pw, "register_options.json", "--password", "1001=secret-1001")
        check(p.returncode == 0 and "sent again with credentials" in p.stdout, "no automatic answer to the challenge")
        p = replay(pw, "register_options.json")
        check(p.returncode == 1 and "401" in p.stdout, "without a password the 401 must fail the run")
        p = replay(pw, "register_options.json", "--password", "1001=wrong")
        check(p.returncode == 1, "a wrong password must fail the run")


def case_tcp():
    """The same REGISTER + OPTIONS with the phone on TCP (the participant's transport in the fixture)."""
    with open(os.path.join(DATA, "register_options.json")) as f:
        fx = json.load(f)
    fx["participants"][0]["transport"] = "tcp"
    for s in fx["steps"]:
        s["message"] = [line.replace("SIP/2.0/UDP", "SIP/2.0/TCP") for line in s["message"]]
    with daemon() as pw:
        path = os.path.join(pw.dir, "register_tcp.json")
        with open(path, "w") as f:
            json.dump(fx, f)
        p = replay(pw, path)
        check(p.returncode == 0, f"exit {p.returncode}, want 0")


def case_unexpected():
    """park_retrieve without the parked phone's re-INVITE steps (7-9): the server's re-INVITE is a request nobody
    expects. The runner answers it as a phone would (480), lists it as unexpected, and the retrieve that needed it
    fails: exit 1."""
    with open(os.path.join(DATA, "park_retrieve.json")) as f:
        fx = json.load(f)
    fx["name"] = "park_unexpected"
    fx["steps"] = [s for s in fx["steps"] if s["step"] not in (7, 8, 9)]
    for s in fx["steps"]:
        if s["step"] == 10:
            s["after"] = [5]
        if s["step"] == 11:
            s["after"] = [10]
    with daemon() as pw:
        path = os.path.join(pw.dir, "park_unexpected.json")
        with open(path, "w") as f:
            json.dump(fx, f)
        p = replay(pw, path)
        check(p.returncode == 1, f"exit {p.returncode}, want 1")
        check("unexpected: bob got INVITE sip:2001@" in p.stdout, "the re-INVITE is not listed as unexpected")
        check("step 10 carol:" in p.stdout, "the retrieve's 200 (step 10) is not reported")


def case_no_server():
    """Nobody listens at --server: the expect step fails with "nothing came" within its bound, the undelivered
    REGISTER is named, exit 1."""

    class Nobody:
        sip = f"127.0.0.1:{free_port()}"

    p = replay(Nobody(), "register_options.json", timeout=20)
    check(p.returncode == 1, f"exit {p.returncode}, want 1")
    check("step 3 alice expect 200 OK (registered): nothing came within" in p.stdout, "no 'nothing came' for step 3")
    check("no answer: alice: REGISTER" in p.stdout, "the undelivered REGISTER is not named")


def case_bad_fixture():
    """A fixture whose step waits for a later step: exit 2, the message names the file and the step."""
    with daemon() as pw:
        p = replay(pw, "bad_after.json")
        check(p.returncode == 2, f"exit {p.returncode}, want 2")
        check("bad_after.json" in p.stderr and "step 3" in p.stderr, "the message does not name the file and step")
        p = replay(pw, "register_options.json", "--bind", "not-an-address")
        check(p.returncode == 2 and "--bind" in p.stderr, "a bad --bind is not exit 2 naming it")
        with open(os.path.join(DATA, "register_options.json")) as f:
            fx = json.load(f)
        fx["steps"][0]["send"] = "server"
        path = os.path.join(pw.dir, "server_sends.json")
        with open(path, "w") as f:
            json.dump(fx, f)
        p = replay(pw, path)
        check(p.returncode == 2 and "step 1: 'server'" in p.stderr, "a step of 'server' is not exit 2 naming it")


if __name__ == "__main__":
    globals()["case_" + sys.argv[3]]()
    print("ok")
