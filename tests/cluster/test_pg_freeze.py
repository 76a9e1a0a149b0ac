#!/usr/bin/env python3
"""A frozen PostgreSQL server does not stall the SIP thread, black box (issue 14; docs/cluster.md "Threads: the SIP
thread must not wait on the network"):

    test_pg_freeze.py <parkway binary> [storage_thread]

PostgreSQL (initdb in a temp dir, tests/lib/parkway_cluster.py) and one `parkway` node on it; one call parked. Then
every server process is SIGSTOPped (the connections stay open, nothing answers: a server that hangs), and:
  * a park INVITE is sent: it gets 100 Trying and waits for the database (no final answer while it is frozen);
    a second one is sent and CANCELled while it waits (487);
  * meanwhile the node answers OPTIONS, each within 1 s (the park runs on the storage thread; with the engine on
    the SIP thread nothing would be answered for up to 7 s, the engine's answer deadline);
  * once the waiting park is older than storage_queue_wait (1 s here), a second park is refused at once with 503 +
    Retry-After (RFC 3261 §21.5.4) instead of queueing behind it.
The server is SIGCONTed (always, by PID), and:
  * the waiting park completes with 200;
  * nothing is lost: both calls (parked before and during the freeze) are retrieved;
  * the CANCELled park left nothing in the store (the admin API lists no call).
Admin phase (admin_phase): a call is parked and the server frozen again; an admin request (GET /api/parked) waits
for the database on the storage thread (the command answers later, ABI 1.8 writer_defer) while OPTIONS are still
answered within 1 s and no answer comes while it is frozen; after SIGCONT it gets its correct answer (200, the call
listed). With the command on the SIP thread again the OPTIONS wait up to 7 s and the test fails.

storage_thread (default "auto") is passed to [module.callpark]; "off" runs the engine on the SIP thread and must
fail this test (the break-it-on-purpose check). Bounded (~10 s), loopback only, every process stopped by its PID.
"""
import os
import socket
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
from parkway_cluster import DOMAIN, Cluster, Phones, wait_until  # noqa: E402

BINARY = os.path.abspath(sys.argv[1]) if len(sys.argv) > 1 else "parkway"
STORAGE_THREAD = sys.argv[2] if len(sys.argv) > 2 else "auto"


def fail(c, msg):
    raise AssertionError(msg + "\n" + c.logs())


def options_delay(port: int, timeout: float = 8.0) -> float | None:
    """Seconds until the node answered an OPTIONS sip:127.0.0.1:<port> (None: no answer within timeout)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.bind(("127.0.0.1", 0))
        lport = s.getsockname()[1]
        branch = f"z9hG4bK{os.urandom(6).hex()}"
        msg = (f"OPTIONS sip:127.0.0.1:{port} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{lport};branch={branch};rport\r\n"
               f"Max-Forwards: 70\r\nFrom: <sip:ping@127.0.0.1>;tag={branch[-6:]}\r\nTo: <sip:127.0.0.1:{port}>\r\n"
               f"Call-ID: ping-{branch}@127.0.0.1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n").encode()
        t0 = time.monotonic()
        s.sendto(msg, ("127.0.0.1", port))
        s.settimeout(timeout)
        while True:
            data, _ = s.recvfrom(65535)
            if data.startswith(b"SIP/2.0 ") and not data.startswith(b"SIP/2.0 1"):
                return time.monotonic() - t0
    except socket.timeout:
        return None
    finally:
        s.close()


def cancel(ph: Phones, call_id: str):
    """CANCEL the INVITE `call_id` sent by `ph` (RFC 3261 §9.1: its Request-URI, Via, From, To, Call-ID; CSeq
    CANCEL)."""
    with ph.lock:
        invite = ph._pending.get(call_id, (b"",))[0].decode()
    if not invite:
        raise AssertionError(f"no INVITE {call_id} pending to CANCEL")
    lines = invite.split("\r\n")
    keep = [ln for ln in lines[1:] if ln.split(":", 1)[0].lower() in ("via", "from", "to", "call-id", "max-forwards")]
    msg = "\r\n".join([lines[0].replace("INVITE", "CANCEL", 1)] + keep + ["CSeq: 1 CANCEL", "Content-Length: 0"])
    ph.sock.sendto((msg + "\r\n\r\n").encode(), ph.target)


def admin_phase(c, ph, port):
    """An admin command while the database is frozen (docs/cluster.md "Threads", docs/admin-api.md): it waits on
    the storage thread, the SIP thread goes on answering, and after SIGCONT the command gets its correct answer."""
    if ph.park("705") != 200:
        fail(c, "the park before the admin freeze failed")
    answer = {}

    def ask():
        answer["reply"] = c.nodes[0].admin("GET", f"/api/parked?domain={DOMAIN}", timeout=20)
        answer["at"] = time.monotonic()

    asker = threading.Thread(target=ask, daemon=True)
    pids = c.pg.freeze()
    try:
        t0 = time.monotonic()
        asker.start()
        time.sleep(0.2)  # the command is on its way to the database
        delays = []
        for _ in range(3):
            d = options_delay(port)
            delays.append(d)
            if d is None or d > 1.0:
                fail(c, f"OPTIONS while an admin command waits for a frozen database answered after {d} s "
                        f"(all: {delays}): the SIP thread waits on the network")
            time.sleep(0.1)
        if "reply" in answer:
            fail(c, f"the admin command answered {answer['reply']} while the database was frozen")
        print(f"frozen database: OPTIONS answered in {max(delays) * 1000:.0f} ms at most while GET /api/parked "
              "waits")
    finally:
        c.pg.thaw(pids)
    asker.join(15)
    if "reply" not in answer:
        fail(c, "GET /api/parked got no answer after the database ran again")
    status, body = answer["reply"]
    exts = sorted(str(p.get("extension")) for p in (body or {}).get("parked", [])) if status == 200 else None
    if status != 200 or exts != ["705"]:
        fail(c, f"GET /api/parked after the freeze answered {status} {body}, not 200 listing the call on 705")
    print(f"database running again: GET /api/parked answered 200 after {answer['at'] - t0:.1f} s")
    if ph.retrieve("705") != 200:
        fail(c, "the call parked on 705 was not retrieved after the admin freeze")


def main():
    settings = {"storage_thread": STORAGE_THREAD, "storage_queue_wait": "1s"}
    with Cluster(BINARY, nodes=1, callpark=settings) as c:
        port = c.nodes[0].port
        with Phones(("127.0.0.1", port)) as ph:
            if ph.park("700") != 200:
                fail(c, "the park before the freeze failed")
            pids = c.pg.freeze()
            try:
                t0 = time.monotonic()
                waiting = ph.invite("*68701", "frozen-party")
                cancelled = ph.invite("*68703", "cancelled-party")
                time.sleep(0.2)  # the parks are on their way to the database
                cancel(ph, cancelled)
                delays = []
                for _ in range(3):
                    d = options_delay(port)
                    delays.append(d)
                    if d is None or d > 1.0:
                        fail(c, f"OPTIONS while a park waits for a frozen database answered after {d} s "
                                f"(all: {delays}): the SIP thread waits on the network")
                    time.sleep(0.1)
                if ph.final(waiting) is not None:
                    fail(c, f"the park answered {ph.final(waiting)} while the database was frozen")
                print(f"frozen database: OPTIONS answered in {max(delays) * 1000:.0f} ms at most while a park waits")
                wait_until(lambda: time.monotonic() - t0 > 1.3, 3)
                t1 = time.monotonic()
                st = ph.park("702", timeout=3)
                refused = time.monotonic() - t1
                if st != 503 or refused > 1.0:
                    fail(c, f"a park behind one waiting longer than storage_queue_wait answered {st} after "
                            f"{refused:.1f} s, not 503 at once")
                refusals = [r for k, r in ph.responses.items() if ph.finals.get(k) == 503]
                if not any(Phones.header(r, "Retry-After") for r in refusals):
                    fail(c, f"the 503 has no Retry-After: {refusals}")
                print(f"a park behind it: 503 + Retry-After after {refused * 1000:.0f} ms")
            finally:
                c.pg.thaw(pids)
            st = ph.final(waiting, 10)
            if st != 200:
                fail(c, f"the park that waited for the frozen database answered {st} after it ran again, not 200")
            print(f"database running again: the waiting park answered 200 after {time.monotonic() - t0:.1f} s")
            for ext in ("700", "701"):
                if ph.retrieve(ext) != 200:
                    fail(c, f"the call parked on {ext} was not retrieved after the freeze")
            print("both calls retrieved: nothing lost")
            if ph.final(cancelled, 5) != 487:
                fail(c, f"the park CANCELled while it waited answered {ph.final(cancelled)}, not 487")
            # The store, not a retrieve (that would find no dialog, answer 404 and clean up itself).
            def parked_exts():
                status, body = c.nodes[0].admin("GET", f"/api/parked?domain={DOMAIN}")
                return status, sorted(str(p.get("extension")) for p in (body or {}).get("parked", []))
            if not wait_until(lambda: parked_exts() == (200, []), 3):
                fail(c, f"the CANCELled park stayed in the store: GET /api/parked -> {parked_exts()}")
            print("the CANCELled park: 487, and nothing stayed parked")
            admin_phase(c, ph, port)


if __name__ == "__main__":
    t = time.monotonic()
    main()
    print(f"OK in {time.monotonic() - t:.1f} s")
