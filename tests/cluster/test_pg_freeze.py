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

Then an admin phase (admin_phase): a call is parked and the server frozen again; an admin request (GET /api/parked) waits
for the database on the storage thread (the command answers later, ABI 1.8 writer_defer) while OPTIONS are still
answered within 1 s and no answer comes while it is frozen; after SIGCONT it gets its correct answer (200, the call
listed). With the command on the SIP thread again the OPTIONS wait up to 7 s and the test fails.

Then a BLF phase (blf_phase, docs/cluster.md "Threads": the reads behind NOTIFYs run on the storage thread): a
watcher subscribed to 705 (Event: dialog, RFC 4235) has its first NOTIFY; the server is frozen again, and:
  * a park on 705 waits (the change that needs a NOTIFY), and a second watcher's SUBSCRIBE to 705 gets its 200
    within 1 s (its first NOTIFY follows its read, RFC 6665 §4.2.1), OPTIONS within 1 s;
  * after SIGCONT the park completes, both watchers get a NOTIFY showing the call, the first watcher's versions
    0, 1, ... with no gap or repeat (RFC 4235 §4.1), and the second one's first NOTIFY is version 0.

Then the rarer paths (each a function of its own, called from main):
  * phase_recall_answer: a recall rings the parked-on extension (a phone registered here, which rings, 180); the
    server is SIGSTOPped and the phone answers (200 with an offer, RFC 3725 offerless INVITE). Recording the answer
    (recallAnswered) waits for the database on the storage thread: OPTIONS are answered within 1 s meanwhile;
    after SIGCONT the parked party is re-INVITEd with the answerer's offer, the answerer's 200 is ACKed, and the call
    leaves the store (completeRetrieve).
  * phase_retrieve_elsewhere: two nodes; a call parked on n0 is dialled at n1, whose claim finds n0 the owner. The
    owner's record is read while the `nodes` table is locked by another session (a server that hangs on that one
    table: a SIGSTOP would hold the claim too, and the owner read would only come after it). OPTIONS to n1 are
    answered within 1 s meanwhile; once the lock goes, n1 forwards the INVITE to n0, which retrieves (200).

storage_thread (default "auto") is passed to [module.callpark]; "off" runs the engine on the SIP thread and must
fail this test (the break-it-on-purpose check). Bounded (~30 s), loopback only, every process stopped by its PID.
"""
import os
import random
import re
import socket
import subprocess
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


def options_within(c, port: int, what: str, count: int = 3):
    """`count` OPTIONS to the node at `port`, each answered within 1 s (else the test fails naming `what`)."""
    delays = []
    for _ in range(count):
        d = options_delay(port)
        delays.append(d)
        if d is None or d > 1.0:
            fail(c, f"OPTIONS while {what} answered after {d} s (all: {delays}): the SIP thread waits on the network")
        time.sleep(0.1)
    return max(delays)


class RingingPhone:
    """A phone registered as <user>@DOMAIN at a node: rings (180) on an INVITE and answers it (200 + offer) only when
    told; then waits for the ACK. Raw UDP, one socket."""

    def __init__(self, port: int, user: str):
        self.node = ("127.0.0.1", port)
        self.user = user
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.tag = f"rp{random.getrandbits(32):x}"
        self.invite = ""
        self.src = None

    def close(self):
        self.sock.close()

    def _recv(self, until: float):
        while time.monotonic() < until:
            self.sock.settimeout(max(0.01, until - time.monotonic()))
            try:
                data, addr = self.sock.recvfrom(65535)
            except socket.timeout:
                return None, None
            return data.decode(errors="replace"), addr
        return None, None

    def register(self):
        tag = random.getrandbits(32)
        msg = (f"REGISTER sip:{DOMAIN} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{self.port};branch=z9hG4bKrg{tag};rport\r\n"
               f"Max-Forwards: 70\r\nFrom: <sip:{self.user}@{DOMAIN}>;tag=r{tag}\r\nTo: <sip:{self.user}@{DOMAIN}>\r\n"
               f"Call-ID: reg-{tag}@test\r\nCSeq: 1 REGISTER\r\nContact: <sip:{self.user}@127.0.0.1:{self.port}>\r\n"
               f"Expires: 600\r\nContent-Length: 0\r\n\r\n")
        self.sock.sendto(msg.encode(), self.node)
        end = time.monotonic() + 3
        while True:
            reply, _ = self._recv(end)
            if reply is None:
                return None
            if reply.startswith("SIP/2.0 ") and not reply.startswith("SIP/2.0 1"):
                return int(reply.split()[1])

    def wait_invite(self, timeout: float) -> bool:
        end = time.monotonic() + timeout
        while True:
            msg, addr = self._recv(end)
            if msg is None:
                return False
            if msg.startswith("INVITE "):
                self.invite, self.src = msg, addr
                return True

    def _reply(self, status: str, body: str = ""):
        out = [f"SIP/2.0 {status}"]
        for line in self.invite.split("\r\n")[1:]:
            if not line:
                break
            name = line.split(":", 1)[0].strip().lower()
            if name in ("via", "v", "from", "f", "call-id", "i", "cseq", "record-route"):
                out.append(line)
            elif name in ("to", "t"):
                out.append(line + (f";tag={self.tag}" if ";tag=" not in line else ""))
        out.append(f"Contact: <sip:{self.user}@127.0.0.1:{self.port}>")
        if body:
            out.append("Content-Type: application/sdp")
        out.append(f"Content-Length: {len(body)}")
        self.sock.sendto(("\r\n".join(out) + "\r\n\r\n" + body).encode(), self.src)

    def ring(self):
        self._reply("180 Ringing")

    def answer(self):
        self._reply("200 OK", Phones.SDP.format(port=self.port + 1))

    def wait_ack(self, timeout: float) -> str | None:
        """The ACK of our 200 (its body: the parked party's answer), None if none came."""
        end = time.monotonic() + timeout
        call_id = Phones.header(self.invite, "Call-ID")
        while True:
            msg, addr = self._recv(end)
            if msg is None:
                return None
            if msg.startswith("ACK ") and Phones.header(msg, "Call-ID") == call_id:
                return msg
            if msg.startswith("INVITE ") and Phones.header(msg, "Call-ID") == call_id and \
                    Phones.header(msg, "CSeq").startswith(Phones.header(self.invite, "CSeq")):
                self.answer()  # our 200 crossed a retransmitted INVITE: answer it again


def parked_list(node) -> tuple:
    status, body = node.admin("GET", f"/api/parked?domain={DOMAIN}")
    return status, sorted(str(p.get("extension")) for p in (body or {}).get("parked", []))


def phase_rare_paths():
    """The recall answer and the retrieve of another node's call, on one two-node cluster. A slow heartbeat: none of
    n1's falls inside the 2 s the nodes table is locked (it would hold n1's storage thread, and the owner read
    would queue behind it instead of meeting the lock)."""
    settings = {"storage_thread": STORAGE_THREAD, "recall_time": "4s", "node_heartbeat": "4s", "node_lease": "15s"}
    with Cluster(BINARY, nodes=2, callpark=settings) as c:
        phase_recall_answer(c)
        phase_retrieve_elsewhere(c)


def phase_recall_answer(c):
    """A recall answered while the database is frozen (recall_flow.cc: recallAnswered on the storage thread)."""
    node = c.nodes[0]
    answerer = RingingPhone(node.port, "710")
    try:
        if answerer.register() != 200:
            fail(c, "the REGISTER of the parked-on extension 710 failed")
        with Phones(("127.0.0.1", node.port)) as ph:
            parked = ph.invite("*68710", "recalled-party")
            if ph.final(parked, 10) != 200:
                fail(c, "the park on 710 failed")
            if not answerer.wait_invite(10):
                fail(c, "the recall never rang the parked-on extension 710")
            answerer.ring()
            time.sleep(0.3)
            pids = c.pg.freeze()
            try:
                t0 = time.monotonic()
                answerer.answer()
                time.sleep(0.1)  # the answer is on its way to the database
                worst = options_within(c, node.port, "a recall answer waits for a frozen database")
                if ph.reinvites.get(parked, 0):
                    fail(c, "the parked party was re-INVITEd before the answer was recorded")
                print(f"recall answered while frozen: OPTIONS answered in {worst * 1000:.0f} ms at most")
            finally:
                c.pg.thaw(pids)
            ack = answerer.wait_ack(10)
            if ack is None:
                fail(c, "the recall answerer's 200 was never ACKed after the database ran again")
            if not wait_until(lambda: ph.reinvites.get(parked, 0) >= 1, 3):
                fail(c, "the parked party was not re-INVITEd with the recall answerer's offer")
            if not wait_until(lambda: parked_list(node) == (200, []), 3):
                fail(c, f"the recalled call stayed in the store: GET /api/parked -> {parked_list(node)}")
            print(f"database running again: the recall connected after {time.monotonic() - t0:.1f} s "
                  "(ACK with the parked party's answer, the call left the store)")
    finally:
        answerer.close()


def psql(c, sql: str, **kw):
    exe = os.path.join(c.pg.bindir, "psql")
    if not os.access(exe, os.X_OK):
        exe = "psql"
    return subprocess.run([exe, "-X", "-q", "-tA", "-v", "ON_ERROR_STOP=1", c.pg.url, "-c", sql],
                          capture_output=True, text=True, timeout=10, **kw)


def phase_retrieve_elsewhere(c):
    """A retrieve dialled at the node that does not own the call, while the owner's record cannot be read
    (cluster.cc: the owner look-up on the storage thread)."""
    n0, n1 = c.nodes
    with Phones(("127.0.0.1", n0.port)) as parked, Phones(("127.0.0.1", n1.port)) as retr:
        # Right after one of n1's heartbeats (its lease moves): the next comes 4 s later, the recall 4 s after
        # the park; both after the lock below (2 s).
        lease_sql = f"SELECT lease_until FROM nodes WHERE address LIKE '%:{n1.port}%'"
        first = psql(c, lease_sql).stdout.strip()
        if not first:
            fail(c, f"no node row for n1 (port {n1.port}): {psql(c, 'SELECT name, address FROM nodes')}")
        if not wait_until(lambda: psql(c, lease_sql).stdout.strip() != first, 8):
            fail(c, "n1 renewed no lease")
        cid = parked.invite("*68720", "elsewhere-party")
        if parked.final(cid, 3) != 200:
            fail(c, "the park on n0 failed")
        locker = subprocess.Popen(
            [os.path.join(c.pg.bindir, "psql") if os.access(os.path.join(c.pg.bindir, "psql"), os.X_OK) else "psql",
             "-X", "-q", c.pg.url, "-c", "BEGIN; LOCK TABLE nodes IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(2); COMMIT;"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            held = ("SELECT count(*) FROM pg_locks WHERE relation = 'nodes'::regclass AND "
                    "mode = 'AccessExclusiveLock' AND granted")
            if not wait_until(lambda: psql(c, held).stdout.strip() == "1", 2):
                fail(c, "the lock on the nodes table was not taken")
            t0 = time.monotonic()
            rcid = retr.invite("*88720", "elsewhere-retriever")
            time.sleep(0.2)  # the claim ran (NotOwner); the owner's record is being read
            worst = options_within(c, n1.port, "a retrieve of another node's call waits for the owner's record")
            if retr.final(rcid) is not None:
                fail(c, f"the retrieve answered {retr.final(rcid)} while the owner's record could not be read")
            print(f"owner record locked: OPTIONS to n1 answered in {worst * 1000:.0f} ms at most")
        finally:
            locker.wait(10)
        st = retr.final(rcid, 10)
        if st != 200:
            fail(c, f"the retrieve at n1 of n0's call answered {st} after the lock went, not 200")
        if "forwarded to" not in n1.log():
            fail(c, "n1 did not forward the retrieve to the owner n0")
        if not wait_until(lambda: parked.reinvites.get(cid, 0) >= 1, 3):
            fail(c, "the parked party on n0 was not re-INVITEd by the retrieve")
        print(f"lock gone: the retrieve was forwarded to n0 and answered 200 after {time.monotonic() - t0:.1f} s")


class BlfWatcher:
    """A BLF phone on raw UDP: SUBSCRIBE Event: dialog, 200 OK to every NOTIFY, the SUBSCRIBE's final status and
    each NOTIFY body kept with the monotonic time it arrived."""

    def __init__(self, port: int, user: str, watch: str):
        self.port, self.user, self.watch = port, user, watch
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.05)
        self.lport = self.sock.getsockname()[1]
        self.notifies: list = []  # (arrival, body)
        self.final: tuple | None = None  # (arrival, status) of the SUBSCRIBE
        self.lock = threading.Lock()
        self._stop = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def subscribe(self):
        self.sent = time.monotonic()
        msg = (f"SUBSCRIBE sip:{self.watch}@{DOMAIN} SIP/2.0\r\n"
               f"Via: SIP/2.0/UDP 127.0.0.1:{self.lport};branch=z9hG4bKblf{os.urandom(6).hex()};rport\r\n"
               f"Max-Forwards: 70\r\nFrom: <sip:{self.user}@{DOMAIN}>;tag=w{self.lport}\r\n"
               f"To: <sip:{self.watch}@{DOMAIN}>\r\nCall-ID: blf-{self.lport}@127.0.0.1\r\nCSeq: 1 SUBSCRIBE\r\n"
               f"Contact: <sip:{self.user}@127.0.0.1:{self.lport}>\r\nEvent: dialog\r\n"
               f"Accept: application/dialog-info+xml\r\nExpires: 600\r\nContent-Length: 0\r\n\r\n")
        self.sock.sendto(msg.encode(), ("127.0.0.1", self.port))

    def _run(self):
        while not self._stop:
            try:
                data, addr = self.sock.recvfrom(65535)
            except socket.timeout:
                continue
            except OSError:
                return
            now = time.monotonic()
            text = data.decode(errors="replace")
            if text.startswith("SIP/2.0 "):
                status = int(text.split()[1])
                with self.lock:
                    if status >= 200 and self.final is None:
                        self.final = (now, status)
                continue
            if not text.startswith("NOTIFY "):
                continue
            head, _, body = text.partition("\r\n\r\n")
            keep = [ln for ln in head.split("\r\n")[1:]
                    if ln.split(":", 1)[0].strip().lower() in ("via", "from", "to", "call-id", "cseq")]
            self.sock.sendto(("SIP/2.0 200 OK\r\n" + "\r\n".join(keep) + "\r\nContent-Length: 0\r\n\r\n").encode(),
                             addr)
            with self.lock:
                self.notifies.append((now, body))

    def wait(self, pred, timeout: float) -> bool:
        return wait_until(lambda: any(pred(b) for _, b in list(self.notifies)), timeout)

    def versions(self) -> list:
        with self.lock:
            return [int(m.group(1)) for _, b in self.notifies for m in [re.search(r'version="(\d+)"', b)] if m]

    def last(self) -> str:
        with self.lock:
            return self.notifies[-1][1] if self.notifies else ""

    def close(self):
        self._stop = True
        self.thread.join(2)
        self.sock.close()


def shows_call(body: str) -> bool:
    return bool(re.search(r"<state[^>]*>\s*(early|confirmed)\s*</state>", body))


def blf_phase(c, ph: Phones):
    """BLF watchers while the server is frozen: nothing behind a NOTIFY waits on the SIP thread."""
    port = c.nodes[0].port
    w1, w2 = BlfWatcher(port, "1030", "*88705"), BlfWatcher(port, "1031", "*88705")
    try:
        w1.subscribe()
        if not w1.wait(lambda b: "<dialog-info" in b, 5):
            fail(c, f"the first watcher got no NOTIFY after its SUBSCRIBE (answer {w1.final})")
        pids = c.pg.freeze()
        try:
            parking = ph.invite("*68705", "blf-party")
            time.sleep(0.2)  # the park is on its way to the frozen database
            w2.subscribe()
            if not wait_until(lambda: w2.final is not None, 1.0) or w2.final[1] != 200:
                fail(c, f"a SUBSCRIBE while the database is frozen was answered {w2.final} (want 200 within 1 s): "
                        "its first read waits on the SIP thread")
            answered = w2.final[0] - w2.sent
            options_within(c, port, "watchers wait for a frozen database", count=2)
            print(f"frozen database: a new SUBSCRIBE answered 200 in {answered * 1000:.0f} ms, OPTIONS meanwhile")
        finally:
            c.pg.thaw(pids)
        if ph.final(parking, 10) != 200:
            fail(c, f"the park on 705 answered {ph.final(parking)} after the database ran again, not 200")
        for name, w in (("first", w1), ("second", w2)):
            if not w.wait(shows_call, 5):
                fail(c, f"the {name} watcher saw no NOTIFY with the call parked on 705: {w.notifies}")
        v1, v2 = w1.versions(), w2.versions()
        if v1 != list(range(len(v1))) or v2 != list(range(len(v2))):
            fail(c, f"NOTIFY versions not 0, 1, ... in order (RFC 4235 §4.1): first {v1}, second {v2}")
        if not shows_call(w1.last()) or not shows_call(w2.last()):
            fail(c, "a watcher's newest NOTIFY does not show the call parked on 705 (an older state after a newer)")
        print(f"database running again: both watchers see the call (versions {v1} and {v2})")
    finally:
        w1.close()
        w2.close()


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
        worst = options_within(c, port, "an admin command waits for a frozen database")
        if "reply" in answer:
            fail(c, f"the admin command answered {answer['reply']} while the database was frozen")
        print(f"frozen database: OPTIONS answered in {worst * 1000:.0f} ms at most while GET /api/parked "
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
                worst = options_within(c, port, "a park waits for a frozen database")
                if ph.final(waiting) is not None:
                    fail(c, f"the park answered {ph.final(waiting)} while the database was frozen")
                print(f"frozen database: OPTIONS answered in {worst * 1000:.0f} ms at most while a park waits")
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
                # Right after the thaw the jobs queued during the freeze may still be older than
                # storage_queue_wait: a retrieve then gets 503 + Retry-After (the call stays parked), and a retry
                # once they ran is served.
                st = ph.retrieve(ext)
                end = time.monotonic() + 3
                while st == 503 and time.monotonic() < end:
                    time.sleep(0.2)
                    st = ph.retrieve(ext)
                if st != 200:
                    fail(c, f"the call parked on {ext} was not retrieved after the freeze (answered {st})")
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
            blf_phase(c, ph)
    phase_rare_paths()


if __name__ == "__main__":
    t = time.monotonic()
    main()
    print(f"OK in {time.monotonic() - t:.1f} s")
