#!/usr/bin/env python3
"""Durability and text hardening of the park path, black box (issue 8):

    test_durability.py <parkway binary> kill9_bursts | kill9_bursts_inline | kill9_large_set | latin1_admin

kill9_bursts: parks in bursts from raw UDP "phones" (each INVITE to *68<ext> with an SDP offer, every 200 ACKed at
once), the daemon killed with SIGKILL during each burst, restarted on the same database: every park that got a
200 must still be listed by the admin API after every restart, and some of them are retrieved (re-INVITE of the
restored dialog, 200 to the retriever). Rounds alternate two ways of killing:
  * from outside (SIGKILL after a random delay inside the burst), and
  * from inside: PARKWAY_TEST_KILL_AFTER_PARKS=N makes the daemon SIGKILL itself right after its N-th park 200
    left -- the exact instant where a write still owed after the 200 would be lost (deterministic).
kill9_bursts runs call park with its default storage thread; kill9_bursts_inline the same with the engine on the
SIP thread (storage_thread = "off").
kill9_large_set: 300 parked calls and 20 BLF subscriptions, kill -9, restart (restore_batch 5, so the restore
spans many loop turns): right after the restart every call is retrieved (200 and a re-INVITE of its restored
park dialog, never "nothing parked"), and every watcher gets a NOTIFY with the next version in its subscription.
latin1_admin: a park whose From display name is ISO-8859-1 ("Jos\\xe9") is answered 200, GET /api/parked is 200
with U+FFFD in its place, and the call survives kill -9.

Bounded: 6 rounds of 30 parks, well under a minute. Every process started here is stopped (by PID).
"""
import os
import random
import re
import socket
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
from parkway_blackbox import Parkway, free_port, wait_until  # noqa: E402

BINARY = os.path.abspath(sys.argv[1]) if len(sys.argv) > 1 else "parkway"
DOMAIN = "pbx.example.com"
ROUNDS = 6
BURST = 30


class Phones:
    """One UDP socket playing every parked party and retriever: sends INVITEs, ACKs each 2xx, answers re-INVITEs
    (200 + SDP, then waits for the ACK), BYEs and anything else with 200. Remembers every final response."""

    SDP = ("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
           "m=audio {port} RTP/AVP 0 8\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\na=sendrecv\r\n")

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        # music on hold goes here and is dropped (an open socket: no ICMP errors back to the daemon)
        self.rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.rtp.bind(("127.0.0.1", 0))
        self.rtp_port = self.rtp.getsockname()[1]
        self.target = None
        self.finals = {}      # call-id -> (status, to-tag)
        self.reinvites = {}   # call-id -> count of INVITEs received in that dialog
        self.notifies = {}    # call-id -> dialog-info versions of the NOTIFYs received in that subscription
        self.lock = threading.Lock()
        self.stop = False
        self.thread = threading.Thread(target=self.loop, daemon=True)
        self.thread.start()

    def close(self):
        self.stop = True
        self.thread.join(2)
        self.sock.close()
        self.rtp.close()

    @staticmethod
    def header(msg, name):
        for line in msg.split("\r\n")[1:]:
            if not line:
                break
            k, _, v = line.partition(":")
            if k.strip().lower() == name.lower():
                return v.strip()
        return ""

    def invite(self, call_id, user, dial, display=b"", extra=""):
        """Send an INVITE from sip:<user>@DOMAIN; display is raw bytes (may be Latin-1)."""
        branch = "z9hG4bK" + call_id.replace("@", "-")
        sdp = self.SDP.format(port=self.rtp_port)
        frm = (b'"' + display + b'" ' if display else b"") + f"<sip:{user}@{DOMAIN}>;tag=t-{call_id.split('@')[0]}".encode()
        head = (f"INVITE sip:{dial}@{DOMAIN} SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP 127.0.0.1:{self.port};branch={branch};rport\r\n"
                f"Max-Forwards: 70\r\n").encode()
        head += b"From: " + frm + b"\r\n"
        head += (f"To: <sip:{dial}@{DOMAIN}>\r\nCall-ID: {call_id}\r\nCSeq: 1 INVITE\r\n"
                 f"Contact: <sip:{user}@127.0.0.1:{self.port}>\r\n{extra}"
                 f"Content-Type: application/sdp\r\nContent-Length: {len(sdp)}\r\n\r\n").encode()
        self.sock.sendto(head + sdp.encode(), self.target)

    def ack(self, resp):
        call_id = self.header(resp, "Call-ID")
        to = self.header(resp, "To")
        frm = self.header(resp, "From")
        contact = self.header(resp, "Contact")
        ruri = contact[contact.find("<") + 1:contact.find(">")] if "<" in contact else f"sip:{DOMAIN}"
        msg = (f"ACK {ruri} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{self.port};branch=z9hG4bKack{random.getrandbits(40)}"
               f";rport\r\nMax-Forwards: 70\r\nFrom: {frm}\r\nTo: {to}\r\nCall-ID: {call_id}\r\nCSeq: 1 ACK\r\n"
               f"Content-Length: 0\r\n\r\n")
        self.sock.sendto(msg.encode(), self.target)

    def answer(self, req, addr, status=200, body=""):
        lines = req.split("\r\n")
        keep = [line for line in lines[1:] if line.split(":", 1)[0].strip().lower() in ("via", "v", "from", "f", "to",
                                                                                            "t", "call-id", "i", "cseq")]
        out = [f"SIP/2.0 {status} OK"]
        for line in keep:
            if line.lower().startswith(("to:", "t:")) and ";tag=" not in line:
                line += ";tag=phone"
            out.append(line)
        out.append(f"Contact: <sip:phone@127.0.0.1:{self.port}>")
        if body:
            out.append("Content-Type: application/sdp")
        out.append(f"Content-Length: {len(body)}")
        self.sock.sendto(("\r\n".join(out) + "\r\n\r\n" + body).encode(), addr)

    def loop(self):
        self.sock.settimeout(0.1)
        while not self.stop:
            try:
                data, addr = self.sock.recvfrom(65535)
            except socket.timeout:
                continue
            except OSError:
                return
            msg = data.decode(errors="replace")
            first = msg.split("\r\n", 1)[0]
            if first.startswith("SIP/2.0 "):
                status = int(first.split()[1])
                if status < 200 or "INVITE" not in self.header(msg, "CSeq"):
                    continue
                call_id = self.header(msg, "Call-ID")
                with self.lock:
                    self.finals.setdefault(call_id, status)
                if status < 300:
                    self.ack(msg)
                continue
            method = first.split()[0]
            call_id = self.header(msg, "Call-ID")
            if method == "INVITE":  # the retrieve re-INVITE of a restored park dialog
                with self.lock:
                    self.reinvites[call_id] = self.reinvites.get(call_id, 0) + 1
                self.answer(msg, addr, 200, self.SDP.format(port=self.rtp_port))
            elif method != "ACK":
                if method == "NOTIFY":
                    v = re.search(r'dialog-info[^>]* version="(\d+)"', msg)
                    with self.lock:
                        self.notifies.setdefault(call_id, []).append(int(v.group(1)) if v else -1)
                self.answer(msg, addr)

    def subscribe(self, call_id, user, watch):
        """A dialog-event (RFC 4235) BLF subscription from sip:<user>@DOMAIN to sip:<watch>@DOMAIN."""
        msg = (f"SUBSCRIBE sip:{watch}@{DOMAIN} SIP/2.0\r\n"
               f"Via: SIP/2.0/UDP 127.0.0.1:{self.port};branch=z9hG4bK{call_id.replace('@', '-')};rport\r\n"
               f"Max-Forwards: 70\r\nFrom: <sip:{user}@{DOMAIN}>;tag=s-{call_id.split('@')[0]}\r\n"
               f"To: <sip:{watch}@{DOMAIN}>\r\nCall-ID: {call_id}\r\nCSeq: 1 SUBSCRIBE\r\n"
               f"Contact: <sip:{user}@127.0.0.1:{self.port}>\r\nEvent: dialog\r\n"
               f"Accept: application/dialog-info+xml\r\nExpires: 600\r\nContent-Length: 0\r\n\r\n")
        self.sock.sendto(msg.encode(), self.target)

    def versions(self, call_id):
        with self.lock:
            return list(self.notifies.get(call_id, []))

    def final(self, call_id):
        with self.lock:
            return self.finals.get(call_id)

    def reinvited(self, call_id):
        with self.lock:
            return self.reinvites.get(call_id, 0)


def daemon(workdir, extra=None):
    moh = (free_port() // 2) * 2
    params = {"moh_ip": "127.0.0.1", "moh_port_min": moh, "moh_port_max": min(moh + 800, 65534), "park_info": False}
    params.update(extra or {})
    return Parkway(BINARY, modules=["registrar", "callpark", "router"], admin=True, workdir=workdir,
                   proxy={"domains": [DOMAIN, "127.0.0.1"], "trusted_peers": ["127.0.0.1"]}, log_level="info",
                   start=False, module_params={"callpark": params})


def listed(pw):
    """parked_uri -> call for every call the admin API lists (asserts the listing works)."""
    status, body = pw.admin("GET", f"/api/parked?domain={DOMAIN}")
    assert status == 200, f"GET /api/parked answered {status}: {body}"
    return {c["parked_uri"]: c for c in body["parked"]}


def fail(pw, msg):
    raise AssertionError(msg + "\n--- parkway log (tail):\n" + pw.log()[-5000:])


def case_kill9_bursts():
    kill9_bursts()


def case_kill9_bursts_inline():
    # call park's engine on the SIP thread (storage_thread = "off", docs/callpark.md "Durability"): the park and
    # its dialog are stored before the 200 there too
    kill9_bursts({"storage_thread": "off"})


def kill9_bursts(extra=None):
    import tempfile
    work = tempfile.mkdtemp(prefix="parkway-durability-")
    pw = daemon(work, extra)
    phones = Phones()
    acked = {}    # parked uri -> call-id, every park that got a 200
    retrieved = set()
    rng = random.Random(int(os.environ.get("PARKWAY_TEST_SEED", "0")) or None)
    try:
        for rnd in range(ROUNDS):
            inside = rnd % 2 == 0
            n_kill = rng.randint(2, BURST)  # the daemon kills itself after this many park 200s
            if inside:
                os.environ["PARKWAY_TEST_KILL_AFTER_PARKS"] = str(n_kill)
            try:
                pw.start()
            finally:
                os.environ.pop("PARKWAY_TEST_KILL_AFTER_PARKS", None)
            phones.target = ("127.0.0.1", pw.port)
            calls = []
            for i in range(BURST):
                ext, user = 100 + rnd * BURST + i, f"p{rnd}x{i}"
                cid = f"dur-{rnd}-{i}-{random.getrandbits(32)}@test"
                calls.append((cid, f"sip:{user}@{DOMAIN}"))
                phones.invite(cid, user, f"*68{ext}")
                if not inside and i == BURST // 2:
                    time.sleep(rng.uniform(0, 0.01))
                    pw.kill9()  # from outside, in the middle of the burst
                    break
                time.sleep(rng.uniform(0, 0.004))
            if inside and not wait_until(lambda: not pw.alive(), 10):
                fail(pw, f"round {rnd}: the daemon did not kill itself after {n_kill} parks")
            pw.kill9()  # reap (already dead); closes the log
            time.sleep(0.3)  # late 200s already on their way are in our socket by now
            got = [(cid, uri) for cid, uri in calls if (phones.final(cid) or 0) // 100 == 2]
            for cid, uri in got:
                acked[uri] = cid
            print(f"round {rnd}: {'self-kill after ' + str(n_kill) if inside else 'SIGKILL mid-burst'}: "
                  f"{len(got)} of {len(calls)} parks answered 200")
            if inside and len(got) < n_kill:
                fail(pw, f"round {rnd}: only {len(got)} park 200s arrived before the kill at {n_kill}")
            pw.start()
            phones.target = ("127.0.0.1", pw.port)
            now = listed(pw)
            lost = sorted(uri for uri in acked if uri not in now and uri not in retrieved)
            if lost:
                fail(pw, f"round {rnd}: {len(lost)} park(s) answered 200 are gone after kill -9: {lost}")
            # retrievable: take the newest acknowledged park of this round (the one nearest the kill)
            if got:
                cid, uri = got[-1]
                ext = now[uri]["extension"]
                rcid = f"ret-{rnd}-{random.getrandbits(32)}@test"
                before = phones.reinvited(cid)  # a restart with a new MOH port re-INVITEs too
                phones.invite(rcid, f"r{rnd}", f"*88{ext}")
                if not wait_until(lambda: phones.final(rcid) is not None, 10):
                    fail(pw, f"round {rnd}: no answer to the retrieve *88{ext}")
                if phones.final(rcid) != 200 or phones.reinvited(cid) <= before:
                    fail(pw, f"round {rnd}: retrieve of the restored park {uri} answered {phones.final(rcid)}, "
                             f"re-INVITEs of its dialog: {phones.reinvited(cid)}")
                retrieved.add(uri)
            pw.stop()
        print(f"{len(acked)} acknowledged parks over {ROUNDS} kills: 0 lost, {len(retrieved)} retrieved after restarts")
    finally:
        phones.close()
        pw.close()
        import shutil
        shutil.rmtree(work, ignore_errors=True)


def case_latin1_admin():
    import tempfile
    work = tempfile.mkdtemp(prefix="parkway-latin1-")
    pw = daemon(work)
    phones = Phones()
    try:
        pw.start()
        phones.target = ("127.0.0.1", pw.port)
        phones.invite("latin1@test", "2001", "*68110", display="Jos\xe9".encode("latin-1"))
        if not wait_until(lambda: phones.final("latin1@test") is not None, 5):
            fail(pw, "no answer to the park INVITE with a Latin-1 display name")
        if phones.final("latin1@test") != 200:
            fail(pw, f"park with a Latin-1 display name answered {phones.final('latin1@test')}")
        now = listed(pw)  # was 400 for every call while this one was parked
        call = now.get(f"sip:2001@{DOMAIN}")
        if not call or call["parked_display"] != "Jos\ufffd":
            fail(pw, f"GET /api/parked shows {call}")
        pw.kill9()
        pw.start()
        if f"sip:2001@{DOMAIN}" not in listed(pw):
            fail(pw, "the Latin-1 park was dropped by the restart")
        if "could not be resumed" in pw.log() and "0 could not be resumed" not in pw.log():
            fail(pw, "the restart could not resume the call")
        print("latin1 park: 200, listed with U+FFFD, survives kill -9")
    finally:
        phones.close()
        pw.close()
        import shutil
        shutil.rmtree(work, ignore_errors=True)


def case_kill9_large_set():
    import tempfile
    work = tempfile.mkdtemp(prefix="parkway-large-")
    provision = os.path.join(work, "provision.toml")
    with open(provision, "w") as f:
        f.write(f'[[domain]]\nname = "{DOMAIN}"\nmax_parked = 0\n')
    pw = daemon(work, {"restore_batch": 5, "provision_file": provision})
    phones = Phones()
    n, watched = 300, 20
    try:
        pw.start()
        phones.target = ("127.0.0.1", pw.port)
        calls = []
        for i in range(n):
            cid = f"big-{i}-{random.getrandbits(32)}@test"
            calls.append((cid, 3000 + i))
            phones.invite(cid, f"q{i}", f"*68{3000 + i}")
            if i % 20 == 19:
                wait_until(lambda: all(phones.final(c) is not None for c, _ in calls), 10)
        if not wait_until(lambda: all(phones.final(c) is not None for c, _ in calls), 10):
            fail(pw, "not every park was answered")
        bad = [(c, phones.final(c)) for c, _ in calls if phones.final(c) != 200]
        if bad:
            fail(pw, f"{len(bad)} park(s) not answered 200: {bad[:5]}")
        subs = [f"blf-{i}-{random.getrandbits(32)}@test" for i in range(watched)]
        for i, sid in enumerate(subs):
            phones.subscribe(sid, f"w{i}", f"*88{3000 + i}")
        if not wait_until(lambda: all(phones.versions(s) for s in subs), 10):
            fail(pw, "not every subscription got its first NOTIFY")
        time.sleep(0.5)  # the stored versions are written in batches after the NOTIFYs
        last = {s: max(phones.versions(s)) for s in subs}
        pw.kill9()
        pw.start()
        phones.target = ("127.0.0.1", pw.port)
        # Right away, while the restore may still run: every call is retrievable in its restored dialog.
        rets = []
        for cid, ext in calls:  # in groups of 20 (these phones do not retransmit: no UDP burst to lose)
            rcid = f"take-{ext}-{random.getrandbits(32)}@test"
            rets.append((rcid, cid, ext))
            phones.invite(rcid, f"r{ext}", f"*88{ext}")
            if len(rets) % 20 == 0:
                wait_until(lambda: all(phones.final(r) is not None for r, _, _ in rets), 10)
        if not wait_until(lambda: all(phones.final(r) is not None for r, _, _ in rets), 20):
            fail(pw, f"not every retrieve was answered: {sum(phones.final(r) is None for r, _, _ in rets)} of {n} missing")
        # A slow machine (or a sanitizer build) can put the restarting daemon behind: its overload gate then answers
        # 503 + Retry-After before anything is made for the request (docs/limits.md "Overload"), and a phone tries
        # again after Retry-After (RFC 3261 §21.5.4). The call must still be parked and retrievable then.
        for _ in range(3):
            again = [i for i, (r, _, _) in enumerate(rets) if phones.final(r) == 503]
            if not again:
                break
            time.sleep(1.2)
            for i in again:
                _, cid, ext = rets[i]
                rcid = f"take-{ext}-{random.getrandbits(32)}@test"
                rets[i] = (rcid, cid, ext)
                phones.invite(rcid, f"r{ext}", f"*88{ext}")
            wait_until(lambda: all(phones.final(r) is not None for r, _, _ in rets), 20)
        wrong = [(ext, phones.final(r)) for r, _, ext in rets if phones.final(r) != 200]
        if wrong:
            fail(pw, f"{len(wrong)} retrieve(s) after kill -9 not answered 200: {wrong[:10]}")
        if not wait_until(lambda: all(phones.reinvited(c) >= 1 for _, c, _ in rets), 10):
            fail(pw, "a retrieved call's park dialog got no re-INVITE")
        if not wait_until(lambda: all(any(v == last[s] + 1 for v in phones.versions(s)) for s in subs), 10):
            got = {s: phones.versions(s) for s in subs}
            fail(pw, f"not every watcher got the next version after the restart: before {last}, now {got}")
        status, st = pw.admin("GET", "/api/stats")
        restore = st["modules"]["callpark"]["restore"] if status == 200 else {}
        if not restore.get("done") or restore.get("restored") != n or restore.get("lost") != 0:
            fail(pw, f"restore progress: {restore}")
        print(f"{n} calls parked, kill -9, all {n} retrieved after the restart; {watched} watchers got the next "
              f"version; restore: {restore}")
    finally:
        phones.close()
        pw.close()
        if os.environ.get("PARKWAY_KEEP_TMP") != "1":
            import shutil
            shutil.rmtree(work, ignore_errors=True)


CASES = {name[5:]: fn for name, fn in list(globals().items()) if name.startswith("case_")}

if __name__ == "__main__":
    if len(sys.argv) < 3 or sys.argv[2] not in CASES:
        print("usage: test_durability.py <parkway binary> <case>\ncases: " + " ".join(CASES))
        sys.exit(2)
    CASES[sys.argv[2]]()
    print(f"{sys.argv[2]}: OK")
