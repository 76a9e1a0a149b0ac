#!/usr/bin/env python3
"""Black-box hardening tests: the real daemon against what a stranger on the network could send.

    test_blackbox.py <parkway binary> <stall module .so> <case>
"""
import os
import signal
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
from parkway_blackbox import Parkway, send_udp  # noqa: E402

BINARY, STALL = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])


def options(port, extra=""):
    return (f"OPTIONS sip:127.0.0.1:{port} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:$LPORT;branch=z9hG4bK-{time.time_ns()}\r\n"
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


if __name__ == "__main__":
    globals()["case_" + sys.argv[3]]()
    print("ok")
