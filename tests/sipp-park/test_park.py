#!/usr/bin/env python3
"""SIPp black-box tests of the call-park module (issue 4). One case per ctest test:

    test_park.py <parkway binary> <case>

Every case starts its own daemon (registrar + callpark + router) on free loopback ports with its own database,
drives it with the scenarios in examples/sipp/park/ (each SIPp process writes `-trace_logs` lines that the
checks below read), and stops everything it started. A case fails with a message saying what a user would
have seen go wrong.
"""
import os
import re
import socket
import sys
import tempfile
import shutil
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
from parkway_blackbox import Parkway, Sipp, free_port, scenario, wait_until  # noqa: E402

BINARY = os.path.abspath(sys.argv[1]) if len(sys.argv) > 1 and os.sep in sys.argv[1] else (sys.argv[1] if len(sys.argv) > 1 else "parkway")
PARK = os.path.join(HERE, "..", "..", "examples", "sipp", "park")
DOMAIN = "pbx.example.com"


# --------------------------------------------------------------------------------------------- helpers

class Role:
    """One SIPp process playing a part (parked party, retriever, phone, watcher ...) from examples/sipp/park."""

    def __init__(self, name, pw=None, keys=None, variables=None, port=None, calls=1, timeout=40, duration_ms=None,
                 server=False, folder=PARK):
        self.name = name
        self.dir = tempfile.mkdtemp(prefix="parkway-park-")
        self.log_path = os.path.join(self.dir, "roles.log")
        open(self.log_path, "w").close()
        k = {"domain": DOMAIN, "extra": "X-Test: park"}
        k.update(keys or {})
        extra = ["-trace_logs", "-log_file", self.log_path]
        for key, value in k.items():
            extra += ["-key", key, str(value)]
        if duration_ms is not None:
            extra += ["-d", str(duration_ms)]
        self.sipp = Sipp(scenario(name, folder), remote=None if server else pw.sip, port=port, calls=calls,
                         timeout=timeout, variables=variables, extra=extra)
        self.port = self.sipp.port
        self.result = None

    def start(self):
        self.sipp.start()
        return self

    def run(self):
        self.result = self.sipp.run()
        return self

    def wait(self):
        self.result = self.sipp.wait()
        return self

    def stop(self):
        self.result = self.sipp.stop()
        return self

    def text(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def lines(self, prefix):
        return [line for line in self.text().splitlines() if line.startswith(prefix)]

    def value(self, prefix, key, index=-1):
        """key=value from the index-th log line starting with prefix (values end at the next ' key=')."""
        lines = self.lines(prefix)
        if not lines:
            return None
        m = re.search(r"(?:^| )" + re.escape(key) + r"=(.*?)(?= [a-z_]+=|$)", lines[index])
        return m.group(1).strip() if m else None

    def wait_line(self, prefix, timeout=10, count=1):
        return wait_until(lambda: len(self.lines(prefix)) >= count, timeout)

    def describe(self):
        r = self.result
        out = f"--- {self.name} log:\n{self.text()[-2500:]}"
        if r is not None:
            out += f"\n--- {self.name} sipp rc={r.returncode} errors:\n{r.errors[-1500:]}\n--- output:\n{r.output[-1500:]}"
        return out

    def close(self):
        if self.sipp.proc and self.sipp.proc.poll() is None:
            self.sipp.close()
        if os.environ.get("PARKWAY_KEEP_TMP") != "1":
            shutil.rmtree(self.dir, ignore_errors=True)


class Suite:
    """A daemon with the call-park module plus the roles of one case; everything is closed at the end."""

    def __init__(self, params=None, provision=None, admin=False):
        self.dir = tempfile.mkdtemp(prefix="parkway-park-pw-")
        self.moh_min = (free_port() // 2) * 2
        # No "database": the park engine takes its default file beside the core database (parkway-park.db).
        p = {"moh_ip": "127.0.0.1", "moh_port_min": self.moh_min, "moh_port_max": min(self.moh_min + 200, 65534)}
        if provision is not None:
            path = os.path.join(self.dir, "provision.toml")
            with open(path, "w") as f:
                f.write(provision.replace("@DOMAIN@", DOMAIN))
            p["provision_file"] = path
        p.update(params or {})
        self.roles = []
        self.pw = Parkway(BINARY, modules=["registrar", "callpark", "router"], module_params={"callpark": p},
                          proxy={"domains": [DOMAIN, "127.0.0.1"]}, admin=admin, workdir=self.dir,
                          log_level=os.environ.get("PARKWAY_LOG_LEVEL", "info"))

    def role(self, name, **kw):
        r = Role(name, self.pw, **kw)
        self.roles.append(r)
        return r

    def phone(self, user, answer=1, notify_code=200, talk_ms=1500, calls=20, timeout=60):
        """A registered phone (phone.xml, server mode) for `user`. Like a real phone it REGISTERs from the port it
        listens on (the module sends to the REGISTER's source address, RFC 3581 style)."""
        port = free_port()
        self.register(user, port)
        return self.role("phone.xml", keys={"user": user}, server=True, calls=calls, timeout=timeout, port=port,
                         variables={"answer": answer, "notify_code": notify_code, "talk_ms": talk_ms}).start()

    def register(self, user, port, expires=600):
        """REGISTER user with contact 127.0.0.1:port, sent FROM that port (start the phone on it afterwards)."""
        r = self.role("register.xml", keys={"user": user, "cport": port, "expires": expires}, timeout=10,
                      port=port).run()
        r.result.check(successful=1)

    def transferee(self, user, refer_ms, calls=2):
        port = free_port()
        self.register(user, port)
        return self.role("transferee.xml", keys={"user": user}, server=True, calls=calls, timeout=40, port=port,
                         variables={"refer_ms": refer_ms}).start()

    def park(self, user, dial, parker=None, display=None, codecs="0 8", moh_port=None, hangup_after_ms=None,
             timeout=60):
        """Start a parked party (background). Returns the role; wait for its final=... line."""
        keys = {"user": user, "display": display or f"Caller {user}", "dial": dial, "codecs": codecs,
                "moh_port": moh_port or free_port()}
        if parker:
            keys["extra"] = f"Referred-By: <sip:{parker}@{DOMAIN}>"
        name = "park_hangup.xml" if hangup_after_ms is not None else "park_call.xml"
        r = self.role(name, keys=keys, timeout=timeout, duration_ms=hangup_after_ms).start()
        if not r.wait_line("final=", 10):
            raise AssertionError(f"no final answer to INVITE {dial}\n{r.describe()}\n{self.log_tail()}")
        return r

    def retrieve(self, user, dial, talk_ms=500, extra=None, nosdp=False, wait=True, timeout=30):
        keys = {"user": user, "display": f"Retriever {user}", "dial": dial, "codecs": "0 8"}
        if extra:
            keys["extra"] = extra
        r = self.role("retrieve_nosdp.xml" if nosdp else "retrieve.xml", keys=keys, timeout=timeout,
                      variables={"talk_ms": talk_ms})
        return r.run() if wait else r.start()

    def log_tail(self, n=6000):
        return f"--- parkway log:\n{self.pw.log()[-n:]}"

    def fail(self, msg, *roles):
        raise AssertionError(msg + "\n" + "\n".join(r.describe() for r in roles) + "\n" + self.log_tail())

    def expect(self, cond, msg, *roles):
        if not cond:
            self.fail(msg, *roles)

    def close(self):
        for r in self.roles:
            r.close()
        self.pw.close()
        if os.environ.get("PARKWAY_KEEP_TMP") != "1":
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def final(role):
    v = role.value("final=", "final")  # "486" (older scenarios assigned numbers, printed "486.000000")
    try:
        return int(float(v))
    except (TypeError, ValueError):
        return None


class RtpCounter:
    """A UDP socket where the parked party wants its music: counts RTP packets and payload types."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.sock.settimeout(0.2)
        self.packets = []  # (monotonic time, payload type, seq, size)
        self._stop = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self._stop:
            try:
                data, _ = self.sock.recvfrom(2048)
            except socket.timeout:
                continue
            except OSError:
                return
            if len(data) >= 12 and data[0] >> 6 == 2:
                self.packets.append((time.monotonic(), data[1] & 0x7F, (data[2] << 8) | data[3], len(data)))

    def close(self):
        if self._stop:
            return
        self._stop = True
        self.thread.join(2)
        self.sock.close()


# --------------------------------------------------------------------------------------------- cases

def case_park_invite_moh():
    """INVITE *68103 parks: 200 with a sendonly G.711 answer in the offer's order, then music at 50 packets/s."""
    with Suite() as s:
        rtp = RtpCounter()
        try:
            p = s.park("2001", "*68103", parker="1003", display="Alice", codecs="8 0", moh_port=rtp.port)
            s.expect(final(p) == 200, f"park INVITE answered {final(p)}, want 200", p)
            s.expect(p.value("final=", "answer_pt") == "8", "hold answer must pick PCMA (first in our offer)", p)
            s.expect("sendonly" in (p.value("final=", "answer_dir") or ""), "hold answer must be a=sendonly", p)
            # Music on hold: wait for the first packet, then count over 2 s.
            if not wait_until(lambda: rtp.packets, 5):
                s.fail("no RTP (music on hold) reached the parked party within 5 s", p)
            t0 = time.monotonic()
            time.sleep(2.0)
            window = [pk for pk in rtp.packets if t0 <= pk[0] < t0 + 2.0]
            rate = len(window) / 2.0
            pts = {pk[1] for pk in rtp.packets}
            sizes = {pk[3] for pk in rtp.packets}
            print(f"MOH: {rate:.1f} packets/s, payload types {pts}, sizes {sizes}")
            s.expect(40 <= rate <= 60, f"music on hold at {rate:.1f} packets/s, want 50 (20 ms)", p)
            s.expect(pts == {8}, f"music on hold payload types {pts}, want the negotiated 8 (PCMA)", p)
            s.expect(sizes == {172}, f"RTP packet sizes {sizes}, want 172 (12 + 160 bytes of G.711)", p)
            r = s.retrieve("1010", "*88103")
            s.expect(final(r) == 200, f"retrieve answered {final(r)}, want 200", r, p)
            s.expect(p.wait_line("bye", 10), "parked party never got the BYE after the retriever hung up", p, r)
            s.expect(p.lines("reinvite"), "parked party was never re-INVITEd to the retriever (bridge)", p)
            # Music stops when the call leaves the park.
            time.sleep(0.5)
            n = len(rtp.packets)
            time.sleep(1.0)
            s.expect(len(rtp.packets) - n <= 2, "music on hold still playing after the call left the park", p)
        finally:
            rtp.close()


def case_park_bare_own():
    """Bare *68 and *68%23 park against the parker's own extension (from Referred-By)."""
    with Suite() as s:
        a = s.park("2001", "*68", parker="1003")
        s.expect(final(a) == 200, f"INVITE *68 answered {final(a)}", a)
        b = s.park("2002", "*68%23", parker="1004")
        s.expect(final(b) == 200, f"INVITE *68%23 answered {final(b)}", b)
        r1 = s.retrieve("1010", "*881003")
        s.expect(final(r1) == 200, f"*881003 answered {final(r1)}: the bare *68 did not park on 1003", r1, a)
        r2 = s.retrieve("1004", "*88")  # own extension
        s.expect(final(r2) == 200, f"*88 from 1004 answered {final(r2)}: *68%23 did not park on 1004", r2, b)
        s.expect(a.wait_line("bye", 10) and b.wait_line("bye", 10), "parked parties not released", a, b)


def case_retrieve_nothing():
    """Retrieving with nothing parked gets 404."""
    with Suite() as s:
        r = s.retrieve("1010", "*88999")
        s.expect(final(r) == 404, f"retrieve of an empty extension answered {final(r)}, want 404", r)
        r2 = s.retrieve("1010", "*88")
        s.expect(final(r2) == 404, f"*88 with nothing parked answered {final(r2)}, want 404", r2)


def case_retrieve_nosdp():
    """An offerless retrieve (RFC 3725): the parked party's offer comes back in our 200, the ACK answers it."""
    with Suite() as s:
        p = s.park("2001", "*68105", parker="1003")
        s.expect(final(p) == 200, f"park answered {final(p)}", p)
        r = s.retrieve("1010", "*88105", nosdp=True)
        s.expect(final(r) == 200, f"offerless retrieve answered {final(r)}, want 200 with an offer", r, p)
        s.expect(p.wait_line("reinvite", 5), "parked party not re-INVITEd", p, r)
        s.expect(p.value("reinvite", "sdp") in ("", None),
                 "the re-INVITE to the parked party must be offerless when the retriever sent none", p)
        s.expect(p.wait_line("bye", 10), "parked party not released", p, r)


def retrieve_retrans200(nosdp):
    """The parked party's ACK for the retrieve re-INVITE is lost twice and it retransmits its 200 (byte for byte,
    park_call_retrans200.xml): RFC 3261 §13.2.2.4, every copy gets the same ACK (the re-INVITE's CSeq, the same
    body: the retriever's SDP answer when the re-INVITE was offerless) and no BYE; the call stays up until the
    retriever hangs up. Before the fix the first repeat was taken for a stray fork: ACK, then BYE CSeq 2147483647."""
    with Suite() as s:
        keys = {"user": "2001", "display": "Caller 2001", "dial": "*68120", "codecs": "0 8",
                "moh_port": free_port(), "extra": f"Referred-By: <sip:1003@{DOMAIN}>"}
        p = s.role("park_call_retrans200.xml", keys=keys, timeout=60, folder=HERE).start()
        s.expect(p.wait_line("final=", 10) and final(p) == 200, f"park answered {final(p)}", p)
        r = s.retrieve("1010", "*88120", talk_ms=3000, nosdp=nosdp)
        s.expect(final(r) == 200, f"retrieve answered {final(r)}", r, p)
        s.expect(p.wait_line("bye", 10), "parked party never got a BYE", p, r)
        p.wait()
        reinvite = (p.value("reinvite", "cseq") or "").split()
        acks = p.lines("ack n=")
        cseqs = [p.value("ack n=", "cseq", i) for i in range(len(acks))]
        bodies = [p.value("ack n=", "sdp", i) or "" for i in range(len(acks))]
        print(f"re-INVITE CSeq {reinvite}; ACKs: {list(zip(cseqs, bodies))}; BYE CSeq {p.value('bye', 'cseq')}")
        s.expect(p.value("bye", "cseq") != "2147483647",
                 "the retransmitted 200 was answered with ACK + BYE CSeq 2147483647 (taken for a stray fork)", p, r)
        s.expect(len(acks) == 3 and float(p.value("bye", "after_acks") or 0) == 3,  # SIPp prints "3.000000"
                 f"{len(acks)} ACKs for 3 copies of the 200 before the BYE, want one each", p, r)
        s.expect(reinvite and set(cseqs) == {reinvite[0]}, f"ACK CSeqs {cseqs}, want the re-INVITE's {reinvite}", p)
        s.expect(len(set(bodies)) == 1 and (bodies[0].startswith("o=") if nosdp else bodies[0] == ""),
                 f"ACK bodies {bodies}: want the same every time ({'an SDP answer' if nosdp else 'none'})", p)
        s.expect(r.lines("bye_answered=200") and not r.lines("bye_received"),
                 "the retriever was hung up from the parked side before it hung up itself", r, p)
        s.expect(not p.lines("ack extra"), "an ACK more than the 200s sent", p)
        p.result.check(successful=1)


def case_retrieve_retrans200():
    """Retrieve with SDP: each retransmission of the parked party's 200 gets the same empty ACK, no BYE."""
    retrieve_retrans200(nosdp=False)


def case_retrieve_nosdp_retrans200():
    """Offerless retrieve: each retransmission of the parked party's 200 (its offer) gets the same SDP answer ACK."""
    retrieve_retrans200(nosdp=True)


def case_retrieve_identity():
    """The retriever is shown the parked party's identity, not the feature code."""
    with Suite() as s:
        p = s.park("2001", "*68106", parker="1003", display="Alice South")
        s.expect(final(p) == 200, f"park answered {final(p)}", p)
        r = s.retrieve("1010", "*88106")
        s.expect(final(r) == 200, f"retrieve answered {final(r)}", r)
        shown = (r.value("final=", "pai") or "") + " " + (r.value("final=", "to") or "")
        s.expect("2001" in shown or "Alice" in shown,
                 f"retriever sees '{shown.strip()}', want the parked party (2001 / Alice South)", r, p)


def case_sdp_origin():
    """RFC 3264 §8: the retrieve re-INVITE the parked party gets keeps the o= of our hold answer (same username,
    session id and address) with the version one higher, not the retriever's origin."""
    with Suite() as s:
        p = s.park("2001", "*68107", parker="1003", display="Alice")
        s.expect(final(p) == 200, f"park answered {final(p)}", p)
        r = s.retrieve("1010", "*88107")
        s.expect(final(r) == 200, f"retrieve answered {final(r)}", r)
        s.expect(p.wait_line("reinvite origin=", 5), "the parked party got no re-INVITE", p)
        held = (p.value("answer origin=", "origin") or "").removeprefix("o=").split()
        now = (p.value("reinvite origin=", "origin") or "").removeprefix("o=").split()
        s.expect(len(held) == 6 and len(now) == 6, f"o= lines: hold answer {held}, re-INVITE {now}", p)
        s.expect(now[0] == held[0] and now[1] == held[1] and now[3:] == held[3:],
                 f"the re-INVITE's origin {now} is not our hold answer's {held} (username/session/address)", p, r)
        s.expect(int(now[2]) == int(held[2]) + 1, f"version {held[2]} -> {now[2]}, want +1 (the body changed)", p)


def case_retrieve_race():
    """Two retrievers at once: exactly one gets the call, the other a 4xx."""
    with Suite() as s:
        p = s.park("2001", "*68107", parker="1003")
        s.expect(final(p) == 200, f"park answered {final(p)}", p)
        r1 = s.retrieve("1010", "*88107", wait=False, talk_ms=1500)
        r2 = s.retrieve("1011", "*88107", wait=False, talk_ms=1500)
        r1.wait()
        r2.wait()
        codes = [final(r1), final(r2)]
        others = [c for c in codes if c != 200]
        s.expect(codes.count(200) == 1 and len(others) == 1 and others[0] and 400 <= others[0] < 500,
                 f"two simultaneous retrieves answered {codes}, want one 200 and one 4xx", r1, r2, p)


def case_occupied_reject():
    """occupied_policy=reject: a second park onto an occupied extension fails (486) and the first stays."""
    with Suite(params={"occupied_policy": "reject"}) as s:
        a = s.park("2001", "*68110", parker="1003")
        s.expect(final(a) == 200, f"first park answered {final(a)}", a)
        b = s.park("2002", "*68110", parker="1004")
        s.expect(final(b) == 486, f"second park onto an occupied extension answered {final(b)}, want 486", b)
        r = s.retrieve("1010", "*88110")
        s.expect(final(r) == 200 and a.wait_line("reinvite", 5), "the first parked call must still be there", r, a)


def case_occupied_stack():
    """occupied_policy=stack: both parks succeed; *88<ext> retrieves the oldest first."""
    with Suite(params={"occupied_policy": "stack"}) as s:
        a = s.park("2001", "*68111", parker="1003")
        time.sleep(0.2)
        b = s.park("2002", "*68111", parker="1004")
        s.expect(final(a) == 200 and final(b) == 200, f"stacked parks answered {final(a)}, {final(b)}", a, b)
        r = s.retrieve("1010", "*88111")
        s.expect(final(r) == 200, f"retrieve answered {final(r)}", r)
        s.expect(a.wait_line("reinvite", 5), "the oldest parked call (2001) must be retrieved first", a, b, r)
        s.expect(not b.lines("reinvite"), "the newer parked call was retrieved before the oldest", a, b)
        r2 = s.retrieve("1010", "*88111")
        s.expect(final(r2) == 200 and b.wait_line("reinvite", 5), "second retrieve must get 2002", r2, b)


GROUP = """
[[domain]]
name = "@DOMAIN@"
occupied_policy = "reject"
[[domain.group]]
name = "sales"
members = ["201", "202", "203"]
"""


def case_group_park():
    """*58 hunts the group in order from the first member, skipping occupied ones; all occupied -> 486/480."""
    with Suite(provision=GROUP) as s:
        member = s.phone("203")  # a member that is neither the parker nor parked on: still told (docs/callpark.md "Notifications")
        d = s.park("2001", "*68201", parker="1003")  # 201 occupied by a directed park
        s.expect(final(d) == 200, f"directed park answered {final(d)}", d)
        time.sleep(0.5)
        s.expect(not member.lines("notify "), "a directed park on 201 must not notify the other group members",
                 member)
        g1 = s.park("2002", "*58", parker="201")
        s.expect(final(g1) == 200, f"group park with some members occupied answered {final(g1)}", g1)
        s.expect(member.wait_line("notify ", 5) and "state=parked" in member.lines("notify ")[0],
                 "group member 203 got no park-info NOTIFY for the group park", member)
        miss = s.retrieve("1010", "*88203")
        s.expect(final(miss) == 404, f"*88203 answered {final(miss)}: group park skipped 202", miss, g1)
        g2 = s.park("2003", "*58%23", parker="201")
        s.expect(final(g2) == 200, f"second group park answered {final(g2)}", g2)
        full = s.park("2004", "*58", parker="202")
        s.expect(final(full) in (480, 486), f"group park with all members occupied answered {final(full)}, "
                 "want 486 or 480", full)
        r = s.retrieve("1010", "*88202")
        s.expect(final(r) == 200 and g1.wait_line("reinvite", 5), "first group park must be on 202", r, g1)
        r = s.retrieve("1010", "*88203")
        s.expect(final(r) == 200 and g2.wait_line("reinvite", 5), "second group park must be on 203", r, g2)


def case_refer_passthrough():
    """Park by blind transfer, passthrough: the REFER reaches the transferee, whose INVITE *68103 is parked."""
    with Suite(params={"refer_mode": "passthrough"}) as s:
        b = s.transferee("2001", refer_ms=2500)
        a = s.role("transferor.xml", keys={"user": "1003", "display": "James", "callee": "2001",
                                            "refer_to": "*68103"}, timeout=30, duration_ms=500).start()
        s.expect(b.wait_line("refer ", 10), "the REFER never reached the transferee", a, b)
        s.expect("*68103" in (b.value("refer ", "refer_to") or ""), "Refer-To was changed on the way", b)
        # The transferee does what the REFER asks: INVITE *68103 with Referred-By (RFC 3892).
        p = s.park("2001", "*68103", parker="1003")
        s.expect(final(p) == 200, f"the transferee's INVITE *68103 answered {final(p)}", p)
        a.wait()
        s.expect(a.result.returncode == 0, "the parker's REFER flow failed", a, b)
        frags = [l for l in a.lines("sipfrag=")]
        s.expect(frags and "sipfrag=200" in frags[-1], f"parker saw sipfrags {frags}, want a final 200", a)
        r = s.retrieve("1010", "*88103")
        s.expect(final(r) == 200 and p.wait_line("reinvite", 5), "the transferred call is not on 103", r, p)


ORBIT = """
[[domain]]
name = "@DOMAIN@"
[[domain.lot]]
name = "main"
first = 701
last = 720
"""

# 700 parks into a free slot of lot main; 7xx retrieves that slot, or parks into it when it is a transfer.
ORBIT_RULES = "0\t\t0\t10\texact\t700\t0\t\t\taction=park;lot=main\n" \
              "0\t\t0\t11\tregex\t^7[0-9][0-9]$\t0\t\t\taction=retrieve;lot=main\n"


def orbit_suite(**params):
    fd, path = tempfile.mkstemp(prefix="parkway-orbit-rules-", suffix=".tsv")
    with os.fdopen(fd, "w") as f:
        f.write(ORBIT_RULES)
    s = Suite(params={"rules_file": path, **params}, provision=ORBIT)
    s.rules_path = path
    return s


def case_event_list():
    """RFC 4662: one SUBSCRIBE (Supported: eventlist) to sip:lot-main@domain gets a multipart/related NOTIFY with
    the full RLMI list of the lot's slots; a park into 701 then sends a partial list with only 701 and version +1."""
    s = orbit_suite()
    try:
        w = s.role("list_watch.xml", keys={"user": "1020", "watch": "lot-main", "expires": 600}, timeout=30).start()
        s.expect(w.wait_line("notify ", 5), "no NOTIFY after the list SUBSCRIBE", w)
        p = s.park("2001", "700", parker="1003", display="Alice")
        s.expect(final(p) == 200, f"park into the lot answered {final(p)}", p)
        s.expect(w.wait_line("notify ", 5, count=2), "no list NOTIFY after the park into the lot", w, p)
        w.wait()
        notes = [{k: w_value(line, k) for k in ("ctype", "full", "list_version", "first", "more")}
                 for line in w.lines("notify ")]
        print("list NOTIFYs:", notes)
        s.expect(len(notes) == 2, f"want 2 list NOTIFYs (full, then the park), got {notes}", w)
        for n in notes:
            s.expect((n["ctype"] or "").startswith("multipart/related") and "rlmi" in (n["ctype"] or ""),
                     f"list NOTIFY Content-Type {n['ctype']}", w)
        s.expect(notes[0]["full"] == "true" and notes[0]["list_version"] == "0" and notes[0]["more"],
                 f"first NOTIFY must be the full list (version 0, every slot): {notes[0]}", w)
        s.expect(notes[1]["full"] == "false" and notes[1]["list_version"] == "1" and notes[1]["first"] == "701"
                 and not notes[1]["more"], f"the park must send only slot 701, version 1: {notes[1]}", w)
    finally:
        s.close()
        os.unlink(s.rules_path)


def case_transfer_to_slot():
    """Orbit parking by transfer (FreeSWITCH valet / 3CX style): a blind transfer to the empty slot 702 parks
    into it (passthrough: the REFER reaches the transferee, whose INVITE 702 with Referred-By is parked); a
    transfer to the now occupied 702 gets 486 and never reaches the parked caller; dialling 702 retrieves."""
    s = orbit_suite(refer_mode="passthrough")
    try:
        empty = s.retrieve("1010", "705")
        s.expect(final(empty) == 404, f"dialling the empty slot 705 (no transfer) answered {final(empty)}, want 404",
                 empty)
        b = s.transferee("2001", refer_ms=2500)
        a = s.role("transferor.xml", keys={"user": "1003", "display": "James", "callee": "2001",
                                            "refer_to": "702"}, timeout=30, duration_ms=500).start()
        s.expect(b.wait_line("refer ", 10), "the REFER to 702 never reached the transferee", a, b)
        p = s.park("2001", "702", parker="1003")
        s.expect(final(p) == 200, f"the transferee's INVITE 702 answered {final(p)}, want 200 (parked)", p)
        a.wait()
        s.expect(a.result.returncode == 0, "the parker's REFER flow failed", a, b)
        busy = s.park("2002", "702", parker="1004")
        s.expect(final(busy) == 486, f"a transfer to the occupied slot 702 answered {final(busy)}, want 486", busy)
        s.expect(not p.lines("reinvite"), "the parked caller was connected to the second transferee", p, busy)
        r = s.retrieve("1010", "702")
        s.expect(final(r) == 200 and p.wait_line("reinvite", 5), "dialling 702 did not retrieve the parked call",
                 r, p)
    finally:
        s.close()
        os.unlink(s.rules_path)


def case_refer_takeover():
    """Park by blind transfer, takeover: Parkway answers the REFER (202 + an immediate 100 Trying NOTIFY),
    takes the transferee over with INVITE/Replaces, parks it, and reports 200 OK in the final sipfrag."""
    with Suite(params={"refer_mode": "takeover"}) as s:
        b = s.transferee("2001", refer_ms=2000)
        a = s.role("transferor.xml", keys={"user": "1003", "display": "James", "callee": "2001",
                                            "refer_to": "*68103"}, timeout=30, duration_ms=500).start()
        s.expect(a.wait_line("call=200", 10), "the parker's call to the transferee failed", a, b)
        t0 = time.monotonic()
        s.expect(a.wait_line("sipfrag=100", 7), "no 'SIP/2.0 100 Trying' NOTIFY within 7 s of the REFER "
                 "(Grandstream gives up)", a, b)
        print(f"first refer NOTIFY after {time.monotonic() - t0:.2f} s (includes the 0.5 s talk before the REFER)")
        a.wait()
        frags = a.lines("sipfrag=")
        s.expect(frags and "sipfrag=200" in frags[-1], f"parker saw sipfrags {frags}, want a final 200", a, b)
        # The NOTIFYs we send for the transferee carry its Contact (the parker's remote target, RFC 3261
        # §12.2.1.1), never Parkway's, and CSeqs that grow (§12.2.2)
        peer_contact = a.value("call=200", "contact")
        notes = [(w_value(l, "contact"), int(w_value(l, "cseq") or 0)) for l in a.lines("refer_notify ")]
        s.expect(len(notes) >= 2 and all(c == peer_contact for c, _ in notes),
                 f"refer NOTIFY Contacts {notes}, want the transferee's {peer_contact}", a)
        s.expect(all(x[1] < y[1] for x, y in zip(notes, notes[1:])), f"refer NOTIFY CSeqs do not grow: {notes}", a)
        s.expect(b.wait_line("call ", 5, count=2) and any(w_value(l, "replaces") for l in b.lines("call ")),
                 "the transferee never got Parkway's INVITE with Replaces", b)
        s.expect(not b.lines("refer "), "in takeover mode the REFER must not reach the transferee", b)
        r = s.retrieve("1010", "*88103")
        s.expect(final(r) == 200, f"retrieve after a takeover park answered {final(r)}", r, b)
        s.expect(b.wait_line("reinvite", 5), "the taken-over transferee was not re-INVITEd on retrieve", b, r)


def blf_notifies(w):
    """The watcher's NOTIFYs in order, each with its phase: 'watch', 'refresh' or 'unsubscribe'."""
    out, phase = [], "watch"
    for line in w.text().splitlines():
        if line.startswith("refresh="):
            phase = "refresh"
        elif line.startswith("unsubscribe="):
            phase = "unsubscribe"
        elif line.startswith("notify "):
            n = {k: w_value(line, k) for k in ("version", "doc", "dialog_state", "call_id", "local_tag",
                                               "remote_tag", "identity", "substate", "park", "content_type")}
            n["phase"] = phase
            out.append(n)
    return out


def check_watch_cycle(s, w, parked_user):
    """A watcher that saw a call parked and then leave: versions 0,1,2... (also checked inside SIPp), full idle
    state first, the parked dialog with ids and identity, an idle end, a full refresh, a terminated unsubscribe."""
    n = blf_notifies(w)
    s.expect(w.result is not None and w.result.returncode == 0 and not w.lines("version_error"),
             "BLF watcher failed (a version gap, a missing NOTIFY or a late 200)", w)
    s.expect([x["version"] for x in n] == [str(i) for i in range(len(n))], f"versions {[x['version'] for x in n]}"
             " are not 0,1,2,... (RFC 4235 §4.1)", w)
    watch = [x for x in n if x["phase"] == "watch"]
    s.expect(watch and watch[0]["doc"] == "full" and not watch[0]["dialog_state"],
             f"the first NOTIFY must be the full idle state: {watch[:1]}", w)
    active = [x for x in watch if x["dialog_state"] in ("early", "confirmed")]
    s.expect(active, "no NOTIFY showed the parked call", w)
    a = active[0]
    s.expect(a["call_id"] and a["local_tag"] and a["remote_tag"], f"parked dialog without call-id/tags: {a}", w)
    s.expect(parked_user in (a["identity"] or ""), f"parked dialog identity {a['identity']}, want {parked_user}", w)
    s.expect(watch[-1]["dialog_state"] in ("terminated", ""), f"last NOTIFY still shows a parked call: "
             f"{watch[-1]}", w)
    refresh = [x for x in n if x["phase"] == "refresh"]
    s.expect(len(refresh) == 1 and refresh[0]["doc"] == "full", f"refresh must bring one full NOTIFY: {refresh}", w)
    unsub = [x for x in n if x["phase"] == "unsubscribe"]
    s.expect(len(unsub) == 1 and "terminated" in (unsub[0]["substate"] or ""),
             f"unsubscribe must end with Subscription-State: terminated: {unsub}", w)
    return n


def w_value(line, key):
    m = re.search(r"(?:^| )" + re.escape(key) + r"=(.*?)(?= [a-z_]+=|$)", line)
    return m.group(1).strip() if m else None


def case_blf():
    """BLF on *88103: full state v0 (idle), park -> v1 with the parked dialog, retrieve -> v2 terminated,
    refresh -> v3 full, unsubscribe -> v4 with Subscription-State terminated. SIPp checks every version."""
    with Suite() as s:
        w = s.role("blf_watch.xml", keys={"user": "1020", "watch": "*88103", "expires": 600},
                   timeout=60).start()
        s.expect(w.wait_line("notify ", 5), "no NOTIFY after SUBSCRIBE", w)
        p = s.park("2001", "*68103", parker="1003", display="Alice")
        s.expect(final(p) == 200, f"park answered {final(p)}", p)
        s.expect(w.wait_line("notify ", 5, count=2), "no NOTIFY to the watcher after the park", w, p)
        r = s.retrieve("1010", "*88103")
        s.expect(final(r) == 200, f"retrieve answered {final(r)}", r)
        w.wait()
        n = check_watch_cycle(s, w, "2001")
        print("BLF versions/states:", [(x["version"], x["doc"], x["dialog_state"], x["phase"]) for x in n])


def case_blf_confirmed_pickup():
    """blf_state=confirmed, and a phone picks the parked call up with INVITE/Replaces from the NOTIFY's ids."""
    with Suite(params={"blf_state": "confirmed"}) as s:
        w = s.role("blf_watch.xml", keys={"user": "1020", "watch": "*88104", "expires": 600},
                   timeout=60).start()
        s.expect(w.wait_line("notify ", 5), "no NOTIFY after SUBSCRIBE", w)
        p = s.park("2001", "*68104", parker="1003")
        s.expect(final(p) == 200, f"park answered {final(p)}", p)
        s.expect(w.wait_line("notify ", 5, count=2), "no NOTIFY after the park", w)
        d = blf_notifies(w)[-1]
        s.expect(d["dialog_state"] == "confirmed", f"blf_state=confirmed but the dialog is {d['dialog_state']}", w)
        # RFC 3891: to-tag = the notifier's local tag, from-tag = the remote tag.
        repl = f"Replaces: {d['call_id']};to-tag={d['local_tag']};from-tag={d['remote_tag']}"
        r = s.retrieve("1010", "*88104", extra=repl)
        s.expect(final(r) == 200, f"INVITE with {repl} answered {final(r)}", r, p)
        s.expect(p.wait_line("reinvite", 5), "Replaces pickup did not connect the parked party", p, r)
        w.wait()
        check_watch_cycle(s, w, "2001")


def case_replaces_pickup():
    """INVITE with Replaces naming the parked dialog (sent to the parked-on extension) retrieves it."""
    with Suite() as s:
        w = s.role("blf_watch.xml", keys={"user": "1020", "watch": "*88108", "expires": 600},
                   timeout=60).start()
        s.expect(w.wait_line("notify ", 5), "no NOTIFY after SUBSCRIBE", w)
        p = s.park("2001", "*68108", parker="1003")
        s.expect(w.wait_line("notify ", 5, count=2), "no NOTIFY after the park", w, p)
        d = blf_notifies(w)[-1]
        repl = f"Replaces: {d['call_id']};to-tag={d['local_tag']};from-tag={d['remote_tag']}"
        r = s.retrieve("1010", "108", extra=repl)
        s.expect(final(r) == 200, f"INVITE sip:108 with {repl} answered {final(r)}", r, p)
        s.expect(p.wait_line("reinvite", 5), "Replaces pickup did not connect the parked party", p, r)
        bad = s.retrieve("1010", "108", extra=f"Replaces: nope@x;to-tag=a;from-tag=b")
        s.expect(final(bad) in (404, 480, 481), f"Replaces naming no dialog answered {final(bad)}", bad)


def case_callinfo():
    """BroadWorks SCA: call-info subscription gets <callpark/> then <parked><identity> then <callpark/>."""
    with Suite() as s:
        w = s.role("callinfo_watch.xml", keys={"user": "1021", "watch": "103", "expires": 600},
                   timeout=60).start()
        s.expect(w.wait_line("notify ", 5), "no NOTIFY after SUBSCRIBE call-info", w)
        p = s.park("2001", "*68103", parker="1003", display="C. Parked")
        s.expect(final(p) == 200, f"park answered {final(p)}", p)
        s.expect(w.wait_line("notify ", 5, count=2), "no call-info NOTIFY after the park", w, p)
        r = s.retrieve("1010", "*88103")
        s.expect(final(r) == 200, f"retrieve answered {final(r)}", r)
        w.wait()
        n = blf_notifies(w)
        states = [x["park"] for x in n if x["phase"] == "watch"]
        s.expect(w.result.returncode == 0, "call-info watcher failed", w)
        s.expect(states and states[0] == "callpark/" and "parked" in states and states[-1] == "callpark/",
                 f"call-info bodies {states}, want <callpark/> ... <parked> ... <callpark/>", w)
        s.expect(any("C. Parked" in (x["identity"] or "") or "2001" in (x["identity"] or "") for x in n),
                 "the <parked><identity> does not name the parked party", w)
        s.expect("x-broadworks-callpark-info" in (w_value(w.lines("notify ")[0], "content_type") or ""),
                 "wrong Content-Type for call-info", w)


def case_parkinfo_481():
    """park-info NOTIFYs go to the parked-on extension's phone; a 481 answer is tolerated, never retried."""
    with Suite() as s:
        ph = s.phone("103", notify_code=481)
        p = s.park("2001", "*68103", parker="1003", display="Alice")
        s.expect(final(p) == 200, f"park answered {final(p)}", p)
        s.expect(ph.wait_line("notify ", 5), "the parked-on phone got no park-info NOTIFY", ph)
        s.expect("park-info" in (ph.value("notify ", "event") or ""), "NOTIFY without Event: park-info", ph)
        time.sleep(3)  # a retry loop would show up here
        parked = [l for l in ph.lines("notify ") if "state=parked" in l]
        s.expect(len(parked) == 1, f"park-info for one park sent {len(parked)} times after a 481", ph)
        r = s.retrieve("1010", "*88103")
        s.expect(final(r) == 200, "the call must still be retrievable after a 481 to park-info", r, p)
        s.expect(ph.wait_line("notify ", 5, count=2), "no park-info NOTIFY for the retrieve", ph)
        s.expect(ph.lines("notify ")[-1].find("state=retrieved") >= 0, "last park-info must say retrieved", ph)


def case_retrieve_replaces():
    """retrieve_mode=replaces: the retriever's INVITE goes to the parked party with Replaces naming the park
    dialog (the parked party must be a UAS for it: here the transferee parked by a takeover)."""
    with Suite(params={"refer_mode": "takeover", "retrieve_mode": "replaces"}) as s:
        b = s.transferee("2001", refer_ms=2000, calls=3)
        a = s.role("transferor.xml", keys={"user": "1003", "display": "James", "callee": "2001",
                                            "refer_to": "*68103"}, timeout=30, duration_ms=300).run()
        frags = a.lines("sipfrag=")
        s.expect(frags and "sipfrag=200" in frags[-1], f"takeover park failed, sipfrags {frags}", a, b)
        parked = [w_value(l, "replaces") for l in b.lines("call ") if w_value(l, "replaces")]
        s.expect(len(parked) == 1, "the transferee was not taken over with Replaces", b)
        r = s.retrieve("1010", "*88103", talk_ms=500)
        s.expect(final(r) == 200, f"retrieve (replaces mode) answered {final(r)}", r, b)
        s.expect(b.wait_line("call ", 5, count=3), "the retriever's INVITE did not reach the parked party", b, r)
        calls = b.lines("call ")
        park_leg = w_value(calls[1], "call_id")  # Parkway's takeover INVITE = the park dialog
        repl = w_value(calls[2], "replaces") or ""
        s.expect(repl.split(";")[0].strip() == park_leg,
                 f"the retriever's INVITE must carry Replaces naming the park dialog {park_leg}, got '{repl}'", b)

RECALL = """
[[domain]]
name = "@DOMAIN@"
recall_time = 2
ring_time = 3
retry = 2
recall_mode = "parker"
"""


def case_recall_parker():
    """After recall_time the parker's phone rings (Alert-Info, a recall display name); answering connects."""
    with Suite(provision=RECALL) as s:
        ph = s.phone("1003", answer=1, talk_ms=1000)
        t0 = time.monotonic()
        p = s.park("2001", "*68120", parker="1003", display="Alice")
        s.expect(final(p) == 200, f"park answered {final(p)}", p)
        s.expect(ph.wait_line("invite ", 8), "the parker was not recalled within 8 s (recall_time 2 s)", ph, p)
        took = time.monotonic() - t0
        print(f"recall after {took:.2f} s (recall_time 2 s)")
        s.expect(took >= 1.5, f"recall came after {took:.2f} s, before the 2 s recall time", ph)
        s.expect(ph.value("invite ", "alert_info"), "recall INVITE without Alert-Info", ph)
        s.expect("recall" in (ph.value("invite ", "from") or "").lower(), "recall INVITE display must say recall",
                 ph)
        s.expect(ph.wait_line("answered", 5), "recall not answered", ph)
        s.expect(p.wait_line("reinvite", 5), "answering the recall did not connect the parked party", p, ph)
        s.expect(p.wait_line("bye", 10), "parked party not released after the recall call ended", p, ph)


def case_recall_retry():
    """recall_mode=parker: no answer -> CANCEL, then the parker is rung again after the retry time."""
    with Suite(provision=RECALL) as s:
        ph = s.phone("1003", answer=0)
        p = s.park("2001", "*68121", parker="1003")
        s.expect(final(p) == 200, f"park answered {final(p)}", p)
        s.expect(ph.wait_line("invite ", 8), "no recall INVITE", ph, p)
        s.expect(ph.wait_line("cancelled", 8), "the unanswered recall was not CANCELled after ring_time", ph)
        s.expect(ph.wait_line("invite ", 10, count=2), "no retry of the recall after the retry time", ph, p)


def case_self_park():
    """A caller dials *68103 itself (no REFER, no Referred-By): it is not its own parker, and the recall rings
    103's phone, never the caller's own registered phone."""
    with Suite(provision=RECALL) as s:
        ext = s.phone("103", answer=1, talk_ms=1000)
        own = s.phone("2001", answer=1, talk_ms=1000)  # the caller's own phone, registered: must stay silent
        p = s.park("2001", "*68103", display="Alice")
        s.expect(final(p) == 200, f"park answered {final(p)}", p)
        s.expect(ext.wait_line("invite ", 8), "103's phone was not recalled within 8 s (recall_time 2 s)", ext, p)
        s.expect(ext.wait_line("answered", 5), "recall not answered", ext)
        s.expect(p.wait_line("reinvite", 5), "answering the recall did not connect the parked party", p, ext)
        s.expect(not own.wait_line("invite ", 0.5), "the recall rang the caller's own phone", own)


RECALL_ALT = """
[[domain]]
name = "@DOMAIN@"
recall_time = 2
ring_time = 3
alternate_wait = 2
retry = 2
recall_mode = "parker_then_alternate"
alternate = "2000"
"""


def case_recall_alternate():
    """recall_mode=parker_then_alternate: the parker does not answer, the alternate does and gets the call."""
    with Suite(provision=RECALL_ALT) as s:
        parker = s.phone("1003", answer=0)
        alt = s.phone("2000", answer=1, talk_ms=1000)
        p = s.park("2001", "*68122", parker="1003")
        s.expect(final(p) == 200, f"park answered {final(p)}", p)
        s.expect(parker.wait_line("invite ", 8), "parker not recalled first", parker, p)
        s.expect(alt.wait_line("invite ", 15), "the alternate was never rung", alt, parker, p)
        s.expect(parker.wait_line("cancelled", 5), "the parker's ringing was not cancelled", parker)
        s.expect(alt.wait_line("answered", 5) and p.wait_line("reinvite", 5),
                 "answering at the alternate did not connect the parked party", alt, p)


def case_hangup_parked():
    """The parked party hangs up while parked: the slot is freed and watchers see it end."""
    with Suite() as s:
        w = s.role("blf_watch.xml", keys={"user": "1020", "watch": "*88130", "expires": 600},
                   timeout=60).start()
        s.expect(w.wait_line("notify ", 5), "no NOTIFY after SUBSCRIBE", w)
        p = s.park("2001", "*68130", parker="1003", hangup_after_ms=1500)
        s.expect(final(p) == 200, f"park answered {final(p)}", p)
        s.expect(p.wait_line("hangup=", 5), "parked party's BYE not answered", p)
        s.expect(p.value("hangup=", "hangup") == "200", "parked party's BYE not answered 200", p)
        w.wait()
        check_watch_cycle(s, w, "2001")
        r = s.retrieve("1010", "*88130")
        s.expect(final(r) == 404, f"retrieve after the parked party left answered {final(r)}, want 404", r)


def case_hangup_recalling():
    """The parked party hangs up while its recall is ringing: the ringing phone gets CANCEL."""
    with Suite(provision=RECALL.replace("ring_time = 3", "ring_time = 20")) as s:
        ph = s.phone("1003", answer=0)
        p = s.park("2001", "*68131", parker="1003", hangup_after_ms=4000)
        s.expect(final(p) == 200, f"park answered {final(p)}", p)
        s.expect(ph.wait_line("invite ", 8), "no recall INVITE", ph, p)
        s.expect(p.wait_line("hangup=", 8), "parked party's BYE not answered", p)
        s.expect(ph.wait_line("cancelled", 5), "the recall kept ringing after the parked party hung up", ph, p)


def case_repark():
    """Re-park from a bridged call: the retriever REFERs the parked party to *68104."""
    with Suite() as s:
        p = s.park("2001", "*68103", parker="1003")
        s.expect(final(p) == 200, f"park answered {final(p)}", p)
        a = s.role("transferor.xml", keys={"user": "1010", "display": "Retriever", "callee": "*88103",
                                            "refer_to": "*68104"}, timeout=30, duration_ms=800).run()
        s.expect(a.result.returncode == 0, "retrieve + REFER to *68104 failed", a, p)
        frags = a.lines("sipfrag=")
        s.expect(frags and "sipfrag=200" in frags[-1], f"re-park sipfrags {frags}, want a final 200", a)
        r = s.retrieve("1011", "*88104")
        s.expect(final(r) == 200, f"retrieve from 104 after the re-park answered {final(r)}", r, p)
        s.expect(len(p.lines("reinvite")) >= 2, "parked party was not reconnected after the re-park", p)


RESTART = """
[[domain]]
name = "@DOMAIN@"
recall_time = 10
ring_time = 5
recall_mode = "parker"
"""


def case_restart_kill9():
    """kill -9 with calls parked, restart: every call is still retrievable and the recall fires on time."""
    with Suite(provision=RESTART) as s:
        ph = s.phone("1004", answer=1, talk_ms=1000, timeout=90)
        rtp = RtpCounter()
        s.roles.append(rtp)
        a = s.park("2001", "*68103", parker="1003", timeout=90, moh_port=rtp.port)
        t_b = time.monotonic()
        b = s.park("2002", "*68104", parker="1004", timeout=90)
        s.expect(final(a) == 200 and final(b) == 200, "parks failed", a, b)
        time.sleep(1.0)
        s.pw.kill9()
        time.sleep(0.5)
        t_restart = time.monotonic()
        s.pw.start()
        # Music on hold resumes for the restored call (same port, or a re-INVITE with the new one).
        s.expect(wait_until(lambda: any(t > t_restart for t, *_ in rtp.packets), 5),
                 "music on hold did not resume after the restart", a)
        r = s.retrieve("1010", "*88103")
        s.expect(final(r) == 200, f"after kill -9 and restart, *88103 answered {final(r)}", r, a)
        s.expect(a.wait_line("reinvite", 5), "restored call 2001 was not reconnected on retrieve", a, r)
        # 104's recall was due 10 s after its park; it must come on time despite the crash.
        s.expect(ph.wait_line("invite ", 20), "the restored call on 104 was never recalled", ph, b)
        took = time.monotonic() - t_b
        print(f"recall of the restored call after {took:.2f} s (recall_time 10 s, daemon killed at ~1 s)")
        s.expect(8.5 <= took <= 14, f"recall of the restored call after {took:.2f} s, want ~10 s", ph)
        s.expect(b.wait_line("reinvite", 8), "answering the recall of a restored call did not connect it", b, ph)


CASES = {name[5:]: fn for name, fn in list(globals().items()) if name.startswith("case_")}

if __name__ == "__main__":
    if len(sys.argv) < 3 or sys.argv[2] not in CASES:
        print("usage: test_park.py <parkway binary> <case>\ncases: " + " ".join(CASES))
        sys.exit(2)
    CASES[sys.argv[2]]()
    print(f"{sys.argv[2]}: OK")
