#!/usr/bin/env python3
"""Black-box hardening tests: the real daemon against what a stranger on the network could send.

    test_blackbox.py <parkway binary> <stall module .so> <case>
"""
import os
import re
import shutil
import signal
import socket
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
from parkway_blackbox import Parkway, free_port, send_udp  # noqa: E402

BINARY, STALL = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])


def options(port, extra=""):
    return (f"OPTIONS sip:127.0.0.1:{port} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:$LPORT;branch=z9hG4bK-{time.time_ns()};rport\r\n"
            f"Max-Forwards: 70\r\nFrom: <sip:t@127.0.0.1>;tag=1\r\nTo: <sip:127.0.0.1>\r\n"
            f"Call-ID: {time.time_ns()}@t\r\nCSeq: 1 OPTIONS\r\n{extra}Content-Length: 0\r\n\r\n")


def case_sigterm_stuck_sip_thread():
    """A SIP thread stuck in a module must not keep SIGTERM from stopping the daemon."""
    with Parkway(BINARY, modules=[STALL, "registrar", "router"], proxy={"stop_timeout_ms": 1000}) as pw:
        assert send_udp(pw.port, options(pw.port)) is not None, "the daemon does not answer OPTIONS"
        send_udp(pw.port, options(pw.port, "X-Stall-Ms: 60000\r\n"), expect_reply=False)
        time.sleep(0.3)
        assert send_udp(pw.port, options(pw.port), timeout=0.5) is None, "the SIP thread was expected to be stuck"
        t = time.monotonic()
        pw.proc.send_signal(signal.SIGTERM)
        try:
            rc = pw.proc.wait(10)
        except Exception:
            raise AssertionError("SIGTERM did not stop a daemon whose SIP thread is stuck (10 s)")
        took = time.monotonic() - t
        assert took < 5, f"stopping took {took:.1f} s"
        assert rc == 1, f"exit code {rc}, expected 1 (forced)"
        assert pw.wait_log("did not stop within 1000 ms"), "no log line says why it exited"


def case_fd_limit_too_low():
    """A TCP connection cap that cannot fit the open-file limit is refused at start, naming the setting."""
    import resource
    import subprocess
    import tempfile
    with tempfile.TemporaryDirectory(prefix="parkway-fd-") as d:
        cfg = os.path.join(d, "parkway.toml")
        with open(cfg, "w") as f:
            f.write('[proxy]\nlisten = ["udp:127.0.0.1:0"]\ndatabase = "p.db"\ntcp_max_connections = 4000\n')
        p = subprocess.run([BINARY, "--config", cfg], capture_output=True, text=True, timeout=20,
                           preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (1024, 1024)))
        assert p.returncode == 2, f"exit {p.returncode}: {p.stderr}"
        assert "proxy.tcp_max_connections" in p.stderr and "open-file limit (1024)" in p.stderr, p.stderr


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def drain(sk):
    n = 0
    sk.setblocking(False)
    try:
        while True:
            sk.recv(65535)
            n += 1
    except OSError:
        pass
    return n


def blast_udp(port, msgs, sources):
    """Send each message from one of the source addresses (127.0.0.x), reading nothing back."""
    socks = []
    for src in sources:
        sk = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sk.bind((src, 0))
        sk.setblocking(False)
        socks.append(sk)
    for i, m in enumerate(msgs):
        try:
            socks[i % len(socks)].sendto(m[:65000], ("127.0.0.1", port))
        except OSError:
            pass
        if i % 200 == 199:
            time.sleep(0.05)  # a burst, not a denial of service of the test machine
    for sk in socks:
        sk.close()


def blast_tcp(port, msgs, source, connections=16):
    """Several connections from one source: each gets a run of messages; every fourth stops mid-message."""
    conns = []
    per = max(1, len(msgs) // connections)
    for c in range(connections):
        sk = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sk.bind((source, 0))
        sk.settimeout(2)
        try:
            sk.connect(("127.0.0.1", port))
            data = b"".join(msgs[c * per:(c + 1) * per])
            if c % 4 == 3:
                data = data[:len(data) // 2]
            sk.sendall(data)
        except OSError:
            pass
        conns.append(sk)
    time.sleep(0.5)
    for sk in conns:
        sk.close()


def case_hostile_traffic():
    """A few thousand hostile messages over UDP and TCP while calls are parked: the daemon keeps answering,
    the parked calls stay retrievable, and memory stays bounded."""
    sys.path.insert(0, os.path.join(HERE, "..", "sipp-park"))
    import hostile
    import test_park as tp  # its Suite: a daemon with call park, SIPp roles

    with tp.Suite(admin=True) as s:
        a = s.park("2001", "*68103", parker="1003", timeout=150)
        b = s.park("2002", "*68104", parker="1004", timeout=150)
        s.expect(tp.final(a) == 200 and tp.final(b) == 200, "parks failed", a, b)
        pid = s.pw.proc.pid
        rss_before = rss_kb(pid)
        msgs = hostile.corpus(3000)
        # spread over eight sources so that the rate limiter (500/s, burst 1000 each) lets the corpus in
        blast_udp(s.pw.port, msgs, [f"127.0.0.{i}" for i in range(2, 10)])
        blast_tcp(s.pw.port, msgs[:800], "127.0.0.10")
        time.sleep(1.0)
        s.expect(s.pw.alive(), "the daemon died under hostile traffic")
        s.expect(send_udp(s.pw.port, options(s.pw.port)) is not None, "the daemon no longer answers OPTIONS")
        status, body = s.pw.admin("GET", "/api/parked")
        s.expect(status == 200, f"GET /api/parked answered {status}: {body}")
        parked = {c.get("extension") for c in body.get("parked", [])}
        s.expect({"103", "104"} <= parked, f"parked calls lost: {body}")
        r = s.retrieve("1010", "*88103")
        for _ in range(3):  # the overload gate may still be shut from the flood: 503 + Retry-After, try again
            if tp.final(r) != 503:
                break
            time.sleep(1.2)
            r = s.retrieve("1010", "*88103")
        s.expect(tp.final(r) == 200, f"*88103 answered {tp.final(r)} after the hostile traffic", r, a)
        rss_after = rss_kb(pid)
        print(f"RSS {rss_before} kB -> {rss_after} kB after {len(msgs)} UDP and 800 TCP messages")
        s.expect(rss_after - rss_before < 64 * 1024, f"RSS grew from {rss_before} to {rss_after} kB")
        # a flood from one more source is cut off by the rate limiter: the answers stop
        flood = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        flood.bind(("127.0.0.11", 0))
        flood.settimeout(0.3)
        flood.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        answers = 0
        for i in range(2500):  # about 4,000 a second: fast enough to be a flood, slow enough to be read
            flood.sendto(options(s.pw.port).replace("$LPORT", "9").encode(), ("127.0.0.1", s.pw.port))
            if i % 20 == 19:
                time.sleep(0.005)
                answers += drain(flood)
        time.sleep(0.3)
        answers += drain(flood)
        print(f"flood of 2500 OPTIONS from one source: {answers} answers")
        s.expect(answers < 1500, f"a flood of 2500 requests got {answers} answers: no ban")
        s.expect(s.pw.wait_log("limit rate_ban reached: 127.0.0.11"), "the flooding source was not banned")
        s.expect(send_udp(s.pw.port, options(s.pw.port)) is not None, "a legitimate source is no longer served")


# ------------------------------------------------------------------------------------------- graceful overload

DOMAIN = "pbx.example.com"
SDP = ("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
       "m=audio 9 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n")


class Phone:
    """One UDP socket that sends requests and reads the answers (1xx skipped)."""

    def __init__(self, port):
        self.target = ("127.0.0.1", port)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.n = 0

    def send(self, text):
        self.sock.sendto(text.encode(), self.target)

    def request(self, method, ruri, call_id, to_tag="", cseq=1, extra="", body="", oc=False):
        self.n += 1
        via = f"SIP/2.0/UDP 127.0.0.1:{self.port};branch=z9hG4bK-{call_id}-{self.n}-{time.time_ns()};rport"
        to = f"<{ruri}>" + (f";tag={to_tag}" if to_tag else "")
        ctype = "Content-Type: application/sdp\r\n" if body else ""
        return (f"{method} {ruri} SIP/2.0\r\nVia: {via}{';oc' if oc else ''}\r\nMax-Forwards: 70\r\n"
                f"From: <sip:u{self.port}@{DOMAIN}>;tag=f{self.port}\r\nTo: {to}\r\nCall-ID: {call_id}\r\n"
                f"CSeq: {cseq} {method}\r\nContact: <sip:u{self.port}@127.0.0.1:{self.port}>\r\n{extra}{ctype}"
                f"Content-Length: {len(body)}\r\n\r\n{body}")

    def answer(self, timeout=5.0, method=None):
        """The next final response (to `method` when given), or None."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            self.sock.settimeout(max(end - time.monotonic(), 0.01))
            try:
                data, _ = self.sock.recvfrom(65535)
            except socket.timeout:
                return None
            text = data.decode(errors="replace")
            if text.startswith("SIP/2.0 1") or not text.startswith("SIP/2.0 "):
                continue
            if method and not re.search(rf"^CSeq:\s*\d+ {method}\s*$", text, re.M | re.I):
                continue
            return text
        return None

    def close(self):
        self.sock.close()


def status(reply):
    return int(reply.split(" ", 2)[1]) if reply else None


def park_call(phone, ext):
    """INVITE *68<ext>: the call is parked (200, ACK). Returns the 200's To tag."""
    ruri = f"sip:*68{ext}@{DOMAIN}"
    cid = f"park-{ext}-{phone.port}"
    phone.send(phone.request("INVITE", ruri, cid, extra=f"Referred-By: <sip:1003@{DOMAIN}>\r\n", body=SDP))
    ok = phone.answer(method="INVITE")
    assert status(ok) == 200, f"parking on {ext} answered: {ok}"
    tag = re.search(r"^To:.*;tag=([^;\s]+)", ok, re.M | re.I).group(1)
    phone.send(phone.request("ACK", ruri, cid, to_tag=tag))
    return ruri, cid, tag


def overload_daemon(extra_proxy):
    work = tempfile.mkdtemp(prefix="parkway-overload-")
    provision = os.path.join(work, "provision.toml")
    with open(provision, "w") as f:
        f.write(f'[[domain]]\nname = "{DOMAIN}"\nmax_parked = 0\n')
    moh = min((free_port() // 2) * 2, 65534 - 16)
    proxy = {"domains": [DOMAIN, "127.0.0.1"], "trusted_peers": ["127.0.0.1"]}
    proxy.update(extra_proxy)
    return Parkway(BINARY, modules=[STALL, "registrar", "callpark", "router"], workdir=work, admin=True,
                   proxy=proxy, module_params={"callpark": {"database": os.path.join(work, "park.db"),
                                                            "moh_ip": "127.0.0.1", "moh_port_min": moh,
                                                            "moh_port_max": moh + 8, "park_info": False,
                                                            "provision_file": provision}})


def metric(pw, name):
    status_, text = pw.admin("GET", "/metrics")
    m = re.search(rf"^{name}(?:{{[^}}]*}})? ([0-9.e+]+)$", text if isinstance(text, str) else "", re.M)
    return float(m.group(1)) if m else None


def case_overload_gate():
    """A stalled SIP thread: new INVITEs get 503 + Retry-After (with RFC 7339 parameters when the Via asks),
    the BYE of a parked call and a CANCEL are still served, and new calls are taken again once it catches up."""
    with overload_daemon({"overload_queue_ms": 200, "overload_soft_ms": 100, "overload_retry_after_s": 3}) as pw:
        a, n, s = Phone(pw.port), Phone(pw.port), Phone(pw.port)
        try:
            # not overloaded: an RFC 7339 client is told oc=0 (no reduction), with validity and sequence
            n.send(n.request("OPTIONS", f"sip:127.0.0.1:{pw.port}", "oc-idle", oc=True))
            r = n.answer()
            assert status(r) == 200, f"OPTIONS answered {r}"
            assert re.search(r'^Via:.*;oc=0;oc-algo="loss";oc-validity=500;oc-seq=[0-9.]+', r, re.M), r
            ruri, cid, tag = park_call(a, "103")
            # block the SIP thread 1.5 s; meanwhile a new INVITE, the parked call's BYE and a CANCEL queue up
            s.send(s.request("OPTIONS", f"sip:127.0.0.1:{pw.port}", "stall", extra="X-Stall-Ms: 1500\r\n"))
            time.sleep(0.4)
            n.send(n.request("INVITE", f"sip:*68104@{DOMAIN}", "new-104", body=SDP, oc=True))
            a.send(a.request("BYE", ruri, cid, to_tag=tag, cseq=2))
            n.send(n.request("CANCEL", f"sip:*68109@{DOMAIN}", "cancel-109"))
            refused = n.answer(method="INVITE")
            assert status(refused) == 503, f"a new INVITE while the SIP thread is 1 s behind got: {refused}"
            assert re.search(r"^Retry-After:\s*3\s*$", refused, re.M), refused
            # refused statelessly (RFC 3261 §8.2.7, docs/limits.md "Refusing statelessly"): no transaction, a To
            # tag of the gate's own; its ACK is dropped (nothing is routed for it)
            assert re.search(r"^To:.*;tag=pw503-", refused, re.M), f"not the stateless refusal: {refused}"
            v = re.search(r"^Via:.*$", refused, re.M).group(0)
            assert re.search(r';oc=(\d+);oc-algo="loss";oc-validity=500;oc-seq=[0-9.]+', v), v
            assert int(re.search(r";oc=(\d+)", v).group(1)) > 0, f"overloaded, yet no reduction asked: {v}"
            bye = a.answer(method="BYE")
            assert status(bye) == 200, f"the BYE of a parked call during overload got: {bye}"
            cancel = n.answer(method="CANCEL")
            assert status(cancel) not in (None, 503), f"a CANCEL during overload got: {cancel}"
            # the gate reopens once the thread has caught up: a new INVITE is parked again
            served = None
            for i in range(50):
                n.send(n.request("OPTIONS", f"sip:127.0.0.1:{pw.port}", f"probe-{i}"))
                served = status(n.answer(method="OPTIONS"))
                if served == 200:
                    break
                time.sleep(0.1)
            assert served == 200, f"new requests still refused ({served}) 5 s after the stall ended"
            park_call(Phone(pw.port), "105")
            overload_priority_case(pw, n, s)
            time.sleep(1.2)  # the counter is published once a second
            refusals = metric(pw, "parkway_overload_refusals_total")
            assert refusals and refusals >= 1, f"parkway_overload_refusals_total = {refusals}"
            assert pw.wait_log("overload: SIP delay"), "no log line says the gate closed"
            lines = [ln for ln in pw.log().splitlines() if "refused with 503" in ln]
            assert 1 <= len(lines) <= 2, f"{len(lines)} log lines for the refusals: {lines}"
        finally:
            for p in (a, n, s):
                p.close()
    shutil.rmtree(pw.dir, ignore_errors=True)


def first_answers(phone, count, timeout=5.0):
    """Call-ID prefix -> (status, Via) of the first response to each of `count` requests (100 Trying included)."""
    got = {}
    end = time.monotonic() + timeout
    while len(got) < count and time.monotonic() < end:
        phone.sock.settimeout(max(end - time.monotonic(), 0.01))
        try:
            text = phone.sock.recvfrom(65535)[0].decode(errors="replace")
        except socket.timeout:
            break
        m = re.search(r"^Call-ID:\s*(\S+)\s*$", text, re.M)
        if m and text.startswith("SIP/2.0 ") and m.group(1) not in got:
            got[m.group(1)] = (int(text.split(" ", 2)[1]), re.search(r"^Via:.*$", text, re.M).group(0), text)
    return got


def overload_priority_case(pw, n, s):
    """Work under way goes first (docs/limits.md "Overload"). The SIP thread stalls 300 ms with twenty new requests
    queued (parks, and retrieves of extensions where nothing is parked), then four retrieves of parked calls. Each
    datagram read pushes the measured delay towards the ~270 ms they waited, past the soft threshold and on to the
    hard one (200 ms), never to twice it: new work is refused (statelessly), the marked retrieves are admitted."""
    phones = [Phone(pw.port) for _ in range(4)]
    exts = ["106", "110", "111", "112"]
    try:
        for p, ext in zip(phones, exts):
            park_call(p, ext)
        time.sleep(0.5)  # the gate is open again after the first stall
        s.send(s.request("OPTIONS", f"sip:127.0.0.1:{pw.port}", "stall-2", extra="X-Stall-Ms: 300\r\n"))
        time.sleep(0.03)
        new = [f"park-{i}" for i in range(10)] + [f"none-{i}" for i in range(10)]
        for i in range(10):
            n.send(n.request("INVITE", f"sip:*681{20 + i}@{DOMAIN}", new[i], body=SDP, oc=True))
            n.send(n.request("INVITE", f"sip:*881{30 + i}@{DOMAIN}", new[10 + i], body=SDP, oc=True))
        names = [f"get-{ext}" for ext in exts]
        for ext, name in zip(exts, names):
            n.send(n.request("INVITE", f"sip:*88{ext}@{DOMAIN}", name, body=SDP, oc=True))
        got = first_answers(n, len(new) + len(names))
        oc = {x: int(re.search(r";oc=(\d+)", v[1]).group(1)) for x, v in got.items() if ";oc=" in v[1]}
        shed = max((oc.get(x, 0) for x in names), default=0)
        assert shed >= 25, f"the gate was not shedding when the retrieves were read: {oc}"
        retrieves = {x: got.get(x, (None,))[0] for x in names}
        assert all(r not in (None, 503) for r in retrieves.values()), \
            f"a retrieve of a parked call was refused while {shed} % of new requests were: {retrieves}"
        refused = [x for x in new if got.get(x, (None,))[0] == 503]
        assert len(refused) >= 5, f"only {len(refused)} of 20 new requests refused: {oc}"
        for x in refused:
            assert re.search(r"^To:.*;tag=pw503-", got[x][2], re.M), f"not refused statelessly: {got[x][2]}"
        time.sleep(1.2)  # the counters are published once a second
        # exactly the four retrieves of parked calls went ahead: a retrieve of an extension where nothing is parked
        # is new work (call park's sessions in memory say so, no store read: dispatch.cc overloadPriority)
        first = metric(pw, "parkway_overload_priority_total")
        assert first == 4, f"parkway_overload_priority_total = {first}, not the 4 retrieves of parked calls"
    finally:
        for p in phones:
            p.close()


def case_overload_config():
    """Bad overload settings are refused at load, naming the key."""
    import subprocess
    bad = [("overload_soft_ms = 300\noverload_queue_ms = 200", "proxy.overload_soft_ms"),
           ("overload_queue_ms = -5", "proxy.overload_queue_ms"),
           ('overload_queue_ms = "fast"', "proxy.overload_queue_ms"),
           ("overload_retry_after_s = 0", "proxy.overload_retry_after_s"),
           ("overload_control = 1", "proxy.overload_control")]
    with tempfile.TemporaryDirectory(prefix="parkway-ovl-") as d:
        cfg = os.path.join(d, "parkway.toml")
        for text, key in bad:
            with open(cfg, "w") as f:
                f.write(f'[proxy]\nlisten = ["udp:127.0.0.1:0"]\ndatabase = "p.db"\n{text}\n')
            p = subprocess.run([BINARY, "--config", cfg], capture_output=True, text=True, timeout=20)
            assert p.returncode == 2, f"{text!r}: exit {p.returncode}: {p.stderr}"
            assert key in p.stderr, f"{text!r}: the error does not name {key}: {p.stderr}"


if __name__ == "__main__":
    globals()["case_" + sys.argv[3]]()
    print("ok")
