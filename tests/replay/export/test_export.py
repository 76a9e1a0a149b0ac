#!/usr/bin/env python3
"""parkway-replay export FIXTURE --sipp DIR (docs/replay.md "Exporting to SIPp"). One case per ctest test:

    test_export.py <parkway> <parkway-replay> <fixture data dir> <case>

run:     export single-dialog fixtures (a retrieve with nothing parked: 404 + ACK; a park by INVITE *68 on hold,
         hung up after 1 s: 200 + ACK + BYE), then RUN each scenario with sipp, as the README written beside it
         says, against a real daemon on free loopback ports: sipp must exit 0, and the ids must follow the dialog
         (the ACK of the 404 carries the INVITE's branch, ACK/BYE the server's To-tag and the right CSeq); and
         a BLF subscription to a park slot (SUBSCRIBE, 200, NOTIFY answered, unsubscribe, final NOTIFY answered).
routes:  a record-routed call (not run: it needs a callee) exports with rrs="true" on the 200 and ACK/BYE sent to
         [next_url] through [routes] (RFC 3261 §12.2.1.1), the server's To-tag and Contact captured by <ereg>.
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


def messages(log, first_line):
    """The messages of a SIPp -trace_msg log whose first line starts with first_line, as {header: value} + start."""
    out = []
    for block in re.split(r"\n-{10,}[^\n]*\n", log):
        lines = [l.rstrip("\r") for l in block.strip().splitlines()]
        start = next((i for i, l in enumerate(lines) if l.startswith(first_line)), None)
        if start is None:
            continue
        msg = {"start": lines[start]}
        for l in lines[start + 1:]:
            if not l:
                break
            name, _, value = l.partition(":")
            msg.setdefault(name.strip().lower(), value.strip())
        out.append(msg)
    return out


def tag(value):
    m = re.search(r";tag=([^;>\s]+)", value or "")
    return m.group(1) if m else None


def branch(value):
    m = re.search(r"branch=([^;\s]+)", value or "")
    return m.group(1) if m else None


def run_exported(fixture, scenario_name, check):
    """Export, start a daemon, run sipp as the README says, then check(log) on SIPp's message log."""
    out = tempfile.mkdtemp(prefix="replay-export-")
    try:
        r = export(fixture, out)
        assert r.returncode == 0, f"export of {fixture} failed ({r.returncode}): {r.stderr}"
        assert sorted(os.listdir(out)) == ["README.txt", scenario_name], os.listdir(out)
        scenario = os.path.join(out, scenario_name)
        with open(os.path.join(out, "README.txt")) as f:
            readme = f.read()
        moh = (free_port() // 2) * 2
        with Parkway(PARKWAY, modules=["registrar", "callpark", "router"],
                     module_params={"callpark": {"moh_ip": "127.0.0.1", "moh_port_min": moh,
                                                 "moh_port_max": min(moh + 100, 65534)}},
                     proxy={"domains": ["pbx.example.com", "127.0.0.1"]}, workdir=out) as pw:
            cmd = sipp_command(readme, pw.sip, free_port(), out) + ["-mp", str(free_port())]
            p = subprocess.run(cmd, cwd=out, capture_output=True, text=True, timeout=90)
            read = lambda name: open(os.path.join(out, name), errors="replace").read() \
                if os.path.exists(os.path.join(out, name)) else ""
            log, errors = read("messages.log"), read("errors.log")
            assert p.returncode == 0, (f"{fixture}: sipp exit {p.returncode}\ncmd: {' '.join(cmd)}\n--- errors:\n"
                                       f"{errors[-3000:]}\n--- messages:\n{log[-4000:]}\n--- scenario:\n"
                                       f"{open(scenario).read()}")
        check(log)
        print(f"ok: {fixture}: the exported scenario ran against parkway, sipp exit 0")
    finally:
        if os.environ.get("PARKWAY_KEEP_TMP") != "1":
            shutil.rmtree(out, ignore_errors=True)


def check_retrieve_nothing(log):
    """ACK of the 404: the INVITE's branch (RFC 3261 §17.1.1.3) and the 404's To-tag."""
    invite, ack, got = messages(log, "INVITE "), messages(log, "ACK "), messages(log, "SIP/2.0 404")
    assert invite and ack and got, f"INVITE/404/ACK not all in the SIPp log:\n{log[-4000:]}"
    assert branch(ack[0]["via"]) == branch(invite[0]["via"]), f"ACK branch {ack[0]['via']} != INVITE's"
    assert tag(ack[0]["to"]) == tag(got[0]["to"]), f"ACK To {ack[0]['to']} != the 404's {got[0]['to']}"


def check_park_hangup(log):
    """ACK and BYE in the dialog of the 200: its To-tag, the INVITE's CSeq for the ACK, +1 for the BYE."""
    invite, ok, ack, bye = (messages(log, x) for x in ("INVITE ", "SIP/2.0 200", "ACK ", "BYE "))
    assert invite and ok and ack and bye, f"INVITE/200/ACK/BYE not all in the SIPp log:\n{log[-4000:]}"
    n = int(invite[0]["cseq"].split()[0])
    assert ack[0]["cseq"] == f"{n} ACK" and bye[0]["cseq"] == f"{n + 1} BYE", (invite[0], ack[0], bye[0])
    assert tag(ack[0]["to"]) == tag(ok[0]["to"]) == tag(bye[0]["to"]), (ok[0], ack[0], bye[0])
    assert branch(ack[0]["via"]) != branch(invite[0]["via"]), "the ACK of a 2xx is its own transaction"


def check_blf_watch(log):
    """Both NOTIFYs answered with the server's ids copied ([last_*]); the unsubscribe in the same dialog."""
    subs, notifies, answers = messages(log, "SUBSCRIBE "), messages(log, "NOTIFY "), messages(log, "SIP/2.0 200")
    assert len(subs) == 2 and len(notifies) >= 2, f"SUBSCRIBE x2 / NOTIFY x2 not in the SIPp log:\n{log[-4000:]}"
    n = int(subs[0]["cseq"].split()[0])
    assert subs[1]["cseq"] == f"{n + 1} SUBSCRIBE", subs
    server_tag = tag(notifies[0]["from"])
    assert tag(subs[1]["to"]) == server_tag, (subs[1], notifies[0])
    notify_answers = [a for a in answers if a["cseq"].endswith("NOTIFY")]
    assert {a["cseq"] for a in notify_answers} == {x["cseq"] for x in notifies}, (notify_answers, notifies)
    assert all(branch(a["via"]) in {branch(x["via"]) for x in notifies} for a in notify_answers), notify_answers


def case_run():
    run_exported("retrieve_nothing.json", "retrieve_nothing_alice.xml", check_retrieve_nothing)
    run_exported("park_hangup.json", "park_hangup_alice.xml", check_park_hangup)
    run_exported("blf_watch.json", "blf_watch_alice.xml", check_blf_watch)


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


def case_routes():
    out = tempfile.mkdtemp(prefix="replay-export-")
    try:
        r = export("routed_call.json", out)
        assert r.returncode == 0, r.stderr
        text = open(os.path.join(out, "routed_call_alice.xml")).read()
        lines = [l.strip() for l in text.splitlines()]
        assert '<recv response="200" rrs="true">' in lines, text
        assert "ACK [next_url] SIP/2.0" in lines and "BYE [next_url] SIP/2.0" in lines, text
        assert lines.count("[routes]") == 2 and not any(l.startswith("Route:") for l in lines), text
        assert lines.count("To: <sip:1003@pbx.example.com>;tag=[$v_tag2]") == 2, text
        assert "CSeq: [cseq] ACK" in lines and "CSeq: [cseq] BYE" in lines, text
        assert '<pause milliseconds="2000"/>' in lines, text
        # A second fixture into the same folder: README.txt gets a section per scenario, a re-export replaces its own.
        for fixture in ("retrieve_nothing.json", "routed_call.json"):
            assert export(fixture, out).returncode == 0
        readme = open(os.path.join(out, "README.txt")).read()
        assert readme.count("==== routed_call_alice.xml\n") == 1 and readme.count("==== retrieve_nothing_alice.xml\n") == 1, readme
        assert readme.count(" sipp ") == 2, readme
        print("ok: record-routed dialog exported with rrs/[next_url]/[routes]; README.txt has one section per scenario")
    finally:
        shutil.rmtree(out, ignore_errors=True)


{"run": case_run, "routes": case_routes, "refuse": case_refuse}[CASE]()
