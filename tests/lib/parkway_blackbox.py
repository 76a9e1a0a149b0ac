#!/usr/bin/env python3
"""Black-box runner for Parkway tests (python3 stdlib only).

Starts the real `parkway` daemon on free loopback ports with a generated config in a temp folder, drives it
with SIPp scenarios and raw UDP, and always cleans up. Reusable by any test:

    from parkway_blackbox import Parkway, Sipp, free_port

    with Parkway(binary, modules=["registrar", "router"]) as pw:          # writes config, starts, waits
        uas = Sipp(scenario("uas.xml"), port=free_port(), calls=1).start()  # background phone
        Sipp(scenario("register.xml"), remote=pw.sip, calls=1,
             variables={"user": "2001", "cport": uas.port, "expires": 600}).run().check(successful=1)
        Sipp(scenario("uac.xml"), remote=pw.sip, calls=10, rate=20,
             variables={"callee": "2001"}).run().check(successful=10, failed=0)
        uas.wait().check(successful=1)
        pw.restart()             # same ports, same database
        pw.kill9(); pw.start()   # crash and recover
        pw.reload()              # SIGHUP
        pw.admin("GET", "/api/...")  # when admin=True

With PARKWAY_TEST_SIP_TRACE_DIR=DIR in the environment, every daemon started here also records its SIP traffic
([proxy] sip_trace = "pcap:DIR/<label>.pcap", docs/replay.md "Recording"): <label> is the test script's name and
its plain arguments (the ctest case), then the daemon's number in this process, e.g. test_park-park_invite_moh.1.
Unset, nothing changes.
Every process started here is stopped (SIGTERM, then SIGKILL after a timeout) by stop()/close() or at exit.
"""
from __future__ import annotations

import atexit
import csv
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
SCENARIOS = os.path.join(REPO, "examples", "sipp", "proxy")

_live: list = []  # processes to kill at exit if a test forgot


def _cleanup_all():
    for p in list(_live):
        try:
            p.close()
        except Exception:
            pass


atexit.register(_cleanup_all)


_trace_count = 0  # daemons of this process that record a trace (PARKWAY_TEST_SIP_TRACE_DIR)


def _trace_label() -> str:
    """test script name + its plain arguments (the case) + a counter: one pcap per daemon of the test."""
    global _trace_count
    _trace_count += 1
    import sys
    parts = [os.path.splitext(os.path.basename(sys.argv[0] or "python"))[0]]
    parts += [a for a in sys.argv[1:] if a and not a.startswith("-") and "/" not in a]
    label = "-".join(parts) + f".{_trace_count}"
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in label)


def scenario(name: str, folder: str = SCENARIOS) -> str:
    """Path of a scenario file in examples/sipp/proxy (or another folder)."""
    return os.path.join(folder, name)


def scratch_dir(prefix: str) -> str:
    """A new temporary folder (databases, configs, logs of one run), removed when this process exits unless
    PARKWAY_KEEP_TMP=1 (then it is kept for reading)."""
    path = tempfile.mkdtemp(prefix=prefix)
    if os.environ.get("PARKWAY_KEEP_TMP") != "1":
        atexit.register(shutil.rmtree, path, True)
    return path


def wait_until(pred, timeout: float = 10.0, step: float = 0.02):
    """Polls pred every `step` seconds until it returns something true or `timeout` seconds pass; returns its last
    value (so `calls = wait_until(lambda: parked(), 5)` gets what it waited for, falsy on timeout)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = pred()
        if value:
            return value
        time.sleep(step)
    return pred()


def free_port(host: str = "127.0.0.1") -> int:
    """A port free for both UDP and TCP on host, picked at random to keep parallel tests apart."""
    for _ in range(200):
        port = random.randint(20000, 32000)  # below Linux's ephemeral range (32768+), so no OS pick takes it
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            u.bind((host, port))
            t.bind((host, port))
            return port
        except OSError:
            continue
        finally:
            u.close()
            t.close()
    raise RuntimeError("no free port found")


def _toml(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return json.dumps(str(value))  # a JSON string is a valid TOML basic string


# --------------------------------------------------------------------------------------------- the daemon

class Parkway:
    """One parkway daemon on loopback. Ports and the database stay the same across restart()."""

    def __init__(self, binary: str, modules=("registrar", "router"), module_params: dict | None = None,
                 proxy: dict | None = None, admin: bool = False, log_level: str = "info", workdir: str | None = None,
                 module_dir: str | None = None, tcp: bool = True, config_text: str | None = None,
                 start: bool = True, ready_timeout: float = 15.0, auth: dict | None = None):
        self.binary = binary
        # SIPp 3.6 answers MD5 challenges only and takes the first one offered (ours is SHA-256): the black-box
        # phones speak for domains run without authentication, which loopback listeners permit (docs/auth.md).
        self.auth = auth if auth is not None else {"unauthenticated_domains": ["127.0.0.1", "pbx.example.com"]}
        self.modules = list(modules)
        self.module_params = module_params or {}
        self.proxy_extra = proxy or {}
        self.admin_enabled = admin
        self.log_level = log_level
        self.module_dir = module_dir
        self.tcp = tcp
        self.ready_timeout = ready_timeout
        self._own_dir = workdir is None
        self.dir = workdir or tempfile.mkdtemp(prefix="parkway-bb-")
        self.port = free_port()
        self.admin_port = free_port() if admin else 0
        self.admin_token = "test-token"
        self.db = os.path.join(self.dir, "parkway.db")
        self.config = os.path.join(self.dir, "parkway.toml")
        self.log_path = os.path.join(self.dir, "parkway.log")
        self.proc: subprocess.Popen | None = None
        self._log_file = None
        self._starts = 0
        trace_dir = os.environ.get("PARKWAY_TEST_SIP_TRACE_DIR")
        if trace_dir and config_text is None and "sip_trace" not in self.proxy_extra:
            os.makedirs(trace_dir, exist_ok=True)
            self.proxy_extra = dict(self.proxy_extra)
            self.proxy_extra["sip_trace"] = "pcap:" + os.path.join(os.path.abspath(trace_dir), _trace_label() + ".pcap")
        with open(self.config, "w") as f:
            f.write(config_text if config_text is not None else self.config_toml())
        _live.append(self)
        if start:
            self.start()

    # -- config
    @property
    def sip(self) -> str:
        """host:port to give SIPp as the remote."""
        return f"127.0.0.1:{self.port}"

    def config_toml(self) -> str:
        listen = [f"udp:127.0.0.1:{self.port}"] + ([f"tcp:127.0.0.1:{self.port}"] if self.tcp else [])
        p = {"listen": listen, "domains": ["127.0.0.1", "pbx.example.com"], "database": self.db,
             "log_level": self.log_level, "t1_ms": 500}
        if self.module_dir:
            p["module_dir"] = self.module_dir
        p.update(self.proxy_extra)
        out = ["[proxy]"] + [f"{k} = {_toml(v)}" for k, v in p.items()]
        if self.admin_enabled:
            out += ["", "[admin]", f'listen = "127.0.0.1:{self.admin_port}"', f"token = {_toml(self.admin_token)}",
                    "require_token = true"]
        if self.auth:
            out += ["", "[auth]"] + [f"{k} = {_toml(v)}" for k, v in self.auth.items()]
        out += ["", "[modules]", f"load = {_toml(self.modules)}"]
        for mod, params in self.module_params.items():
            out += ["", f"[module.{mod}]"] + [f"{k} = {_toml(v)}" for k, v in params.items()]
        return "\n".join(out) + "\n"

    # -- lifecycle
    def start(self):
        """Start and wait until the daemon says it is ready (and still runs)."""
        assert not self.alive(), "already running"
        self._starts += 1
        self._log_file = open(self.log_path, "a")
        self._log_file.write(f"---- start #{self._starts}\n")
        self._log_file.flush()
        self._log_offset = os.path.getsize(self.log_path)
        # TMPDIR: what the daemon writes to the temp folder (the DNS stub's resolv.conf for sofia-sip, removed at a
        # clean stop) stays in ours, also after a kill -9.
        self.proc = subprocess.Popen([self.binary, "--config", self.config], stdin=subprocess.DEVNULL,
                                     stdout=self._log_file, stderr=subprocess.STDOUT, cwd=self.dir,
                                     env=dict(os.environ, TMPDIR=self.dir))

        def ready():
            return "ready: listening on" in self._log_since_start() or self.proc.poll() is not None

        wait_until(ready, self.ready_timeout)
        if self.proc.poll() is not None or "ready: listening on" not in self._log_since_start():
            log = self.log()
            self.stop()
            raise RuntimeError(f"parkway did not start (exit {self.proc.returncode}); log:\n{log[-4000:]}")
        return self

    def _log_since_start(self) -> str:
        with open(self.log_path, errors="replace") as f:
            f.seek(self._log_offset)
            return f.read()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM, wait, then SIGKILL. Returns the exit code (negative = killed by that signal)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self._log_file:
            self._log_file.close()
            self._log_file = None
        return self.proc.returncode

    def kill9(self) -> int:
        """Crash it: SIGKILL, no cleanup inside the daemon."""
        if self.alive():
            self.proc.kill()
        rc = self.proc.wait()
        if self._log_file:
            self._log_file.close()
            self._log_file = None
        return rc

    def restart(self):
        self.stop()
        return self.start()

    def reload(self):
        """SIGHUP: the daemon re-reads its log level and calls every module's reload hook."""
        assert self.alive()
        self.proc.send_signal(signal.SIGHUP)

    def rewrite_config(self, text: str | None = None):
        with open(self.config, "w") as f:
            f.write(text if text is not None else self.config_toml())

    def log(self) -> str:
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def wait_log(self, text: str, timeout: float = 5.0) -> bool:
        return wait_until(lambda: text in self.log(), timeout)

    # -- admin API
    def admin(self, method: str, path: str, body=None, token: str | None = None, timeout: float = 5.0):
        """(status, parsed JSON or text) from the admin API."""
        assert self.admin_enabled, "start Parkway(admin=True)"
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(f"http://127.0.0.1:{self.admin_port}{path}", data=data, method=method)
        req.add_header("Authorization", f"Bearer {token if token is not None else self.admin_token}")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                status, text = r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            status, text = e.code, e.read().decode()
        try:
            return status, json.loads(text)
        except ValueError:
            return status, text

    # -- raw SIP over UDP
    def send_udp(self, data: bytes | str, timeout: float = 2.0, expect_reply: bool = True) -> str | None:
        """Send one datagram to the daemon from a fresh socket; return the first reply (text) or None."""
        return send_udp(self.port, data, timeout, expect_reply)

    def options(self, timeout: float = 2.0) -> int | None:
        """Status of an OPTIONS sip:127.0.0.1 (None when nothing answered)."""
        reply = options_ping(self.port, timeout)
        return reply

    # -- cleanup
    def close(self):
        self.stop()
        if self in _live:
            _live.remove(self)
        if self._own_dir and os.environ.get("PARKWAY_KEEP_TMP") != "1":
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:
            print(f"---- parkway log ({self.log_path})\n{self.log()[-6000:]}")
        self.close()


def send_udp(port: int, data: bytes | str, timeout: float = 2.0, expect_reply: bool = True,
             host: str = "127.0.0.1") -> str | None:
    if isinstance(data, str):
        data = data.replace("\r\n", "\n").replace("\n", "\r\n").encode()
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.bind((host, 0))
        s.sendto(data.replace(b"$LPORT", str(s.getsockname()[1]).encode()), (host, port))
        if not expect_reply:
            return None
        s.settimeout(timeout)
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                reply, _ = s.recvfrom(65535)
            except socket.timeout:
                return None
            text = reply.decode(errors="replace")
            if not text.startswith("SIP/2.0 100"):  # skip 100 Trying
                return text
        return None
    finally:
        s.close()


class KamailioProcess:
    """Kamailio in the foreground on one of our example configs: `template`'s `#!define NAME value` lines set from
    `defines` (each must occur exactly once), written to folder/kamailio.cfg, started with its working and runtime
    folders in `folder`, and waited for until it answers an OPTIONS to `ping_uri` on ip:port (10 s)."""

    def __init__(self, binary: str, template: str, defines: dict, folder: str, ip: str, port: int, ping_uri: str):
        self.ip, self.port, self.dir = ip, port, folder
        text = open(template).read()
        for name, value in defines.items():
            text, n = re.subn(rf"^#!define {name} .*$", f"#!define {name} {value}", text, flags=re.M)
            if n != 1:
                raise RuntimeError(f"{template}: no single '#!define {name}' line to set")
        self.cfg = os.path.join(folder, "kamailio.cfg")
        with open(self.cfg, "w") as f:
            f.write(text)
        self.log_path = os.path.join(folder, "kamailio.log")
        self._log = open(self.log_path, "w")
        # -DD -E: foreground, log to stderr; -w/-Y: its working and runtime folders are ours (no root needed).
        self.proc = subprocess.Popen([binary, "-f", self.cfg, "-DD", "-E", "-w", folder, "-Y", folder, "-m", "64",
                                      "-M", "8"], stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT)
        _live.append(self)
        branch = "z9hG4bK%016x" % random.getrandbits(64)
        ping = (f"OPTIONS {ping_uri} SIP/2.0\nVia: SIP/2.0/UDP {ip}:$LPORT;branch={branch};rport\n"
                f"Max-Forwards: 70\nFrom: <sip:ping@{ip}>;tag=p{branch[-6:]}\nTo: <{ping_uri}>\n"
                f"Call-ID: {branch}@ping\nCSeq: 1 OPTIONS\nContent-Length: 0\n\n")
        if not wait_until(lambda: self.proc.poll() is not None or send_udp(port, ping, 0.3, host=ip) is not None,
                          10, 0.1) or self.proc.poll() is not None:
            log = self.log()
            self.close()
            raise RuntimeError(f"kamailio did not start; log:\n{log[-3000:]}")

    @property
    def addr(self) -> tuple:
        return (self.ip, self.port)

    def log(self) -> str:
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def close(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if not self._log.closed:
            self._log.close()
        if self in _live:
            _live.remove(self)

    stop = close


def status_of(reply: str | None) -> int | None:
    if not reply or not reply.startswith("SIP/2.0 "):
        return None
    return int(reply.split(" ", 2)[1])


def options_ping(port: int, timeout: float = 2.0) -> int | None:
    branch = "z9hG4bK" + "".join(random.choice("0123456789abcdef") for _ in range(16))
    msg = (f"OPTIONS sip:127.0.0.1:{port} SIP/2.0\n"
           f"Via: SIP/2.0/UDP 127.0.0.1:$LPORT;branch={branch};rport\n"
           f"Max-Forwards: 70\nFrom: <sip:ping@127.0.0.1>;tag=p{branch[-6:]}\nTo: <sip:127.0.0.1:{port}>\n"
           f"Call-ID: ping-{branch}@127.0.0.1\nCSeq: 1 OPTIONS\nContent-Length: 0\n\n")
    return status_of(send_udp(port, msg, timeout))


# --------------------------------------------------------------------------------------------- SIPp

@dataclass
class SippResult:
    returncode: int
    stats: dict = field(default_factory=dict)  # last line of the -trace_stat CSV, column -> value
    output: str = ""
    errors: str = ""  # -trace_err log content
    cmd: list = field(default_factory=list)

    def stat(self, name: str) -> int:
        """A cumulative counter, e.g. stat("SuccessfulCall") or stat("FailedCall")."""
        v = self.stats.get(f"{name}(C)", self.stats.get(name, "0"))
        try:
            return int(float(v))
        except ValueError:
            return 0

    @property
    def successful(self) -> int:
        return self.stat("SuccessfulCall")

    @property
    def failed(self) -> int:
        return self.stat("FailedCall")

    def check(self, successful: int | None = None, failed: int | None = 0, returncode: int | None = None):
        """Raise AssertionError with the SIPp output when the counters or exit code differ."""
        problems = []
        if successful is not None and self.successful != successful:
            problems.append(f"successful calls {self.successful} != {successful}")
        if failed is not None and self.failed != failed:
            problems.append(f"failed calls {self.failed} != {failed}")
        expected_rc = returncode if returncode is not None else (0 if not failed else None)
        if expected_rc is not None and self.returncode != expected_rc:
            problems.append(f"sipp exit code {self.returncode} != {expected_rc}")
        if problems:
            raise AssertionError("; ".join(problems) + f"\ncmd: {' '.join(map(str, self.cmd))}\n"
                                 f"--- sipp errors:\n{self.errors[-3000:]}\n--- sipp output:\n{self.output[-3000:]}")
        return self


class Sipp:
    """One SIPp run. remote=None makes a server (uas) waiting on `port`; run() waits, start() backgrounds."""

    def __init__(self, scenario_file: str, remote: str | None = None, port: int | None = None, calls: int = 1,
                 rate: float | None = None, rate_period_ms: int | None = None, timeout: float = 30,
                 variables: dict | None = None, transport: str = "u1", extra: list | None = None,
                 limit: int | None = None, sipp: str = "sipp"):
        self.scenario = scenario_file
        self.remote = remote
        self.port = port or free_port()
        self.calls = calls
        self.timeout = timeout
        self.dir = tempfile.mkdtemp(prefix="parkway-sipp-")
        self.stat_file = os.path.join(self.dir, "stats.csv")
        self.err_file = os.path.join(self.dir, "errors.log")
        self.out_file = os.path.join(self.dir, "output.log")
        cmd = [sipp]
        if remote:
            cmd.append(remote)
        cmd += ["-sf", scenario_file, "-i", "127.0.0.1", "-p", str(self.port), "-m", str(calls), "-t", transport,
                "-nostdin", "-timeout", f"{int(timeout)}s", "-timeout_error", "-trace_stat", "-stf", self.stat_file,
                "-fd", "1", "-trace_err", "-error_file", self.err_file, "-max_recv_loops", "10000"]
        if rate is not None:
            cmd += ["-r", str(rate)]
        if rate_period_ms is not None:
            cmd += ["-rp", str(rate_period_ms)]
        if limit is not None:
            cmd += ["-l", str(limit)]
        for k, v in (variables or {}).items():
            cmd += ["-set", str(k), str(v)]
        cmd += extra or []
        self.cmd = cmd
        self.proc: subprocess.Popen | None = None
        self._out = None

    def start(self):
        self._out = open(self.out_file, "w")
        self.proc = subprocess.Popen(self.cmd, stdin=subprocess.DEVNULL, stdout=self._out, stderr=subprocess.STDOUT)
        _live.append(self)
        # A server must be listening before anyone sends to it.
        if not self.remote:
            wait_until(lambda: self._bound() or self.proc.poll() is not None, 5)
        return self

    def _bound(self) -> bool:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            s.bind(("127.0.0.1", self.port))
            return False
        except OSError:
            return True
        finally:
            s.close()

    def wait(self, timeout: float | None = None) -> SippResult:
        try:
            rc = self.proc.wait(timeout if timeout is not None else self.timeout + 15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        return self._result(rc)

    def stop(self) -> SippResult:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGUSR1)  # SIPp: soft exit
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self._result(self.proc.returncode)

    def run(self) -> SippResult:
        return self.start().wait()

    def _result(self, rc: int) -> SippResult:
        if self._out:
            self._out.close()
            self._out = None
        if self in _live:
            _live.remove(self)
        stats = {}
        try:
            with open(self.stat_file, newline="") as f:
                rows = [r for r in csv.reader(f, delimiter=";") if r]
            if len(rows) >= 2:
                stats = dict(zip(rows[0], rows[-1]))
        except FileNotFoundError:
            pass

        def read(p):
            try:
                with open(p, errors="replace") as f:
                    return f.read()
            except FileNotFoundError:
                return ""

        res = SippResult(rc, stats, read(self.out_file), read(self.err_file), self.cmd)
        if os.environ.get("PARKWAY_KEEP_TMP") != "1":
            shutil.rmtree(self.dir, ignore_errors=True)
        return res

    def close(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self._out:
            self._out.close()
            self._out = None
        if self in _live:
            _live.remove(self)
        if os.environ.get("PARKWAY_KEEP_TMP") != "1":
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        self.close()

    def __del__(self):
        # A Sipp that was built but never run (or whose result was never read) leaves no temp folder behind.
        try:
            if self.proc is None or self.proc.poll() is not None:
                if self._out:
                    self._out.close()
                if os.environ.get("PARKWAY_KEEP_TMP") != "1":
                    shutil.rmtree(self.dir, ignore_errors=True)
        except Exception:
            pass
