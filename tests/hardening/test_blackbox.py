#!/usr/bin/env python3
"""Black-box hardening tests: the real daemon against what a stranger on the network could send.

    test_blackbox.py <parkway binary> <stall module .so> <case>
"""
import os
import signal
import socket
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
from parkway_blackbox import Parkway, send_udp  # noqa: E402

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


if __name__ == "__main__":
    globals()["case_" + sys.argv[3]]()
    print("ok")
