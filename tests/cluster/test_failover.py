#!/usr/bin/env python3
"""Ownership and failover, black box (issue 14, docs/cluster.md "Ownership and failover"):

    test_failover.py <parkway binary>

PostgreSQL (tests/engine/pg_fixture.sh) and three `parkway` nodes "a", "b", "c" on one park database. Parked
parties (raw UDP phones that stay up and answer every re-INVITE) park calls on node a; one more call is retrieved
through node b while a is alive (b forwards the retrieve to a, the owner). Then a is killed with SIGKILL and c,
holding one parked call, is frozen (SIGSTOP): b must take the calls of both over within a few seconds (its log
says "takeover complete"; the time from the kill is printed), re-INVITE every parked party (music from b's media
address, b's Contact), and every call must stay retrievable through b. A BLF subscription held by a is resumed by
b (a NOTIFY with the next version in the same dialog). c's call is left to recall: its parked-on extension is a
SIPp phone (parker_ring.xml) registered at b and c; the recall, due after the takeover, rings it from b, then c
wakes up (SIGCONT) with its heartbeat and its recall timer overdue: whichever fires first (its lapsed lease, or
the engine's fence on the recall step), c drops the call without ringing, and the phone has rung exactly once
(SIPp's IncomingCall counter). The fence alone is tested in tests/engine/test_ownership.cc.

Bounded: about 25 s. Every process started here is stopped (by PID): the daemons, SIPp and the PostgreSQL server.
"""
import os
import random
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
sys.path.insert(0, os.path.join(HERE, "..", "sipp-park"))
from parkway_blackbox import Parkway, Sipp, free_port, wait_until  # noqa: E402
from test_durability import DOMAIN, Phones  # noqa: E402  (raw UDP phones: park, retrieve, answer re-INVITEs)

BINARY = os.path.abspath(sys.argv[1]) if len(sys.argv) > 1 else "parkway"
PG_FIXTURE = os.path.join(REPO, "tests", "engine", "pg_fixture.sh")
RECALL_S = 14         # recall_time: due after the takeover (lease 5 s + heartbeat 1 s after the kill at ~2 s)
PARKED = [7001, 7002, 7003, 7004]  # taken over by b: 7001 parked on c (left to recall), the others on a
RECALL_EXT = 7001
FORWARDED = 7009      # retrieved through b while a is alive


def node(name, workdir, url):
    moh = 20000 + (free_port() % 2000) * 10  # a range of its own per node, below the ephemeral ports
    params = {"database": url, "node": name, "recall_time": f"{RECALL_S}s", "moh_ip": "127.0.0.1",
              "moh_port_min": moh, "moh_port_max": moh + 9, "moh_streams_per_port": 16, "park_info": False}
    return Parkway(BINARY, modules=["registrar", "callpark", "router"], admin=True, workdir=workdir,
                   proxy={"domains": [DOMAIN, "127.0.0.1"], "trusted_peers": ["127.0.0.1"]}, log_level="info",
                   start=False, module_params={"callpark": params})


class Failure(Exception):
    pass


def register(pw, user, contact_port):
    """REGISTER sip:<user>@DOMAIN at one node's registrar, sent FROM contact_port (the registrar sends to the address
    a contact registered from): start the phone on that port afterwards."""
    tag = random.getrandbits(32)
    msg = (f"REGISTER sip:{DOMAIN} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{contact_port};branch=z9hG4bKreg{tag};rport\r\n"
           f"Max-Forwards: 70\r\nFrom: <sip:{user}@{DOMAIN}>;tag=r{tag}\r\nTo: <sip:{user}@{DOMAIN}>\r\n"
           f"Call-ID: reg-{tag}@test\r\nCSeq: 1 REGISTER\r\nContact: <sip:{user}@127.0.0.1:{contact_port}>\r\n"
           f"Expires: 600\r\nContent-Length: 0\r\n\r\n")
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.bind(("127.0.0.1", contact_port))
        sock.settimeout(3)
        sock.sendto(msg.encode(), ("127.0.0.1", pw.port))
        end = time.monotonic() + 3
        while time.monotonic() < end:
            reply = sock.recv(65535).decode(errors="replace")
            status = int(reply.split()[1]) if reply.startswith("SIP/2.0 ") else 0
            if status >= 200:
                if status != 200:
                    raise Failure(f"REGISTER of {user} at {pw.sip} answered {status}")
                return
        raise Failure(f"no answer to the REGISTER of {user} at {pw.sip}")
    finally:
        sock.close()


def bad_node_name(work):
    """A node name that is not one is refused at start with a message naming the key."""
    os.makedirs(os.path.join(work, "bad"))
    pw = node("bad name!", os.path.join(work, "bad"), "unused.db")
    try:
        pw.start()
    except RuntimeError as e:
        if "callpark: node 'bad name!' must be 1..64 letters" not in str(e):
            raise Failure(f"a bad node name failed to start without naming the key: {e}")
        print("bad node name: refused at start, naming the key")
        return
    finally:
        pw.close()
    raise Failure("parkway started with node = 'bad name!'")


def main():
    work = tempfile.mkdtemp(prefix="parkway-failover-")
    state = os.path.join(work, "pg.url")
    subprocess.run([PG_FIXTURE, "start", state], check=True)
    a = b = c = parker = None
    parked = Phones()      # the parked parties: send their park INVITEs to a
    retrievers = Phones()  # the retrievers: dial b
    try:
        bad_node_name(work)
        url = open(state).read().strip()
        os.makedirs(os.path.join(work, "a"))
        os.makedirs(os.path.join(work, "b"))
        os.makedirs(os.path.join(work, "c"))
        a = node("a", os.path.join(work, "a"), url).start()
        b = node("b", os.path.join(work, "b"), url).start()
        c = node("c", os.path.join(work, "c"), url).start()
        retrievers.target = ("127.0.0.1", b.port)

        # The recalled phone, registered as the parked-on extension at b and c (each node has its own registrar):
        # whichever of them recalls, it rings this phone.
        parker_port = free_port()
        for pw in (b, c):
            register(pw, RECALL_EXT, parker_port)
        parker = Sipp(os.path.join(HERE, "parker_ring.xml"), port=parker_port, calls=10, timeout=60).start()

        calls = {}
        for ext in PARKED + [FORWARDED]:  # 7001 on c first (its 200 is ACKed to c), then the rest on a
            parked.target = ("127.0.0.1", (c if ext == RECALL_EXT else a).port)
            cid = f"fo-{ext}-{random.getrandbits(32)}@test"
            calls[ext] = cid
            parked.invite(cid, f"p{ext}", f"*68{ext}")
            if not wait_until(lambda: parked.final(cid) is not None, 5):
                raise Failure(f"no answer to the park of {ext}")
        bad = {e: parked.final(x) for e, x in calls.items() if parked.final(x) != 200}
        if bad:
            raise Failure(f"parks not answered 200: {bad}")

        # A retrieve dialled at b of a call a owns (a alive): b forwards it to a, a retrieves it.
        rcid = f"rt-{FORWARDED}-{random.getrandbits(32)}@test"
        before = parked.reinvited(calls[FORWARDED])
        retrievers.invite(rcid, "r9", f"*88{FORWARDED}")
        if not wait_until(lambda: retrievers.final(rcid) is not None, 10):
            raise Failure("no answer to the retrieve dialled at b of a call owned by a")
        if retrievers.final(rcid) != 200 or parked.reinvited(calls[FORWARDED]) <= before:
            raise Failure(f"retrieve at b of a's call answered {retrievers.final(rcid)} "
                          f"(re-INVITEs of its park dialog: {parked.reinvited(calls[FORWARDED])})")
        if "forwarded to" not in b.log():
            raise Failure("b did not say it forwarded the retrieve to the owner")
        print(f"retrieve of a's call dialled at b: forwarded to a, 200")

        # A BLF subscription held by a (dialog event package, RFC 4235) to one of the parked-on extensions.
        sub = f"blf-{random.getrandbits(32)}@test"
        parked.subscribe(sub, "w1", "*887002")
        if not wait_until(lambda: len(parked.versions(sub)) >= 1, 5):
            raise Failure("the BLF subscription at a got no NOTIFY")
        time.sleep(0.5)  # a stores the subscription's version in a batch after the NOTIFY

        reinvites_before = {e: parked.reinvited(calls[e]) for e in PARKED}
        killed = time.monotonic()
        a.kill9()
        os.kill(c.proc.pid, signal.SIGSTOP)  # frozen, not dead: it will wake up later
        if not wait_until(lambda: taken(b)[0] >= len(PARKED), 15):
            raise Failure(f"node b did not take the {len(PARKED)} calls over within 15 s of the kill: {taken(b)}")
        takeover_s = time.monotonic() - killed
        ncalls, lost, subs, subs_lost = taken(b)
        print(f"takeover: {takeover_s:.2f} s from kill -9 of a and SIGSTOP of c to b's 'takeover complete' "
              f"({ncalls} calls restored, {lost} lost, {subs} subscription(s) resumed)")
        if (ncalls, lost, subs, subs_lost) != (len(PARKED), 0, 1, 0):
            raise Failure(f"b's takeover: {ncalls} calls ({lost} lost), {subs} subscriptions ({subs_lost} lost)")
        # Music on hold now comes from b: each parked party got b's re-INVITE (and its Contact).
        if not wait_until(lambda: all(parked.reinvited(calls[e]) > reinvites_before[e] for e in PARKED), 5):
            raise Failure(f"parked parties not re-INVITEd by b: "
                          f"{ {e: parked.reinvited(calls[e]) - reinvites_before[e] for e in PARKED} }")

        # The subscription too: b resumes it in the same dialog with a full-state NOTIFY, the next version.
        if not wait_until(lambda: len(parked.versions(sub)) >= 2, 5):
            raise Failure(f"the subscription held by a was not resumed by b: versions {parked.versions(sub)}")
        v = parked.versions(sub)
        if v[-1] != v[-2] + 1:
            raise Failure(f"the resumed subscription's NOTIFY versions go {v}, not one up")
        print(f"subscription of a resumed by b: dialog-info versions {v}")

        # The admin API (any node: one store) names the new owner of every call.
        status, body = b.admin("GET", f"/api/parked?domain={DOMAIN}")
        owners = sorted((c_["extension"], c_.get("owner")) for c_ in body.get("parked", []))
        if status != 200 or owners != [(str(e), "b") for e in PARKED]:
            raise Failure(f"GET /api/parked on b after the takeover: {status} {owners}")

        # Every call taken over stays retrievable through b (all but the one left to recall, now).
        for ext in PARKED:
            if ext == RECALL_EXT:
                continue
            rcid = f"rt-{ext}-{random.getrandbits(32)}@test"
            before = parked.reinvited(calls[ext])
            retrievers.invite(rcid, f"r{ext}", f"*88{ext}")
            if not wait_until(lambda: retrievers.final(rcid) is not None, 10):
                raise Failure(f"no answer to the retrieve of {ext} through b")
            if retrievers.final(rcid) != 200 or parked.reinvited(calls[ext]) <= before:
                raise Failure(f"retrieve of {ext} through b answered {retrievers.final(rcid)}")
        print(f"{len(PARKED) - 1} taken-over calls retrieved through b: 200 each")

        # The recall of the call left parked comes due on b (after the takeover): it rings the phone once.
        if not wait_until(lambda: _incoming(parker) >= 1, RECALL_S + 10, step=0.2):
            raise Failure("the recall of the taken-over call never rang the parked-on extension")
        # c wakes up with its heartbeat and recall timer overdue: its lapsed lease or the fence on its recall step
        # (whichever timer fires first) makes it drop the call quietly, ringing nothing.
        os.kill(c.proc.pid, signal.SIGCONT)
        if not wait_until(lambda: "is no longer ours" in c.log(), 5):
            raise Failure("c, woken up, did not drop the call b took over")
        # ... and forgets its dialog without a word (host ABI 1.7 dialog_forget): c's core holds no dialog any more.
        if not wait_until(lambda: c.admin("GET", "/api/stats")[1].get("core", {}).get("dialogs") == 0, 3):
            raise Failure(f"c still holds the dropped call's dialog: {c.admin('GET', '/api/stats')}")
        time.sleep(1)
        rcid = f"rt-{RECALL_EXT}-{random.getrandbits(32)}@test"
        retrievers.invite(rcid, "r1", f"*88{RECALL_EXT}")  # taken while ringing: the recall is cancelled
        if not wait_until(lambda: retrievers.final(rcid) is not None, 10):
            raise Failure("no answer to the retrieve of the recalling call")
        if retrievers.final(rcid) != 200:
            raise Failure(f"retrieve of the recalling call answered {retrievers.final(rcid)}")
        time.sleep(1.5)  # a second ring (a duplicate recall) would have arrived by now
        res = parker.stop()
        incoming = res.stat("IncomingCall")
        print(f"recall INVITEs at the parked-on extension's phone: {incoming}")
        if incoming != 1:
            raise Failure(f"the recall rang {incoming} times, not exactly once")
        status, body = b.admin("GET", f"/api/parked?domain={DOMAIN}")
        if status != 200 or body.get("parked"):
            raise Failure(f"calls left parked after every retrieve: {status} {body}")
        print("failover: OK")
    except Failure as e:
        print("FAIL:", e)
        for name, pw in (("a", a), ("b", b), ("c", c)):
            if pw:
                print(f"--- node {name} log (tail):\n{pw.log()[-4000:]}")
        sys.exit(1)
    finally:
        if parker:
            parker.close()
        parked.close()
        retrievers.close()
        if c and c.alive():
            os.kill(c.proc.pid, signal.SIGCONT)
        for pw in (a, b, c):
            if pw:
                pw.close()
        subprocess.run([PG_FIXTURE, "stop", state])
        import shutil
        shutil.rmtree(work, ignore_errors=True)


def taken(pw):
    """Totals over a node's "takeover complete" lines: calls restored, lost, subscriptions resumed, lost."""
    t = [0, 0, 0, 0]
    for m in re.finditer(r"takeover complete: (\d+) parked call\(s\) of .*? restored \((\d+) lost\), (\d+) "
                         r"subscription\(s\) resumed \((\d+) lost\)", pw.log()):
        t = [x + int(y) for x, y in zip(t, m.groups())]
    return tuple(t)


def _incoming(sipp):
    """IncomingCall so far, from SIPp's periodic statistics file (written every second with -fd 1)."""
    try:
        import csv
        with open(sipp.stat_file) as f:
            rows = [r for r in csv.reader(f, delimiter=";") if r]
        if len(rows) < 2:
            return 0
        row = dict(zip(rows[0], rows[-1]))
        return int(float(row.get("IncomingCall(C)", "0") or 0))
    except (OSError, ValueError):
        return 0


if __name__ == "__main__":
    main()
