#!/usr/bin/env python3
"""parkway-replay export FIXTURE --sipp DIR (docs/replay.md "Exporting to SIPp"). One case per ctest test:

    test_export.py <parkway> <parkway-replay> <fixture data dir> <case>

run:     export a single-dialog fixture (retrieve with nothing parked), then RUN the scenario with sipp, as the
         README written beside it says, against a real daemon on free loopback ports: sipp must exit 0, and the
         ACK of the 404 must carry the INVITE's branch and the server's To-tag.
refuse:  fixtures SIPp cannot express (three participants; a REFER that starts a second dialog) exit 1 with the
         reason on stderr and write nothing.
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "lib"))
from parkway_blackbox import Parkway, free_port  # noqa: E402

PARKWAY, REPLAY, DATA, CASE = sys.argv[1:5]


def export(fixture, out):
    return subprocess.run([REPLAY, "export", os.path.join(DATA, fixture), "--sipp", out], capture_output=True,
                          text=True, timeout=30)


def sipp_command(readme, server, port, logdir):
    line = next(l for l in readme.splitlines() if l.strip().startswith("sipp "))
    cmd = line.split()
    cmd = [server if a == "SERVER" else "127.0.0.1" if a == "LOCAL_IP" else str(port) if a == "LOCAL_PORT" else a
           for a in cmd]
    return cmd + ["-trace_msg", "-message_file", os.path.join(logdir, "messages.log"),
                  "-error_file", os.path.join(logdir, "errors.log")]


def case_run():
    out = tempfile.mkdtemp(prefix="replay-export-")
    try:
        r = export("retrieve_nothing.json", out)
        assert r.returncode == 0, f"export failed ({r.returncode}): {r.stderr}"
        scenario = os.path.join(out, "retrieve_nothing_alice.xml")
        assert sorted(os.listdir(out)) == ["README.txt", "retrieve_nothing_alice.xml"], os.listdir(out)
        with open(os.path.join(out, "README.txt")) as f:
            readme = f.read()
        moh = (free_port() // 2) * 2
        with Parkway(PARKWAY, modules=["registrar", "callpark", "router"],
                     module_params={"callpark": {"moh_ip": "127.0.0.1", "moh_port_min": moh,
                                                 "moh_port_max": min(moh + 100, 65534)}},
                     proxy={"domains": ["pbx.example.com", "127.0.0.1"]}, workdir=out) as pw:
            cmd = sipp_command(readme, pw.sip, free_port(), out)
            p = subprocess.run(cmd, cwd=out, capture_output=True, text=True, timeout=90)
            log = open(os.path.join(out, "messages.log"), errors="replace").read() \
                if os.path.exists(os.path.join(out, "messages.log")) else ""
            errors = open(os.path.join(out, "errors.log"), errors="replace").read() \
                if os.path.exists(os.path.join(out, "errors.log")) else ""
            assert p.returncode == 0, (f"sipp exit {p.returncode}\ncmd: {' '.join(cmd)}\n--- errors:\n{errors[-3000:]}"
                                       f"\n--- messages:\n{log[-4000:]}\n--- scenario:\n{open(scenario).read()}")
        invite = re.search(r"^INVITE .*?^Via: [^\n]*branch=([^;\s]+)", log, re.S | re.M)
        ack = re.search(r"^ACK .*?^Via: [^\n]*branch=([^;\s]+).*?^To: [^\n]*tag=([^;\s>]+)", log, re.S | re.M)
        got404 = re.search(r"^SIP/2.0 404 .*?^To: [^\n]*tag=([^;\s>]+)", log, re.S | re.M)
        assert invite and ack and got404, f"INVITE/404/ACK not all in the SIPp log:\n{log[-4000:]}"
        assert ack.group(1) == invite.group(1), f"ACK branch {ack.group(1)} != INVITE branch {invite.group(1)}"
        assert ack.group(2) == got404.group(1), f"ACK To-tag {ack.group(2)} != the 404's {got404.group(1)}"
        print("ok: exported scenario ran against parkway, sipp exit 0; ACK branch/tag follow the INVITE and the 404")
    finally:
        if os.environ.get("PARKWAY_KEEP_TMP") != "1":
            shutil.rmtree(out, ignore_errors=True)


def case_refuse():
    expected = {
        "park_three.json": ["cannot export: 3 participants act together (alice, bob, carol); "
                            "SIPp runs one UA per scenario"],
        "refer_callback.json": ["cannot export: step 1: the REFER makes the server start another dialog "
                                "(step 2: INVITE on Call-ID {{call2}}); a SIPp scenario follows one Call-ID",
                                "cannot export: step 2: the server sends INVITE on another dialog ({{call2}}) "
                                "than the scenario's ({{call1}}); SIPp cannot receive it"],
    }
    for fixture, reasons in expected.items():
        base = tempfile.mkdtemp(prefix="replay-export-")
        out = os.path.join(base, "sipp")
        try:
            r = export(fixture, out)
            assert r.returncode == 1, f"{fixture}: exit {r.returncode}, want 1\n{r.stderr}"
            for reason in reasons:
                assert reason + "\n" in r.stderr, f"{fixture}: stderr lacks {reason!r}:\n{r.stderr}"
            assert not os.path.exists(out) or not os.listdir(out), f"{fixture}: files written: {os.listdir(out)}"
        finally:
            shutil.rmtree(base, ignore_errors=True)
    r = export("no-such-fixture.json", tempfile.gettempdir())
    assert r.returncode == 2 and "no-such-fixture.json" in r.stderr, f"missing fixture: exit {r.returncode} {r.stderr}"
    print("ok: multi-party and multi-dialog fixtures refused with the reason, nothing written")


{"run": case_run, "refuse": case_refuse}[CASE]()
