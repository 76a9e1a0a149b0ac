#!/usr/bin/env python3
"""Black-box tests of [proxy] sip_trace (docs/replay.md "Recording"): the real daemon records what it sends and
receives, with the real transport and addresses, as text or as pcap (checked through tshark); rotation; the
admin toggle (GET/PUT/DELETE /api/trace, parkctl trace); bad config values.

    test_recording.py PARKWAY PARKCTL CASE      CASE: text | pcap | rotation | admin | config
"""
from __future__ import annotations

import os
import random
import re
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "lib"))
from parkway_blackbox import Parkway, wait_until  # noqa: E402

PARKWAY, PARKCTL = sys.argv[1], sys.argv[2]
HEADER = re.compile(r"^--- (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z) (recv|send) (udp|tcp|tls) (\S+) -> (\S+) (\d+)$")


def ipv6_available() -> bool:
    try:
        s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        s.bind(("::1", 0))
        s.close()
        return True
    except OSError:
        return False


# ------------------------------------------------------------------------------------------ SIP phones

def request(method: str, ruri: str, proto: str, host: str, lport: int, extra: str = "", body: str = "") -> bytes:
    branch = "z9hG4bK" + "".join(random.choice("0123456789abcdef") for _ in range(12))
    h = f"[{host}]" if ":" in host else host
    text = (f"{method} {ruri} SIP/2.0\r\nVia: SIP/2.0/{proto} {h}:{lport};branch={branch};rport\r\n"
            f"Max-Forwards: 70\r\nFrom: <sip:rec@127.0.0.1>;tag=t{branch[-6:]}\r\nTo: <{ruri}>\r\n"
            f"Call-ID: {method.lower()}-{branch}\r\nCSeq: 1 {method}\r\n{extra}"
            f"Content-Length: {len(body.encode())}\r\n\r\n{body}")
    return text.encode()


def status(reply: bytes) -> int:
    m = re.match(rb"SIP/2.0 (\d{3})", reply)
    assert m, f"not a SIP response: {reply[:80]!r}"
    return int(m.group(1))


def read_final(recv) -> int:
    while True:
        code = status(recv())
        if code >= 200:
            return code


class UdpPhone:
    def __init__(self, host: str, port: int):
        fam = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.host, self.port = host, port
        self.s = socket.socket(fam, socket.SOCK_DGRAM)
        self.s.bind((host, 0))
        self.s.settimeout(3)
        self.lport = self.s.getsockname()[1]

    def ask(self, method: str, ruri: str, extra: str = "", body: str = "") -> int:
        self.s.sendto(request(method, ruri, "UDP", self.host, self.lport, extra, body), (self.host, self.port))
        return read_final(lambda: self.s.recvfrom(65535)[0])

    def close(self):
        self.s.close()


class TcpPhone:
    def __init__(self, host: str, port: int):
        fam = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.host = host
        self.s = socket.create_connection((host, port), timeout=3) if fam == socket.AF_INET else socket.socket(fam)
        if fam == socket.AF_INET6:
            self.s.settimeout(3)
            self.s.connect((host, port))
        self.lport = self.s.getsockname()[1]
        self.buf = b""

    def _message(self) -> bytes:
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end >= 0:
                m = re.search(rb"(?im)^(?:content-length|l)\s*:\s*(\d+)", self.buf[:end])
                total = end + 4 + (int(m.group(1)) if m else 0)
                if len(self.buf) >= total:
                    msg, self.buf = self.buf[:total], self.buf[total:]
                    return msg
            chunk = self.s.recv(65536)
            assert chunk, "connection closed by parkway"
            self.buf += chunk

    def ask(self, method: str, ruri: str, extra: str = "", body: str = "") -> int:
        self.s.sendall(request(method, ruri, "TCP", self.host, self.lport, extra, body))
        return read_final(self._message)

    def close(self):
        self.s.close()


def register(phone, user: str, contact_port: int, port: int, params: str = "") -> int:
    host = "127.0.0.1"
    extra = f"Contact: <sip:{user}@{host}:{contact_port}{params}>\r\nExpires: 600\r\n"
    ruri = f"sip:{host}:{port}"
    data = request("REGISTER", ruri, "UDP" if isinstance(phone, UdpPhone) else "TCP", phone.host, phone.lport, extra)
    data = data.replace(f"To: <{ruri}>".encode(), f"To: <sip:{user}@{host}>".encode())
    if isinstance(phone, UdpPhone):
        phone.s.sendto(data, (phone.host, phone.port))
        return read_final(lambda: phone.s.recvfrom(65535)[0])
    phone.s.sendall(data)
    return read_final(phone._message)


def traffic(pw: Parkway, v6: bool, big_tcp: bool = False) -> dict:
    """REGISTER + OPTIONS over UDP and TCP (and ::1), and an OPTIONS proxied to a registered contact.
    Returns the local ports used: {"udp": p, "tcp": p, "udp6": p, "tcp6": p, "callee": p, "caller": p}."""
    ports = {}
    u = UdpPhone("127.0.0.1", pw.port)
    assert register(u, "2001", u.lport, pw.port) == 200
    assert u.ask("OPTIONS", f"sip:127.0.0.1:{pw.port}") == 200
    ports["udp"] = u.lport
    t = TcpPhone("127.0.0.1", pw.port)
    assert t.ask("OPTIONS", f"sip:127.0.0.1:{pw.port}", body="x" * 100000 if big_tcp else "",
                 extra="Content-Type: text/plain\r\n" if big_tcp else "") == 200
    ports["tcp"] = t.lport
    # Proxied: an OPTIONS for 2001 goes to its contact (the UDP phone), whose 200 comes back.
    caller = UdpPhone("127.0.0.1", pw.port)
    caller.s.sendto(request("OPTIONS", "sip:2001@127.0.0.1", "UDP", "127.0.0.1", caller.lport),
                    (caller.host, caller.port))
    fwd = u.s.recvfrom(65535)[0].decode()
    assert fwd.startswith("OPTIONS sip:2001@127.0.0.1"), fwd[:80]
    head = fwd.split("\r\n\r\n")[0].split("\r\n")
    keep = [h for h in head[1:] if h.split(":")[0].lower() in ("via", "from", "to", "call-id", "cseq")]
    u.s.sendto(("SIP/2.0 200 OK\r\n" + "\r\n".join(keep) + "\r\nContent-Length: 0\r\n\r\n").encode(),
               ("127.0.0.1", pw.port))
    assert read_final(lambda: caller.s.recvfrom(65535)[0]) == 200
    ports["caller"], ports["callee"] = caller.lport, u.lport
    # Proxied over a connection Parkway opens itself (its local port is an ephemeral one, read from the socket).
    lsn = socket.socket()
    lsn.bind(("127.0.0.1", 0))
    lsn.listen(1)
    lsn.settimeout(5)
    ports["tcp_callee"] = lsn.getsockname()[1]
    reg = UdpPhone("127.0.0.1", pw.port)
    assert register(reg, "2002", ports["tcp_callee"], pw.port, ";transport=tcp") == 200
    caller.s.sendto(request("OPTIONS", "sip:2002@127.0.0.1", "UDP", "127.0.0.1", caller.lport),
                    (caller.host, caller.port))
    conn, peer = lsn.accept()
    ports["tcp_out"] = peer[1]
    callee = TcpPhone.__new__(TcpPhone)
    callee.s, callee.buf, callee.host = conn, b"", "127.0.0.1"
    conn.settimeout(5)
    fwd = callee._message().decode()
    head = fwd.split("\r\n\r\n")[0].split("\r\n")
    keep = [h for h in head[1:] if h.split(":")[0].lower() in ("via", "from", "to", "call-id", "cseq")]
    conn.sendall(("SIP/2.0 200 OK\r\n" + "\r\n".join(keep) + "\r\nContent-Length: 0\r\n\r\n").encode())
    assert read_final(lambda: caller.s.recvfrom(65535)[0]) == 200
    conn.close(), lsn.close(), reg.close()
    if v6:
        u6, t6 = UdpPhone("::1", pw.port), TcpPhone("::1", pw.port)
        assert u6.ask("OPTIONS", f"sip:[::1]:{pw.port}") == 200
        assert t6.ask("OPTIONS", f"sip:[::1]:{pw.port}") == 200
        ports["udp6"], ports["tcp6"] = u6.lport, t6.lport
        u6.close(), t6.close()
    for p in (u, t, caller):
        p.close()
    time.sleep(0.3)
    return ports


def make_daemon(tmp: str, v6: bool, **proxy) -> Parkway:
    admin = proxy.pop("admin", False)
    pw = Parkway(PARKWAY, proxy=proxy, start=False, workdir=tmp, admin=admin)
    if v6:
        pw.proxy_extra["listen"] = [f"udp:127.0.0.1:{pw.port}", f"tcp:127.0.0.1:{pw.port}", f"udp:[::1]:{pw.port}",
                                    f"tcp:[::1]:{pw.port}"]
    pw.rewrite_config()
    return pw.start()


# ------------------------------------------------------------------------------------------ reading traces

def read_text(path: str) -> list[dict]:
    data = open(path, "rb").read()
    assert data.startswith(b"# parkway sip trace 1\n"), data[:40]
    pos, out = len(b"# parkway sip trace 1\n"), []
    while pos < len(data):
        eol = data.index(b"\n", pos)
        m = HEADER.match(data[pos:eol].decode())
        assert m, f"bad record header at byte {pos}: {data[pos:eol]!r}"
        n = int(m.group(6))
        body = data[eol + 1:eol + 1 + n]
        assert len(body) == n and data[eol + 1 + n:eol + 2 + n] == b"\n", f"record at byte {pos}: bad length"
        first = body.split(b"\r\n", 1)[0].decode()
        out.append({"dir": m.group(2), "transport": m.group(3), "src": m.group(4), "dst": m.group(5),
                    "first": first})
        pos = eol + 2 + n
    return out


def tshark(path: str, *ports: int) -> list[dict]:
    fields = ["ip.src", "ipv6.src", "ip.dst", "ipv6.dst", "udp.srcport", "udp.dstport", "tcp.srcport",
              "tcp.dstport", "sip.Method", "sip.Status-Code", "ip.checksum.status"]
    decode = sum((["-d", f"udp.port=={p},sip", "-d", f"tcp.port=={p},sip"] for p in ports), [])
    cmd = ["tshark", "-r", path] + decode + [
           "-o", "ip.check_checksum:TRUE", "-o", "udp.check_checksum:TRUE", "-o", "tcp.check_checksum:TRUE",
           "-T", "fields"] + sum((["-e", f] for f in fields), []) + ["-E", "separator=|"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    rows = []
    for line in r.stdout.splitlines():
        v = dict(zip(fields, line.split("|")))
        rows.append({"transport": "udp" if v["udp.srcport"] else "tcp",
                     "src": fmt_addr(v["ip.src"] or v["ipv6.src"], v["udp.srcport"] or v["tcp.srcport"]),
                     "dst": fmt_addr(v["ip.dst"] or v["ipv6.dst"], v["udp.dstport"] or v["tcp.dstport"]),
                     "first": v["sip.Method"] or v["sip.Status-Code"], "ipsum": v["ip.checksum.status"]})
    bad = subprocess.run(["tshark", "-2", "-r", path] + decode + ["-o", "udp.check_checksum:TRUE",
                                                            "-o", "tcp.check_checksum:TRUE", "-Y",
                          "_ws.expert.severity >= warning || ip.checksum.status == 0 || udp.checksum.status == 0 "
                          "|| tcp.checksum.status == 0 || (!sip && !tcp.reassembled_in)"],
                         capture_output=True, text=True, timeout=60)
    # every record is SIP (or a segment of a SIP message reassembled later), with good checksums, no warnings
    assert bad.returncode == 0 and bad.stdout.strip() == "", f"tshark flags problems:\n{bad.stdout}{bad.stderr}"
    return rows


def fmt_addr(ip: str, port: str) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def expect(records: list[dict], transport: str, src: str, dst: str, first: str, direction: str | None = None):
    for r in records:
        if r["transport"] == transport and r["src"] == src and r["dst"] == dst and r["first"].startswith(first):
            if direction is None or r["dir"] == direction:
                return
    listing = "\n".join(f"  {r.get('dir', '')} {r['transport']} {r['src']} -> {r['dst']} {r['first']}"
                        for r in records)
    raise AssertionError(f"no record {transport} {src} -> {dst} {first!r} {direction or ''}; records:\n{listing}")


def check_flows(records: list[dict], pw: Parkway, ports: dict, text: bool):
    s = f"127.0.0.1:{pw.port}"
    req = (lambda m: m) if not text else (lambda m: m + " ")
    ok = "200" if not text else "SIP/2.0 200"
    d = (lambda x: x) if text else (lambda x: None)
    expect(records, "udp", f"127.0.0.1:{ports['udp']}", s, req("REGISTER"), d("recv"))
    expect(records, "udp", s, f"127.0.0.1:{ports['udp']}", ok, d("send"))
    expect(records, "udp", f"127.0.0.1:{ports['udp']}", s, req("OPTIONS"), d("recv"))
    expect(records, "tcp", f"127.0.0.1:{ports['tcp']}", s, req("OPTIONS"), d("recv"))
    expect(records, "tcp", s, f"127.0.0.1:{ports['tcp']}", ok, d("send"))
    # proxied both ways: caller -> us -> callee, and the callee's 200 back
    expect(records, "udp", f"127.0.0.1:{ports['caller']}", s, req("OPTIONS"), d("recv"))
    expect(records, "udp", s, f"127.0.0.1:{ports['callee']}", req("OPTIONS"), d("send"))
    expect(records, "udp", f"127.0.0.1:{ports['callee']}", s, ok, d("recv"))
    expect(records, "udp", s, f"127.0.0.1:{ports['caller']}", ok, d("send"))
    if "udp6" in ports:
        s6 = f"[::1]:{pw.port}"
        expect(records, "udp", f"[::1]:{ports['udp6']}", s6, req("OPTIONS"), d("recv"))
        expect(records, "udp", s6, f"[::1]:{ports['udp6']}", ok, d("send"))
        expect(records, "tcp", f"[::1]:{ports['tcp6']}", s6, req("OPTIONS"), d("recv"))
        expect(records, "tcp", s6, f"[::1]:{ports['tcp6']}", ok, d("send"))
    out, callee = f"127.0.0.1:{ports['tcp_out']}", f"127.0.0.1:{ports['tcp_callee']}"
    expect(records, "tcp", out, callee, req("OPTIONS"), d("send"))
    expect(records, "tcp", callee, out, ok, d("recv"))


# ------------------------------------------------------------------------------------------ cases

def case_text(tmp: str):
    v6 = ipv6_available()
    if not v6:
        print("note: ::1 cannot be bound here; IPv6 part skipped")
    path = os.path.join(tmp, "trace.txt")
    with make_daemon(tmp, v6, sip_trace=f"text:{path}") as pw:
        ports = traffic(pw, v6)
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600, oct(os.stat(path).st_mode)
        records = read_text(path)
        check_flows(records, pw, ports, text=True)
        print(f"text: {len(records)} records, flows found")


def case_pcap(tmp: str):
    v6 = ipv6_available()
    if not v6:
        print("note: ::1 cannot be bound here; IPv6 part skipped")
    path = os.path.join(tmp, "trace.pcap")
    with make_daemon(tmp, v6, sip_trace=f"pcap:{path}", max_message_bytes=300000) as pw:
        ports = traffic(pw, v6, big_tcp=True)
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        rows = tshark(path, pw.port, ports["tcp_callee"])
        check_flows(rows, pw, ports, text=False)
        # The 100 kB OPTIONS went over TCP in more than one segment and tshark put it together again.
        big = [r for r in rows if r["transport"] == "tcp" and r["src"] == f"127.0.0.1:{ports['tcp']}"]
        assert len(big) >= 2 and sum(1 for r in big if r["first"] == "OPTIONS") == 1, big
        assert all(r["ipsum"] in ("", "1") for r in rows), "bad IPv4 header checksum"
        print(f"pcap: {len(rows)} packets decoded by tshark, flows found")


def case_rotation(tmp: str):
    path = os.path.join(tmp, "rot.txt")
    with make_daemon(tmp, False, sip_trace=f"text:{path}", sip_trace_max_bytes=2048, sip_trace_files=2) as pw:
        u = UdpPhone("127.0.0.1", pw.port)
        for _ in range(20):
            assert u.ask("OPTIONS", f"sip:127.0.0.1:{pw.port}") == 200
        u.close()
        time.sleep(0.2)
        files = sorted(f for f in os.listdir(tmp) if f.startswith("rot.txt"))
        assert files == ["rot.txt", "rot.txt.1", "rot.txt.2"], files
        for f in files:
            p = os.path.join(tmp, f)
            assert os.path.getsize(p) <= 2048, (f, os.path.getsize(p))
            assert stat.S_IMODE(os.stat(p).st_mode) == 0o600
            read_text(p)  # each file stands alone
    print("rotation: 3 files of <= 2048 bytes, oldest dropped")


def case_tls(tmp: str):
    """TLS is recorded as the plaintext SIP it carried: transport tls in text, TCP on the real ports in pcap."""
    import ssl
    from parkway_blackbox import free_port
    key, crt = os.path.join(tmp, "server.key"), os.path.join(tmp, "server.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-keyout", key, "-out", crt, "-days", "2", "-subj", "/CN=127.0.0.1"], check=True,
                   capture_output=True, timeout=60)
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    for fmt in ("text", "pcap"):
        path = os.path.join(tmp, f"tls.{fmt}")
        tport = free_port()
        pw = Parkway(PARKWAY, start=False, workdir=tmp, proxy={"sip_trace": f"{fmt}:{path}",
                                                              "tls_certificate": crt, "tls_private_key": key})
        pw.proxy_extra["listen"] = [f"udp:127.0.0.1:{pw.port}", f"tls:127.0.0.1:{tport}"]
        pw.rewrite_config()
        with pw.start():
            raw = socket.create_connection(("127.0.0.1", tport), timeout=5)
            s = ctx.wrap_socket(raw, server_hostname="127.0.0.1")
            lport = s.getsockname()[1]
            s.sendall(request("OPTIONS", f"sip:127.0.0.1:{tport};transport=tls", "TLS", "127.0.0.1", lport))
            reply = b""
            while b"\r\n\r\n" not in reply:
                reply += s.recv(65536)
            assert status(reply) == 200, reply[:80]
            s.close()
            time.sleep(0.3)
            c, d = f"127.0.0.1:{lport}", f"127.0.0.1:{tport}"
            if fmt == "text":
                recs = read_text(path)
                expect(recs, "tls", c, d, "OPTIONS ", "recv")
                expect(recs, "tls", d, c, "SIP/2.0 200", "send")
            else:
                rows = tshark(path, tport)
                expect(rows, "tcp", c, d, "OPTIONS")
                expect(rows, "tcp", d, c, "200")
    print("tls: plaintext recorded as tls (text) and as TCP on the real ports (pcap)")


def parkctl(pw: Parkway, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([PARKCTL, "--url", f"http://127.0.0.1:{pw.admin_port}", "--token", pw.admin_token, *args],
                          capture_output=True, text=True, timeout=30)


def case_admin(tmp: str):
    path = os.path.join(tmp, "live.pcap")
    with make_daemon(tmp, False, admin=True) as pw:
        code, st = pw.admin("GET", "/api/trace")
        assert code == 200 and st["enabled"] is False, st
        assert pw.admin("GET", "/api/trace", token="wrong")[0] == 401
        assert pw.admin("PUT", "/api/trace", {"target": f"pcap:{path}"}, token="wrong")[0] == 401
        assert not os.path.exists(path)
        for bad, why in [({"target": "wav:/tmp/x"}, "not a trace target"),
                         ({"target": "pcap:relative.pcap"}, "absolute path"),
                         ({"target": "pcap:/nonexistent-dir/x.pcap"}, "does not exist"),
                         ({"target": f"pcap:{path}", "max_bytes": 5}, "max_bytes"),
                         ({"target": 5}, "target"), ({}, "target: missing")]:
            code, body = pw.admin("PUT", "/api/trace", bad)
            assert code == 400 and why in body["error"], (bad, code, body)
        code, st = pw.admin("PUT", "/api/trace", {"target": f"pcap:{path}"})
        assert code == 200 and st["enabled"] and st["file"] == path and st["format"] == "pcap", st
        assert pw.options() == 200
        time.sleep(0.2)
        code, st = pw.admin("GET", "/api/trace")
        assert st["records"] >= 2 and st["files"] == [path], st
        rows = tshark(path, pw.port)
        assert [r["first"] for r in rows] == ["OPTIONS", "200"], rows
        code, st = pw.admin("DELETE", "/api/trace")
        assert code == 200 and st["enabled"] is False
        size = os.path.getsize(path)
        assert pw.options() == 200
        time.sleep(0.2)
        assert os.path.getsize(path) == size, "still recording after DELETE /api/trace"
        # parkctl trace start / status / stop
        text_path = os.path.join(tmp, "cli.txt")
        r = parkctl(pw, "trace", "start", f"text:{text_path}")
        assert r.returncode == 0 and text_path in r.stdout, (r.stdout, r.stderr)
        assert pw.options() == 200
        time.sleep(0.2)
        r = parkctl(pw, "trace", "status")
        assert r.returncode == 0 and text_path in r.stdout, r.stdout
        assert len(read_text(text_path)) == 2
        r = parkctl(pw, "trace", "start", "text:nope")
        assert r.returncode != 0 and "absolute path" in r.stderr, (r.returncode, r.stderr)
        # A reload re-applies [proxy] sip_trace from the file: absent, so the trace started above stops...
        pw.reload()
        assert wait_until(lambda: pw.admin("GET", "/api/trace")[1]["enabled"] is False, 5), "reload kept the trace"
        # ...and set, it starts.
        cfg_path = os.path.join(tmp, "cfg.txt")
        pw.proxy_extra["sip_trace"] = f"text:{cfg_path}"
        pw.rewrite_config()
        pw.reload()
        assert wait_until(lambda: pw.admin("GET", "/api/trace")[1].get("file") == cfg_path, 5)
        r = parkctl(pw, "trace", "stop")
        assert r.returncode == 0 and "stopped" in r.stdout, r.stdout
    print("admin: GET/PUT/DELETE /api/trace, 401, 400s, parkctl trace, reload")


def case_config(tmp: str):
    cases = [('sip_trace = "wav:/tmp/x"', "proxy.sip_trace", "not a trace target"),
             ('sip_trace = "pcap:/nonexistent-dir/x.pcap"', "proxy.sip_trace", "does not exist"),
             ('sip_trace = 5', "proxy.sip_trace", "expected a string"),
             ('sip_trace = "pcap:"', "proxy.sip_trace", "absolute path"),
             ("sip_trace_max_bytes = 10", "proxy.sip_trace_max_bytes", "out of range"),
             ('sip_trace_max_bytes = "big"', "proxy.sip_trace_max_bytes", "expected an integer"),
             ("sip_trace_files = -1", "proxy.sip_trace_files", "out of range")]
    for line, key, why in cases:
        cfg = os.path.join(tmp, "bad.toml")
        with open(cfg, "w") as f:
            f.write(f'[proxy]\nlisten = ["udp:127.0.0.1:0"]\n{line}\n')
        r = subprocess.run([PARKWAY, "--check-config", cfg], capture_output=True, text=True, timeout=30)
        out = r.stdout + r.stderr
        assert r.returncode != 0 and key in out and why in out, (line, r.returncode, out)
    # Good values pass, a relative FILE is taken relative to the config file.
    cfg = os.path.join(tmp, "good.toml")
    with open(cfg, "w") as f:
        f.write('[proxy]\nlisten = ["udp:127.0.0.1:0"]\nsip_trace = "text:t.txt"\nsip_trace_max_bytes = 4096\n'
                "sip_trace_files = 0\n")
    r = subprocess.run([PARKWAY, "--check-config", cfg], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stdout + r.stderr
    print(f"config: {len(cases)} bad values refused naming the key")


def main() -> int:
    case = sys.argv[3]
    os.environ.pop("PARKWAY_TEST_SIP_TRACE_DIR", None)  # these daemons choose their own traces
    tmp = tempfile.mkdtemp(prefix="parkway-rec-")
    try:
        {"text": case_text, "pcap": case_pcap, "rotation": case_rotation, "admin": case_admin, "tls": case_tls,
         "config": case_config}[case](tmp)
    finally:
        if os.environ.get("PARKWAY_KEEP_TMP") != "1":
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
