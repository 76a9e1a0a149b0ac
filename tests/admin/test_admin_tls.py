#!/usr/bin/env python3
"""The admin API over TLS and SIP user management, against the real daemon and parkctl (loopback only):

    test_admin_tls.py <parkway binary> <parkctl binary> <case>

A throwaway CA is made with the openssl CLI (make_test_ca.sh). Every process started here is stopped here, by
its own handle.

cases:
  parkctl_https     parkctl over HTTPS with --cacert / PARKWAY_CACERT; without the CA a verification error
                    (exit 5); --insecure; plain HTTP to the TLS port fails cleanly; mutual TLS (admin.tls_ca_file)
  check_config      a non-loopback admin.listen without TLS is refused by --check-config naming admin.listen;
                    allow_plaintext or TLS make it acceptable; bad TLS files name their key
  users_cli         parkctl users set/delete/list send the right requests (a recording HTTP server): the
                    password from stdin, never printed, never echoed on a terminal, an empty one refused
  users_daemon      users set against the real daemon over HTTPS answers 200 and the user shows in users list
                    (needs Proxy::setUser/listUsers from proxy/core/auth.cc)
"""
import http.server
import json
import os
import pty
import select
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import warnings

warnings.filterwarnings("ignore", category=DeprecationWarning)  # ssl.TLSVersion.TLSv1 (the TLS 1.1 probe)

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
from parkway_blackbox import Parkway, free_port  # noqa: E402

BINARY, PARKCTL, CASE = sys.argv[1], sys.argv[2], sys.argv[3]
TOKEN = "tls-test-token-0123456789"
DOMAIN = "pbx.example.com"
failures = 0


def check(cond, what):
    global failures
    if not cond:
        failures += 1
        print(f"FAIL: {what}", flush=True)
    return cond


def make_ca(folder):
    subprocess.run(["sh", os.path.join(HERE, "make_test_ca.sh"), folder], check=True, timeout=60)
    return {n: os.path.join(folder, n) for n in os.listdir(folder)}


def parkctl(*args, env=None, stdin=None, timeout=20):
    e = {k: v for k, v in os.environ.items() if not k.startswith("PARKWAY_")}
    e.update(env or {})
    p = subprocess.run([PARKCTL, *args], capture_output=True, text=True, timeout=timeout, env=e,
                       input=stdin if stdin is not None else "")
    return p.returncode, p.stdout, p.stderr


def admin_config(port, sip_port, folder, extra):
    lines = ["[proxy]", f'listen = ["udp:127.0.0.1:{sip_port}"]', f'domains = ["{DOMAIN}"]',
             f'database = "{folder}/parkway.db"', "", "[admin]", f'listen = "127.0.0.1:{port}"',
             f'token = "{TOKEN}"']
    lines += [f"{k} = {json.dumps(v)}" for k, v in extra.items()]
    lines += ["", "[modules]", 'load = ["registrar", "router"]']
    return "\n".join(lines) + "\n"


def tls_daemon(ca, extra=None):
    """The daemon with its admin API on HTTPS (and whatever else extra sets)."""
    pw = Parkway(BINARY, admin=True, start=False)
    pw.rewrite_config(admin_config(pw.admin_port, pw.port, pw.dir, {
        "tls_certificate": ca["server.pem"], "tls_private_key": ca["server.key"], **(extra or {})}))
    return pw.start()


def case_parkctl_https():
    with tempfile.TemporaryDirectory() as tmp:
        ca = make_ca(tmp)
        pw = tls_daemon(ca)
        try:
            url = f"https://127.0.0.1:{pw.admin_port}"
            base = ["--url", url, "--token", TOKEN]
            rc, out, err = parkctl(*base, "--cacert", ca["ca.pem"], "health")
            check(rc == 0 and "parkway is up" in out, f"https with --cacert: {rc} {out!r} {err!r}")
            rc, out, err = parkctl(*base, "--json", "stats", env={"PARKWAY_CACERT": ca["ca.pem"]})
            check(rc == 0 and "core" in json.loads(out or "{}"), f"https with PARKWAY_CACERT: {rc} {out!r} {err!r}")
            rc, out, err = parkctl("--token", TOKEN, "commands",
                                   env={"PARKWAY_URL": url, "PARKWAY_CACERT": ca["ca.pem"]})
            check(rc == 0, f"PARKWAY_URL https: {rc} {err!r}")
            rc, out, err = parkctl("--url", url, "--cacert", ca["ca.pem"], "--token", "wrong-token", "stats")
            check(rc == 4, f"wrong token over https: exit {rc} {err!r}")

            # No CA given (the system's do not know ours), or the wrong one: a clear verification error.
            for extra in ([], ["--cacert", ca["other-ca.pem"]]):
                rc, out, err = parkctl(*base, *extra, "health")
                check(rc == 5, f"untrusted certificate {extra}: exit {rc}, expected 5 ({err!r})")
                check("certificate" in err and "not verified" in err and "--cacert" in err,
                      f"untrusted certificate {extra}: message {err!r}")
            rc, out, err = parkctl(*base, "--cacert", os.path.join(tmp, "nope.pem"), "health")
            check(rc == 2 and "CA file" in err, f"unreadable --cacert: {rc} {err!r}")
            rc, out, err = parkctl(*base, "--insecure", "health")
            check(rc == 0, f"--insecure: {rc} {err!r}")

            # Plain HTTP to the TLS port: parkctl fails at once with a hint; a raw client gets no HTTP answer.
            t0 = time.monotonic()
            rc, out, err = parkctl("--url", f"http://127.0.0.1:{pw.admin_port}", "--token", TOKEN, "--timeout",
                                   "5000", "health")
            check(rc not in (0, 3) and "https://" in err, f"http:// to the TLS port: {rc} {err!r}")
            check(time.monotonic() - t0 < 4, "http:// to the TLS port took too long")
            with socket.create_connection(("127.0.0.1", pw.admin_port), timeout=5) as s:
                s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
                got = b""
                try:
                    while True:
                        chunk = s.recv(4096)
                        if not chunk:
                            break
                        got += chunk
                except (ConnectionResetError, socket.timeout):
                    pass
            check(b"HTTP/" not in got, f"plain HTTP answered on the TLS port: {got[:100]!r}")

            # A TLS client that sends half a request head is cut like a plain one (header_timeout_ms).
            ctx = ssl.create_default_context(cafile=ca["ca.pem"])
            with socket.create_connection(("127.0.0.1", pw.admin_port), timeout=5) as raw:
                with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
                    check(s.version() in ("TLSv1.2", "TLSv1.3"), f"protocol {s.version()}")
                    s.sendall(b"GET /api/events HTTP/1.1\r\nAuthorization: Bearer " + TOKEN.encode() + b"\r\n\r\n")
                    head = s.recv(4096)
                    check(head.startswith(b"HTTP/1.1 200") and b"text/event-stream" in head,
                          f"event stream over TLS: {head[:200]!r}")
            # TLS 1.1 is refused.
            old = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            old.load_verify_locations(ca["ca.pem"])
            try:
                old.minimum_version = ssl.TLSVersion.TLSv1
                old.maximum_version = ssl.TLSVersion.TLSv1_1
                with socket.create_connection(("127.0.0.1", pw.admin_port), timeout=5) as raw:
                    try:
                        with old.wrap_socket(raw, server_hostname="127.0.0.1"):
                            check(False, "a TLS 1.1 handshake was accepted")
                    except (ssl.SSLError, ConnectionResetError):
                        pass
            except (ValueError, ssl.SSLError):
                pass  # this Python/OpenSSL cannot even offer TLS 1.1
            # Counted once the server has let go of those connections (its next tick, within a second or two).
            counted = False
            for _ in range(50):
                rc, out, err = parkctl(*base, "--cacert", ca["ca.pem"], "metrics")
                counted = rc == 0 and 'parkway_admin_refused_total{reason="tls_handshake_failed"}' in out
                if counted:
                    break
                time.sleep(0.1)
            check(counted, f"tls_handshake_failed counted: {rc} {err!r}")
        finally:
            pw.close()

        # Mutual TLS: admin.tls_ca_file asks every client for a certificate that CA signed.
        pw = tls_daemon(ca, {"tls_ca_file": ca["ca.pem"]})
        try:
            rc, out, err = parkctl("--url", f"https://127.0.0.1:{pw.admin_port}", "--token", TOKEN, "--cacert",
                                   ca["ca.pem"], "health")
            check(rc == 5 and "--cert" in err, f"no client certificate: exit {rc} {err!r}")
            rc, out, err = parkctl("--url", f"https://127.0.0.1:{pw.admin_port}", "--token", TOKEN, "--cacert",
                                   ca["ca.pem"], "--cert", ca["client.pem"], "--key", ca["client.key"], "health")
            check(rc == 0, f"parkctl with a client certificate: exit {rc} {err!r}")
            ctx = ssl.create_default_context(cafile=ca["ca.pem"])
            ctx.load_cert_chain(ca["client.pem"], ca["client.key"])
            with socket.create_connection(("127.0.0.1", pw.admin_port), timeout=5) as raw:
                with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
                    s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                    check(s.recv(4096).startswith(b"HTTP/1.1 200"), "client certificate accepted")
        finally:
            pw.close()


def check_config(folder, extra, listen):
    path = os.path.join(folder, "check.toml")
    with open(path, "w") as f:
        f.write(admin_config(0, 5060, folder, extra).replace('listen = "127.0.0.1:0"', f'listen = "{listen}"'))
    p = subprocess.run([BINARY, "--check-config", path], capture_output=True, text=True, timeout=30)
    return p.returncode, p.stdout + p.stderr


def case_check_config():
    with tempfile.TemporaryDirectory() as tmp:
        ca = make_ca(tmp)
        tls = {"tls_certificate": ca["server.pem"], "tls_private_key": ca["server.key"]}
        for listen in ("0.0.0.0:8089", "[::]:8089", "192.0.2.10:8089"):
            rc, out = check_config(tmp, {}, listen)
            check(rc == 2 and "admin.listen" in out and "allow_plaintext" in out and "TLS" in out,
                  f"{listen} without TLS: {rc} {out!r}")
            rc, out = check_config(tmp, {"allow_plaintext": True}, listen)
            check(rc == 0 and "config OK" in out, f"{listen} allow_plaintext: {rc} {out!r}")
            rc, out = check_config(tmp, tls, listen)
            check(rc == 0 and "config OK" in out, f"{listen} with TLS: {rc} {out!r}")
        rc, out = check_config(tmp, {}, "127.0.0.1:8089")
        check(rc == 0, f"loopback stays plain by default: {rc} {out!r}")
        rc, out = check_config(tmp, {"allow_plaintext": "yes"}, "0.0.0.0:8089")
        check(rc == 2 and "admin.allow_plaintext" in out, f"allow_plaintext not a bool: {rc} {out!r}")
        rc, out = check_config(tmp, {"tls_certificate": ca["server.pem"]}, "0.0.0.0:8089")
        check(rc == 2 and "admin.tls_private_key" in out, f"certificate without key: {rc} {out!r}")
        rc, out = check_config(tmp, {**tls, "tls_certificate": os.path.join(tmp, "none.pem")}, "0.0.0.0:8089")
        check(rc == 2 and "admin.tls_certificate" in out, f"missing certificate file: {rc} {out!r}")
        rc, out = check_config(tmp, {**tls, "tls_private_key": ca["client.key"]}, "0.0.0.0:8089")
        check(rc == 2 and "admin.tls_private_key" in out, f"key of another certificate: {rc} {out!r}")
        # Relative to the config file's folder.
        rc, out = check_config(tmp, {"tls_certificate": "server.pem", "tls_private_key": "server.key"},
                               "0.0.0.0:8089")
        check(rc == 0, f"relative TLS paths: {rc} {out!r}")
        rc, out = check_config(tmp, {"tls_ca_file": ca["ca.pem"], "allow_plaintext": True}, "0.0.0.0:8089")
        check(rc == 2 and "admin.tls_" in out, f"tls_ca_file without a certificate: {rc} {out!r}")


class Recorder(http.server.BaseHTTPRequestHandler):
    """Answers every request 200 with a canned JSON body and records it."""
    requests = []
    answer = {}

    def _serve(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else b""
        Recorder.requests.append((self.command, self.path, dict(self.headers), body))
        out = json.dumps(Recorder.answer.get(self.command, {})).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    do_GET = do_PUT = do_DELETE = do_POST = _serve

    def log_message(self, *args):
        pass


def case_users_cli():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = ["--url", f"http://127.0.0.1:{server.server_address[1]}", "--token", TOKEN]
    secret = "c0rrect-h0rse-battery"
    try:
        Recorder.answer = {"PUT": {"domain": DOMAIN, "user": "alice", "created": True},
                           "GET": [{"user": "alice", "algorithms": ["SHA-256", "MD5"], "register_for": ["1099"]}],
                           "DELETE": {"deleted": True}}
        rc, out, err = parkctl(*base, "users", "set", DOMAIN, "alice", "--register-for", "1099", "--register-for",
                               "1100", stdin=secret + "\n")
        check(rc == 0 and "alice@pbx.example.com created" in out, f"users set: {rc} {out!r} {err!r}")
        check(secret not in out + err, "users set printed the password")
        check(len(Recorder.requests) == 1, f"users set: {len(Recorder.requests)} requests")
        method, path, headers, body = Recorder.requests[-1]
        check((method, path) == ("PUT", "/api/users/pbx.example.com/alice"), f"users set request: {method} {path}")
        check(json.loads(body) == {"password": secret, "register_for": ["1099", "1100"]}, f"users set body: {body!r}")
        check(headers.get("Authorization") == f"Bearer {TOKEN}", "users set: bearer token")
        check(headers.get("Content-Type") == "application/json", "users set: content type")

        # Only the first line is the password; CRLF is not part of it; no --register-for sends [].
        Recorder.requests.clear()
        rc, out, err = parkctl(*base, "users", "set", DOMAIN, "bob", stdin=secret + "\r\nsecond line\n")
        check(rc == 0 and json.loads(Recorder.requests[-1][3]) == {"password": secret, "register_for": []},
              f"users set, one line: {rc} {Recorder.requests[-1:]!r}")

        # An empty password is refused before anything is sent.
        Recorder.requests.clear()
        for given in ("", "\n", "\r\n"):
            rc, out, err = parkctl(*base, "users", "set", DOMAIN, "alice", stdin=given)
            check(rc == 2 and "empty password" in err, f"empty password {given!r}: {rc} {err!r}")
        check(not Recorder.requests, f"an empty password was sent: {Recorder.requests!r}")

        # On a terminal: a prompt, no echo, the password sent all the same.
        Recorder.requests.clear()
        master, slave = pty.openpty()
        e = {k: v for k, v in os.environ.items() if not k.startswith("PARKWAY_")}
        p = subprocess.Popen([PARKCTL, *base, "users", "set", DOMAIN, "carol"], stdin=slave, stdout=subprocess.PIPE,
                             stderr=slave, env=e)
        os.close(slave)
        seen = b""
        deadline = time.monotonic() + 10
        while b"Password for carol@pbx.example.com" not in seen and time.monotonic() < deadline:
            if select.select([master], [], [], 0.2)[0]:
                seen += os.read(master, 1024)
        time.sleep(0.2)  # the terminal's echo is off by now
        os.write(master, (secret + "\n").encode())
        out, _ = p.communicate(timeout=10)
        while select.select([master], [], [], 0.3)[0]:
            try:
                chunk = os.read(master, 1024)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
        os.close(master)
        check(p.returncode == 0, f"users set on a terminal: exit {p.returncode} {out!r} {seen!r}")
        check(b"Password for carol@pbx.example.com" in seen, f"no prompt on the terminal: {seen!r}")
        check(secret.encode() not in seen + out, f"the password was echoed: {seen!r}")
        check(Recorder.requests and json.loads(Recorder.requests[-1][3]).get("password") == secret,
              "users set on a terminal: password sent")

        Recorder.requests.clear()
        rc, out, err = parkctl(*base, "users", "list", DOMAIN)
        check(rc == 0 and "alice" in out and "1099" in out and "USER" in out, f"users list: {rc} {out!r} {err!r}")
        rc, out, err = parkctl(*base, "users", "delete", DOMAIN, "alice")
        check(rc == 0 and "deleted" in out, f"users delete: {rc} {out!r} {err!r}")
        check([(m, p) for m, p, _, _ in Recorder.requests] ==
              [("GET", "/api/users/pbx.example.com"), ("DELETE", "/api/users/pbx.example.com/alice")],
              f"users list/delete requests: {Recorder.requests!r}")
        # Usage errors.
        for args in (["users"], ["users", "set", DOMAIN], ["users", "list"], ["users", "delete", DOMAIN]):
            rc, out, err = parkctl(*base, *args)
            check(rc == 2, f"{args}: exit {rc}, expected 2")
        rc, out, err = parkctl("users", "set", "--help")
        check(rc == 0 and "stdin" in out and "--register-for" in out, f"users set --help: {out!r}")
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def case_users_daemon():
    with tempfile.TemporaryDirectory() as tmp:
        ca = make_ca(tmp)
        pw = tls_daemon(ca)
        try:
            base = ["--url", f"https://127.0.0.1:{pw.admin_port}", "--token", TOKEN, "--cacert", ca["ca.pem"]]
            secret = "s1p-passw0rd-for-alice"
            rc, out, err = parkctl(*base, "users", "set", DOMAIN, "alice", "--register-for", "1099",
                                   stdin=secret + "\n")
            check(rc == 0, f"users set against the daemon: exit {rc} {out!r} {err!r}")
            check(secret not in out + err, "users set printed the password")
            rc, out, err = parkctl(*base, "--json", "users", "list", DOMAIN)
            check(rc == 0, f"users list: exit {rc} {err!r}")
            rows = json.loads(out) if rc == 0 else []
            if isinstance(rows, dict):
                rows = next((v for v in rows.values() if isinstance(v, list)), [])
            alice = [r for r in rows if r.get("user") == "alice"]
            check(len(alice) == 1 and alice[0].get("register_for") == ["1099"], f"alice in users list: {rows!r}")
            check(secret not in out, "users list shows the password")
            check(secret not in pw.log(), "the daemon logged the password")
            rc, out, err = parkctl(*base, "users", "delete", DOMAIN, "alice")
            check(rc == 0, f"users delete: exit {rc} {err!r}")
            rc, out, err = parkctl(*base, "--json", "users", "list", DOMAIN)
            check(rc == 0 and "alice" not in out, f"alice gone: {rc} {out!r}")
        finally:
            pw.close()


CASES = {name[5:]: fn for name, fn in globals().items() if name.startswith("case_")}
if CASE not in CASES:
    print(f"unknown case {CASE}; known: {', '.join(CASES)}")
    sys.exit(2)
CASES[CASE]()
print(f"{'FAILED' if failures else 'OK'}: {CASE}: {failures} failure(s)")
sys.exit(1 if failures else 0)
