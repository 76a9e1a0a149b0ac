#!/usr/bin/env python3
"""Cluster harness for black-box tests and benchmarks (python3 stdlib only; docs/cluster.md).

A throw-away PostgreSQL server, N `parkway` nodes sharing park state on it, an optional Kamailio `dispatcher` front
(examples/kamailio/dispatcher.cfg) and raw-UDP phones that park and retrieve:

    from parkway_cluster import Cluster, Phones

    with Cluster(binary, nodes=2, front=True) as c:      # initdb + server, two nodes, Kamailio in front
        ph = Phones(c.front_addr)                         # or ("127.0.0.1", c.nodes[0].port): straight to a node
        assert ph.park("101") == 200                      # INVITE *68101 from a fresh party, ACKed
        assert ph.retrieve("101") == 200                  # INVITE *88101 from a retriever, ACKed
        cid = ph.invite("*68102", "alice")                # or by hand: then ph.final(cid, timeout),
        ph.responses[cid], ph.reinvites[cid], ph.byes     # the final response, re-INVITEs/BYEs received
        c.pg.stop()                                       # by its PID; same data dir and port on start()
        c.pg.start()
        pids = c.pg.freeze(); ...; c.pg.thaw(pids)        # a hung server (SIGSTOP / SIGCONT)
        c.nodes[0].kill9(); c.nodes[0].start()            # parkway_blackbox.Parkway: same ports and config
        c.logs()                                          # every node's, Kamailio's and PostgreSQL's log tails

Cluster(binary, nodes=N, front=False, callpark={...}) passes extra [module.callpark] settings to every node (e.g.
`node = "a"`); node(binary, url, ...) starts one more node on any database; PostgresServer() and KamailioFront(...)
stand alone too (bench/cluster/bench_cluster.py uses them so).

PostgreSQL: `initdb` into a new temp dir (as `nobody` when run as root: initdb refuses root, as
tests/engine/pg_fixture.sh does), then `pg_ctl start` on a loopback port (first start: a free one; later starts:
the same) with durability off (the data is thrown away). stop() stops it by the postmaster's PID (SIGINT = fast
shutdown: sessions are ended, as when an operator restarts the server), kill() by SIGQUIT (immediate).

Every process started here is stopped by its PID by close() (or at exit); PARKWAY_KEEP_TMP=1 keeps the folders.
"""
from __future__ import annotations

import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from parkway_blackbox import REPO, KamailioProcess, Parkway, _live, free_port, wait_until  # noqa: E402

DOMAIN = "pbx.example.com"


def pg_bindir() -> str | None:
    """The folder holding initdb and pg_ctl (PATH first, then Debian's /usr/lib/postgresql/N/bin), or None."""
    found = shutil.which("initdb")
    cands = ([os.path.dirname(found)] if found else []) + sorted(
        (os.path.join("/usr/lib/postgresql", v, "bin") for v in os.listdir("/usr/lib/postgresql"))
        if os.path.isdir("/usr/lib/postgresql") else [], reverse=True)
    for d in cands:
        if os.access(os.path.join(d, "initdb"), os.X_OK) and os.access(os.path.join(d, "pg_ctl"), os.X_OK):
            return d
    return None


# --------------------------------------------------------------------------------------------- PostgreSQL

class PostgresServer:
    """A PostgreSQL server of our own: initdb in a temp dir, a loopback port and a unix socket in that dir."""

    def __init__(self, start: bool = True, bindir: str | None = None):
        self.bindir = bindir or pg_bindir()
        if not self.bindir:
            raise RuntimeError("no initdb/pg_ctl found (Debian: postgresql)")
        self.dir = tempfile.mkdtemp(prefix="parkway-pg-")
        self.data = os.path.join(self.dir, "data")
        self.log_path = os.path.join(self.dir, "server.log")
        self.port = 0
        self._root = os.geteuid() == 0
        if self._root:
            os.chown(self.dir, _nobody_uid(), -1)
        os.chmod(self.dir, 0o700)
        r = subprocess.run(self._as_owner([os.path.join(self.bindir, "initdb"), "-D", self.data, "-U", "parkway",
                                           "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync"]),
                           capture_output=True, text=True, timeout=120)
        if r.returncode != 0:
            self.close()
            raise RuntimeError(f"initdb failed:\n{r.stdout}{r.stderr}")
        _live.append(self)
        if start:
            self.start()

    def _as_owner(self, cmd: list) -> list:
        return ["runuser", "-u", "nobody", "--"] + cmd if self._root else cmd

    @property
    def url(self) -> str:
        """libpq URL of the database `postgres` over TCP on 127.0.0.1 (what a node on another box would use)."""
        return f"postgresql://parkway@127.0.0.1:{self.port}/postgres"

    @property
    def socket_url(self) -> str:
        """The same over the unix socket in our dir (faster; what the engine suite uses)."""
        return f"postgresql://parkway@/postgres?host={self.dir}&port={self.port}"

    def start(self, timeout: float = 30):
        """Start on our port (a free one the first time); returns when the server accepts connections."""
        ports = [self.port] if self.port else [free_port() for _ in range(10)]
        for port in ports:
            opts = (f"-p {port} -k {self.dir} -h 127.0.0.1 -c fsync=off -c full_page_writes=off "
                    "-c synchronous_commit=off -c max_connections=40")
            r = subprocess.run(self._as_owner([os.path.join(self.bindir, "pg_ctl"), "-D", self.data, "-l",
                                               self.log_path, "-w", "-t", str(int(timeout)), "-o", opts, "start"]),
                               capture_output=True, text=True, timeout=timeout + 10)
            if r.returncode == 0:
                self.port = port
                return self
        raise RuntimeError(f"postgres did not start; log:\n{self.log()[-3000:]}")

    def pid(self) -> int | None:
        try:
            with open(os.path.join(self.data, "postmaster.pid")) as f:
                return int(f.readline().strip())
        except (OSError, ValueError):
            return None

    def running(self) -> bool:
        pid = self.pid()
        if not pid:
            return False
        try:
            os.kill(pid, 0)
            return True
        except ProcessLookupError:
            return False

    def stop(self, sig: int = signal.SIGINT, timeout: float = 15):
        """Stop the postmaster by its PID: SIGINT = fast shutdown (the default), SIGQUIT = immediate."""
        pid = self.pid()
        if not pid:
            return
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        if not wait_until(lambda: not _pid_alive(pid), timeout, 0.05):
            os.kill(pid, signal.SIGKILL)
            wait_until(lambda: not _pid_alive(pid), 5, 0.05)

    def kill(self):
        self.stop(signal.SIGQUIT)

    def server_pids(self) -> list:
        """The postmaster and its children (a backend per connection, the background workers)."""
        pid = self.pid()
        if not pid:
            return []
        out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
        return [pid] + [int(p) for p in out]

    def freeze(self) -> list:
        """SIGSTOP every server process: a server that hangs (connections stay open, nothing answers). Returns
        the PIDs to give thaw()."""
        pids = self.server_pids()
        for p in pids:
            os.kill(p, signal.SIGSTOP)
        return pids

    def thaw(self, pids: list):
        for p in pids:
            try:
                os.kill(p, signal.SIGCONT)
            except ProcessLookupError:
                pass

    def log(self) -> str:
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def close(self):
        self.thaw(self.server_pids())  # a frozen server cannot act on SIGQUIT
        self.stop(signal.SIGQUIT, 10)
        if self in _live:
            _live.remove(self)
        if os.environ.get("PARKWAY_KEEP_TMP") != "1":
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _nobody_uid() -> int:
    import pwd
    return pwd.getpwnam("nobody").pw_uid


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie child of ours (pg_ctl daemonizes, so normally not ours) counts as gone
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except OSError:
        return False


# --------------------------------------------------------------------------------------------- nodes

def node(binary: str, database: str, workdir: str | None = None, name: str = "", callpark: dict | None = None,
         proxy: dict | None = None, start: bool = True, **kw) -> Parkway:
    """One parkway node with callpark on `database` (a libpq URL), admin API on, on free loopback ports."""
    moh = (free_port() // 2) * 2
    params = {"database": database, "moh_ip": "127.0.0.1", "moh_port_min": moh,
              "moh_port_max": min(moh + 400, 65534), "park_info": False}
    params.update(callpark or {})
    p = {"domains": [DOMAIN, "127.0.0.1"], "trusted_peers": ["127.0.0.1"]}
    p.update(proxy or {})
    pw = Parkway(binary, modules=["registrar", "callpark", "router"], module_params={"callpark": params}, proxy=p,
                 admin=True, workdir=workdir, start=start, **kw)
    pw.name = name
    return pw


# --------------------------------------------------------------------------------------------- Kamailio front

DISPATCHER_CFG = os.path.join(REPO, "examples", "kamailio", "dispatcher.cfg")


class KamailioFront(KamailioProcess):
    """examples/kamailio/dispatcher.cfg in the foreground, its #!define lines set for free ports, and a
    dispatcher list naming `nodes` (host:port strings)."""

    def __init__(self, binary: str, nodes: list, folder: str, ip: str = "127.0.0.1", port: int | None = None,
                 ping_interval: int = 1):
        port = port or free_port(ip)
        self.list_path = os.path.join(folder, "dispatcher.list")
        with open(self.list_path, "w") as f:
            f.write("# setid destination flags priority attributes\n")
            for n in nodes:
                f.write(f"1 sip:{n} 0 0\n")
        defines = {"FRONT_LISTEN": f"udp:{ip}:{port}", "DISPATCHER_LIST": f'"{self.list_path}"',
                   "PROBE_INTERVAL": str(ping_interval)}
        super().__init__(binary, DISPATCHER_CFG, defines, folder, ip, port, f"sip:{ip}:{port}")


def kamailio_binary() -> str | None:
    return shutil.which("kamailio") or next((p for p in ("/usr/sbin/kamailio", "/usr/local/sbin/kamailio")
                                             if os.access(p, os.X_OK)), None)


# --------------------------------------------------------------------------------------------- the whole

class Cluster:
    """PostgreSQL + `nodes` parkway nodes on one database (+ a Kamailio dispatcher front when front=True)."""

    def __init__(self, binary: str, nodes: int = 2, front: bool = False, callpark: dict | None = None,
                 kamailio: str | None = None, socket_db: bool = False):
        self.dir = tempfile.mkdtemp(prefix="parkway-cluster-")
        self.pg = None
        self.nodes: list[Parkway] = []
        self.front = None
        try:
            self.pg = PostgresServer()
            db = self.pg.socket_url if socket_db else self.pg.url
            for i in range(nodes):
                wd = os.path.join(self.dir, f"node{i}")
                os.makedirs(wd)
                # start one at a time: the first migrates the schema (the others would wait on its lock anyway)
                self.nodes.append(node(binary, db, workdir=wd, name=f"n{i}", callpark=callpark))
            if front:
                k = kamailio or kamailio_binary()
                if not k:
                    raise RuntimeError("kamailio not found")
                self.front = KamailioFront(k, [n.sip for n in self.nodes], self.dir)
        except BaseException:
            self.close()
            raise

    @property
    def front_addr(self) -> tuple:
        return self.front.addr

    def logs(self) -> str:
        out = []
        for n in self.nodes:
            out.append(f"---- node {n.name} log ({n.log_path})\n{n.log()[-5000:]}")
        if self.front:
            out.append(f"---- kamailio log\n{self.front.log()[-3000:]}")
        if self.pg:
            out.append(f"---- postgres log\n{self.pg.log()[-2000:]}")
        return "\n".join(out)

    def close(self):
        if self.front:
            self.front.close()
        for n in self.nodes:
            n.close()
        if self.pg:
            self.pg.close()
        if os.environ.get("PARKWAY_KEEP_TMP") != "1":
            shutil.rmtree(self.dir, ignore_errors=True)
        else:
            print(f"kept {self.dir}")

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:
            print(self.logs())
        self.close()


# --------------------------------------------------------------------------------------------- phones

class Phones:
    """One UDP socket playing every parked party and retriever toward `target` (host, port): sends INVITEs with an
    SDP offer, ACKs each 2xx (through its Record-Route), answers in-dialog requests (re-INVITE: 200 + SDP) and
    retransmits INVITEs on T1 doubling (RFC 3261 §17.1.1.2) until a final response. Keeps every final status."""

    SDP = ("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
           "m=audio {port} RTP/AVP 0 8\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\na=sendrecv\r\n")

    def __init__(self, target: tuple):
        self.target = target
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # music goes here and is dropped
        self.rtp.bind(("127.0.0.1", 0))
        self.rtp_port = self.rtp.getsockname()[1]
        self.lock = threading.Lock()
        self.finals: dict = {}     # call-id -> final status of its INVITE
        self.responses: dict = {}  # call-id -> the final response text
        self.reinvites: dict = {}  # call-id -> INVITEs received inside that dialog (a retrieve re-INVITEs the parked)
        self.sources: dict = {}    # call-id -> (ip, port) the last in-dialog request came from
        self.byes: set = set()     # call-ids BYEd by the other side
        self._pending: dict = {}   # call-id -> (data, next send time, interval) while unanswered
        self.closed = False
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def close(self):
        self.closed = True
        self.thread.join(2)
        self.sock.close()
        self.rtp.close()

    @staticmethod
    def header(msg: str, name: str, every: bool = False):
        out = []
        for line in msg.split("\r\n")[1:]:
            if not line:
                break
            k, _, v = line.partition(":")
            if k.strip().lower() == name.lower():
                out.append(v.strip())
        return out if every else (out[0] if out else "")

    def invite(self, dial: str, user: str, call_id: str | None = None, extra: str = "") -> str:
        """Send INVITE sip:<dial>@DOMAIN from sip:<user>@DOMAIN; returns the Call-ID (wait with final())."""
        call_id = call_id or f"{user}-{random.getrandbits(48):x}@phones"
        branch = f"z9hG4bK{random.getrandbits(48):x}"
        sdp = self.SDP.format(port=self.rtp_port)
        msg = (f"INVITE sip:{dial}@{DOMAIN} SIP/2.0\r\n"
               f"Via: SIP/2.0/UDP 127.0.0.1:{self.port};branch={branch};rport\r\nMax-Forwards: 70\r\n"
               f"From: <sip:{user}@{DOMAIN}>;tag=t{random.getrandbits(32):x}\r\nTo: <sip:{dial}@{DOMAIN}>\r\n"
               f"Call-ID: {call_id}\r\nCSeq: 1 INVITE\r\nContact: <sip:{user}@127.0.0.1:{self.port}>\r\n{extra}"
               f"Content-Type: application/sdp\r\nContent-Length: {len(sdp)}\r\n\r\n{sdp}").encode()
        with self.lock:
            self._pending[call_id] = (msg, time.monotonic() + 0.5, 0.5)
        self.sock.sendto(msg, self.target)
        return call_id

    def final(self, call_id: str, timeout: float = 0) -> int | None:
        """The final status of that INVITE (waiting up to `timeout` seconds), None if none yet."""
        wait_until(lambda: call_id in self.finals, timeout)
        with self.lock:
            return self.finals.get(call_id)

    def park(self, ext: str, user: str | None = None, timeout: float = 10) -> int | None:
        """A party calls *68<ext>; the final status (200 = parked)."""
        return self.final(self.invite(f"*68{ext}", user or f"p{random.getrandbits(24):x}"), timeout)

    def retrieve(self, ext: str, user: str | None = None, timeout: float = 10) -> int | None:
        """A retriever calls *88<ext>; the final status (200 = connected to the parked party)."""
        return self.final(self.invite(f"*88{ext}", user or f"r{random.getrandbits(24):x}"), timeout)

    def _ack(self, resp: str):
        to, frm, call_id = self.header(resp, "To"), self.header(resp, "From"), self.header(resp, "Call-ID")
        contact = self.header(resp, "Contact")
        ruri = contact[contact.find("<") + 1:contact.find(">")] if "<" in contact else contact
        # RFC 3261 §12.1.2: the route set is the Record-Route of the 2xx, reversed; §16.12.1.1 loose routing
        routes = []
        for rr in self.header(resp, "Record-Route", every=True):
            routes += [r.strip() for r in rr.split(",") if r.strip()]
        routes.reverse()
        dest = self.target
        if routes:
            m = re.search(r"sip:(?:[^@>;]*@)?([0-9.]+):?(\d*)", routes[0])
            if m:
                dest = (m.group(1), int(m.group(2) or 5060))
        else:
            m = re.search(r"sip:(?:[^@>;]*@)?([0-9.]+):?(\d*)", ruri)
            if m:
                dest = (m.group(1), int(m.group(2) or 5060))
        lines = [f"ACK {ruri} SIP/2.0",
                 f"Via: SIP/2.0/UDP 127.0.0.1:{self.port};branch=z9hG4bK{random.getrandbits(48):x};rport",
                 "Max-Forwards: 70"] + [f"Route: {r}" for r in routes] + [
                 f"From: {frm}", f"To: {to}", f"Call-ID: {call_id}", "CSeq: 1 ACK", "Content-Length: 0"]
        self.sock.sendto(("\r\n".join(lines) + "\r\n\r\n").encode(), dest)

    def _answer(self, req: str, addr, status: int = 200, body: str = ""):
        out = [f"SIP/2.0 {status} OK"]
        for line in req.split("\r\n")[1:]:
            if not line:
                break
            name = line.split(":", 1)[0].strip().lower()
            if name in ("via", "v", "from", "f", "to", "t", "call-id", "i", "cseq", "record-route"):
                out.append(line)
        out.append(f"Contact: <sip:phone@127.0.0.1:{self.port}>")
        if body:
            out.append("Content-Type: application/sdp")
        out.append(f"Content-Length: {len(body)}")
        self.sock.sendto(("\r\n".join(out) + "\r\n\r\n" + body).encode(), addr)

    def _loop(self):
        self.sock.settimeout(0.05)
        while not self.closed:
            now = time.monotonic()
            with self.lock:
                due = [(cid, p) for cid, p in self._pending.items() if p[1] <= now]
                for cid, (data, _, iv) in due:
                    if iv >= 16:  # Timer B (64*T1) has run out: no answer
                        del self._pending[cid]
                        self.finals[cid] = 408
                    else:
                        self._pending[cid] = (data, now + iv * 2, iv * 2)
            for cid, (data, _, iv) in due:
                if iv < 16:
                    self.sock.sendto(data, self.target)
            try:
                data, addr = self.sock.recvfrom(65535)
            except socket.timeout:
                continue
            except OSError:
                return
            msg = data.decode(errors="replace")
            first = msg.split("\r\n", 1)[0]
            call_id = self.header(msg, "Call-ID")
            if first.startswith("SIP/2.0 "):
                status = int(first.split()[1])
                if "INVITE" not in self.header(msg, "CSeq"):
                    continue
                with self.lock:
                    if status >= 100:
                        p = self._pending.get(call_id)
                        if p and status < 200:  # provisional: stop retransmitting (RFC 3261 §17.1.1.2)
                            self._pending[call_id] = (p[0], time.monotonic() + 30, 16)
                    if status >= 200:
                        self._pending.pop(call_id, None)
                        self.finals.setdefault(call_id, status)
                        self.responses.setdefault(call_id, msg)
                if 200 <= status < 300:
                    self._ack(msg)
                continue
            method = first.split()[0]
            if method == "ACK":
                continue
            with self.lock:
                self.sources[call_id] = addr
            if method == "INVITE":
                with self.lock:
                    self.reinvites[call_id] = self.reinvites.get(call_id, 0) + 1
                self._answer(msg, addr, 200, self.SDP.format(port=self.rtp_port))
            else:
                if method == "BYE":
                    with self.lock:
                        self.byes.add(call_id)
                self._answer(msg, addr)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
