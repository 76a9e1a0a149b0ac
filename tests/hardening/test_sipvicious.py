#!/usr/bin/env python3
"""SIPVicious (Debian's sipvicious: svmap, svwar, svcrack) against the real daemon with digest authentication on.

    test_sipvicious.py <parkway binary>

One daemon on loopback (registrar, callpark, router as in examples/parkway.toml; users of pbx.example.com with
strong random passwords in a users file; rate limiting on; [auth] max_failures failures in failure_window_s ban
the source for [proxy] ban_ms). The attacker is 127.0.0.1, the legitimate phones are 127.0.0.3 and 127.0.0.4
(all of 127/8 is on lo):

1. svmap finds the server (fine: it answers SIP). svwar cannot tell existing extensions (1001-1003) from
   missing ones (1000, 1004-1010): each extension gets the same classification from svwar, and the raw answers
   to REGISTER and INVITE for every extension are the same once per-request values are masked.
2. svcrack does not find the password: the stock svcrack, and svcrack taught to answer the MD5 challenge
   (svcrack_md5.py) with a dictionary of common and extension-derived passwords.
3. The failed authentications ban 127.0.0.1: metrics (parkway_auth_failures_total, auth_source_failures for
   127.0.0.1, parkway_limit_refusals_total{limit="auth_ban"}, dropped datagrams), the log line
   "limit auth_ban reached: 127.0.0.1", and an OPTIONS from 127.0.0.1 stays unanswered; the guessing stops
   after max_failures answered guesses.
4. Meanwhile phones on 127.0.0.3/.4 authenticate with SHA-256 digest (tests/lib/sip_digest_client.py) and
   register, park (*68103) and retrieve (*88103, RFC 3725 bridge: the parked phone answers our re-INVITE) and
   hang up, before, during and after the attack: every attempt succeeds, and their sources have no failure.

Each sipvicious process runs with its own local port and a timeout and is killed by PID if it overstays.
"""
from __future__ import annotations

import atexit
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
from parkway_blackbox import Parkway, free_port, status_of  # noqa: E402
from sip_digest_client import SipPhone, parse  # noqa: E402

BINARY = os.path.abspath(sys.argv[1])
DOMAIN = "pbx.example.com"
ATTACKER = "127.0.0.1"
PHONE_A, PHONE_B, PROBER = "127.0.0.3", "127.0.0.4", "127.0.0.5"
USERS = ["1001", "1002", "1003"]
SCAN = [str(e) for e in range(1000, 1011)]  # 1001-1003 exist, the rest do not
MAX_FAILURES = 10
FAILURE_WINDOW_S = 60
BAN_MS = 90000  # longer than the rest of the test after the attack
# What svcrack tries: common passwords, the extension and the domain in the usual shapes, and the example
# configuration's own password pattern. The users' passwords are random (secrets), so none of these.
DICTIONARY = ["password", "123456", "12345678", "1234", "0000", "1111", "qwerty", "letmein", "admin", "secret",
              "welcome", "abc123", "iloveyou", "monkey", "dragon", "sunshine", "passw0rd", "Password1", "changeme",
              "1001", "10011001", "1001pass", "pass1001", "password1001", "1001secret", "sip1001", "pbx.example.com",
              "example-1001-secret", "example", "voip", "sipsip", "asterisk", "parkway", "parkway1", "test",
              "test1234", "default", "root", "toor", "guest"]
TOOL_TIMEOUT = 45.0

_procs: list = []  # sipvicious processes still running: killed by PID at exit


def _kill_all():
    for p in list(_procs):
        if p.poll() is None:
            p.kill()
            p.wait()


atexit.register(_kill_all)


def tool(name: str) -> str:
    path = shutil.which(name) or shutil.which("sipvicious_" + name)
    if not path:
        raise SystemExit(f"{name} not found (apt-get install sipvicious)")
    return path


def interpreter_of(script: str) -> str:
    """The Python the installed sipvicious scripts run with (their #! line), which can import the package."""
    with open(os.path.realpath(script)) as f:
        first = f.readline()
    return first[2:].strip().split()[0] if first.startswith("#!") else sys.executable


class Tool:
    """One sipvicious run in the background: stdout+stderr to a file, a deadline, killed by PID past it."""

    def __init__(self, cmd: list, timeout: float = TOOL_TIMEOUT):
        self.cmd = [str(c) for c in cmd]
        self.timeout = timeout
        self.out_path = os.path.join(WORK, f"tool-{len(_procs)}-{os.path.basename(self.cmd[0])}.log")
        self._out = open(self.out_path, "w")
        self.proc = subprocess.Popen(self.cmd, stdin=subprocess.DEVNULL, stdout=self._out, stderr=subprocess.STDOUT)
        self.deadline = time.monotonic() + timeout
        self.killed = False
        _procs.append(self.proc)

    def running(self) -> bool:
        if self.proc.poll() is None and time.monotonic() > self.deadline:
            self.proc.kill()  # by PID
            self.killed = True
        return self.proc.poll() is None

    def wait(self) -> str:
        try:
            self.proc.wait(max(0.1, self.deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.killed = True
            self.proc.wait()
        self._out.close()
        _procs.remove(self.proc)
        with open(self.out_path, errors="replace") as f:
            self.output = f.read()
        return self.output


def run_tool(cmd: list, timeout: float = TOOL_TIMEOUT) -> str:
    return Tool(cmd, timeout).wait()


def table(output: str) -> dict:
    """The result table sipvicious prints (pptable): first column -> second column, header row left out."""
    rows = {}
    for line in output.splitlines():
        m = re.match(r"^\|\s*(.*?)\s*\|\s*(.*?)\s*\|", line)
        if m and m.group(1) not in ("Extension", "SIP Device", "Username"):
            rows[m.group(1)] = m.group(2)
    return rows


def excerpt(output: str, n: int = 12) -> str:
    lines = [ln[:220] for ln in output.strip().splitlines()]
    return "\n    ".join(lines[-n:])


def metrics(pw: Parkway) -> dict:
    status, text = pw.admin("GET", "/metrics")
    assert status == 200, f"/metrics answered {status}: {text}"
    out = {}
    for line in str(text).splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            out[key] = float(value)
    return out


# ------------------------------------------------------------------------------------------------- raw probes

def probe(port: int, method: str, ext: str) -> str:
    """The answer to a REGISTER (To: ext) or INVITE (to ext, From ext) without credentials from PROBER, with
    what differs per request by design masked (tags, branch, Call-ID, nonce, the extension itself)."""
    branch = "z9hG4bK" + secrets.token_hex(8)
    call_id = secrets.token_hex(8) + "@" + PROBER
    ruri = f"sip:{DOMAIN}" if method == "REGISTER" else f"sip:{ext}@{DOMAIN}"
    body = "" if method == "REGISTER" else (f"v=0\r\no=p 1 1 IN IP4 {PROBER}\r\ns=-\r\nc=IN IP4 {PROBER}\r\nt=0 0\r\n"
                                            f"m=audio 9 RTP/AVP 0\r\n")
    head = (f"{method} {ruri} SIP/2.0\r\nVia: SIP/2.0/UDP {PROBER}:$LPORT;branch={branch};rport\r\n"
            f"Max-Forwards: 70\r\nFrom: <sip:{ext}@{DOMAIN}>;tag=p{branch[-6:]}\r\nTo: <sip:{ext}@{DOMAIN}>\r\n"
            f"Call-ID: {call_id}\r\nCSeq: 1 {method}\r\nContact: <sip:{ext}@{PROBER}:$LPORT>\r\n"
            + ("Expires: 60\r\n" if method == "REGISTER" else "Content-Type: application/sdp\r\n")
            + f"Content-Length: {len(body)}\r\n\r\n{body}")
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.bind((PROBER, 0))
        lport = s.getsockname()[1]
        s.sendto(head.replace("$LPORT", str(lport)).encode(), ("127.0.0.1", port))
        s.settimeout(3)
        while True:
            data, _ = s.recvfrom(65535)
            r = parse(data)
            if r and r.is_response and r.status >= 200:
                break
        if method == "INVITE":  # ACK the refusal (same branch) so that it is not retransmitted
            ack = (f"ACK {ruri} SIP/2.0\r\nVia: SIP/2.0/UDP {PROBER}:{lport};branch={branch};rport\r\n"
                   f"Max-Forwards: 70\r\nFrom: <sip:{ext}@{DOMAIN}>;tag=p{branch[-6:]}\r\nTo: {r.get('to')}\r\n"
                   f"Call-ID: {call_id}\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n")
            s.sendto(ack.encode(), ("127.0.0.1", port))
    finally:
        s.close()
    text = r.first + "\n" + "\n".join(f"{k}: {v}" for k, v in r.headers)
    text = text.replace(call_id, "CALLID").replace(branch, "BRANCH").replace(f"sip:{ext}@", "sip:EXT@")
    text = re.sub(r"tag=[^;>\s,]+", "tag=TAG", text)
    text = re.sub(r"rport=\d+", "rport=PORT", text).replace(str(lport), "PORT")
    text = re.sub(r'nonce="([^"]*)"', lambda m: f'nonce="<{len(m.group(1))} chars>"', text)
    return text


# ------------------------------------------------------------------------------------------------- phones

class Phones:
    """1001 on PHONE_A parks, 1002 on PHONE_B retrieves; every attempt and its outcome is recorded."""

    def __init__(self, pw: Parkway, passwords: dict):
        self.pw = pw
        self.a = SipPhone(("127.0.0.1", pw.port), DOMAIN, "1001", passwords["1001"], local_ip=PHONE_A)
        self.b = SipPhone(("127.0.0.1", pw.port), DOMAIN, "1002", passwords["1002"], local_ip=PHONE_B)
        self.attempts: list = []  # (when, ok, detail)

    def cycle(self, when: str) -> bool:
        t = time.monotonic()
        try:
            detail = self._cycle()
            ok = detail == "ok"
        except Exception as e:  # an exception is a failed attempt, with its story
            ok, detail = False, f"{type(e).__name__}: {e}"
        self.attempts.append((when, ok, f"{detail} ({time.monotonic() - t:.1f} s)"))
        return ok

    def _cycle(self) -> str:
        a, b = self.a, self.b
        for p in (a, b):
            r = p.register(expires=60)
            if r.status != 200:
                return f"REGISTER {p.user} -> {r.status}"
        park = a.invite("*68103")
        if park.status != 200:
            return f"INVITE *68103 -> {park.status}"
        a.ack(park)
        status, body = self.pw.admin("GET", f"/api/parked?domain={DOMAIN}&extension=103")
        parked = [c for c in (body.get("parked", []) if isinstance(body, dict) else []) if c.get("extension") == "103"]
        if status != 200 or not parked:
            return f"not parked on 103: {status} {body}"
        reinvites_before = sum(1 for m, cid, _ in a.received if m == "INVITE" and cid == park.dialog.call_id)
        get = b.invite("*88103")
        if get.status != 200:
            return f"INVITE *88103 -> {get.status}"
        b.ack(get)
        reinvites = sum(1 for m, cid, _ in a.received if m == "INVITE" and cid == park.dialog.call_id)
        if reinvites <= reinvites_before:
            return "the parked phone got no re-INVITE for the bridge"
        if b"m=audio" not in get.response.body:
            return "the retriever's 200 has no SDP"
        bye = b.bye(get)
        if bye.status != 200:
            return f"BYE from the retriever -> {bye.status}"
        if not park.dialog.ended.wait(5):  # the bridge ends the other leg
            bye = a.bye(park)
            if bye.status != 200:
                return f"the parked leg got no BYE, and its own BYE -> {bye.status}"
        errors = a.errors + b.errors
        if errors:
            return f"phone errors: {errors}"
        return "ok"

    def close(self):
        for p in (self.a, self.b):
            try:
                p.register(expires=0)
            except Exception:
                pass
            p.close()


# ------------------------------------------------------------------------------------------------- the test

def main():
    passwords = {u: secrets.token_urlsafe(18) for u in USERS}  # 24 random characters each
    for u, pwd in passwords.items():
        assert pwd not in DICTIONARY, "the dictionary must not hold the password"
    moh_min = (free_port() // 2) * 2
    pw = Parkway(BINARY, modules=["registrar", "callpark", "router"], admin=True, start=False,
                 proxy={"rate_limit": 500, "rate_burst": 1000, "ban_ms": BAN_MS, "record_route": True},
                 auth={"users_file": "users.toml", "max_failures": MAX_FAILURES,
                       "failure_window_s": FAILURE_WINDOW_S},
                 module_params={"registrar": {"min_expires": 60, "max_expires": 3600},
                                "callpark": {"refer_mode": "passthrough", "retrieve_mode": "bridge",
                                             "moh_ip": "127.0.0.1", "moh_port_min": moh_min,
                                             "moh_port_max": min(moh_min + 100, 65534)}})
    global WORK
    WORK = pw.dir
    with open(os.path.join(pw.dir, "users.toml"), "w") as f:
        for u in USERS:
            f.write(f'[[user]]\ndomain = "{DOMAIN}"\nname = "{u}"\npassword = "{passwords[u]}"\n\n')
    with open(os.path.join(pw.dir, "dictionary.txt"), "w") as f:
        f.write("\n".join(DICTIONARY) + "\n")
    started = time.monotonic()
    report = []
    phones = None
    with pw:
        pw.start()
        port = pw.port
        phones = Phones(pw, passwords)
        try:
            assert phones.cycle("before the attack"), f"a legitimate call failed before any attack: {phones.attempts}"
            # -b binds svmap/svwar to the attacker's address (svcrack ignores it, but sends from 127.0.0.1 too:
            # the destination is 127.0.0.1); -x names it in Via instead of what the host name resolves to.
            common = ["-p", port, "-b", ATTACKER, "-x", ATTACKER]

            # -- 1. svmap: it finds the server, that is fine
            out = run_tool([tool("svmap"), *common, "-P", free_port(ATTACKER), ATTACKER], timeout=30)
            report.append(f"svmap:\n    {excerpt(out, 6)}")
            assert f"{ATTACKER}:{port}" in table(out), f"svmap did not find the server:\n{out}"

            # -- 1. svwar: existing and missing extensions look the same
            # (a) the scan as a user runs it: svwar first REGISTERs a random (missing) extension; it is challenged,
            # so svwar says it cannot tell and lists nothing.
            out = run_tool([tool("svwar"), *common, "-P", free_port(ATTACKER), "--domain", DOMAIN,
                            "-e", f"{SCAN[0]}-{SCAN[-1]}", ATTACKER])
            report.append(f"svwar -e{SCAN[0]}-{SCAN[-1]} (REGISTER):\n    {excerpt(out, 4)}")
            assert table(out) == {}, f"svwar listed extensions:\n{out}"
            # (b) --force, one extension per run (REGISTER and INVITE), each on its own source port (a port
            # reused between runs receives the previous run's retransmitted 407s, which svwar then reports as
            # extensions). svwar takes the answer to its random extension as "no such user" and lists an
            # extension only when the extension's answer has another status line. So an extension listed in
            # some runs and not in others, or listed with another label, is one svwar could tell apart; the same
            # outcome for all 11 (nothing listed: the answers are the same, or all listed alike, "reqauth",
            # which says nothing about existence either) means it cannot.
            runs = {}
            for method in ("REGISTER", "INVITE"):
                for ext in SCAN:
                    runs[(method, ext)] = Tool([tool("svwar"), *common, "-P", free_port(ATTACKER), "--domain", DOMAIN,
                                                "--force", "-m", method, "-e", ext, ATTACKER])
            verdicts = {}
            for (method, ext), t in runs.items():
                out = t.wait()
                verdicts[(method, ext)] = table(out).get(ext, "not listed")
                if ext in ("1000", "1001"):
                    report.append(f"svwar --force -m {method} -e{ext}:\n    {excerpt(out, 4)}")
            for method in ("REGISTER", "INVITE"):
                seen = {ext: verdicts[(method, ext)] for ext in SCAN}
                report.append(f"svwar --force -m {method}, per extension: {seen}")
                assert len(set(seen.values())) == 1, \
                    f"svwar -m {method} tells extensions apart (1001-1003 exist): {seen}"
            # the raw answers, with only what differs per request by design masked
            for method in ("REGISTER", "INVITE"):
                answers = {ext: probe(port, method, ext) for ext in SCAN}
                distinct = set(answers.values())
                report.append(f"raw {method} answers: {len(distinct)} distinct over {len(SCAN)} extensions:\n    "
                              + next(iter(distinct)).replace("\n", "\n    "))
                assert len(distinct) == 1, f"{method}: existing and missing users get different answers:\n" + \
                    "\n---\n".join(f"{e}:\n{a}" for e, a in answers.items())

            # -- 2. svcrack, stock: Parkway's first challenge is SHA-256
            m0 = metrics(pw)
            dictionary = os.path.join(pw.dir, "dictionary.txt")
            out = run_tool([tool("svcrack"), *common, "-P", free_port(ATTACKER), "--domain", DOMAIN, "-u", "1001",
                            "-d", dictionary, "--maximumtime", "3", ATTACKER])
            m1 = metrics(pw)
            stock = m1.get(f'parkway_auth_source_failures_total{{source="{ATTACKER}"}}', 0) - \
                m0.get(f'parkway_auth_source_failures_total{{source="{ATTACKER}"}}', 0)
            said = "\n".join(ln for ln in out.splitlines()
                             if re.search(r"algorithm|Error|found nothing|password for|Unhandled", ln))
            report.append(f"svcrack (stock), {stock:g} failed authentications:\n    {excerpt(said, 6)}")
            assert "The password for" not in out and not table(out), f"svcrack (stock) found a password:\n{out}"

            # -- 2./3./4. svcrack answering the MD5 challenge, while the phones keep calling
            crack = Tool([interpreter_of(tool("svcrack")), os.path.join(HERE, "svcrack_md5.py"), *common,
                          "-P", free_port(ATTACKER), "--domain", DOMAIN, "-u", "1001", "-d", dictionary,
                          "--maximumtime", "3", "-vv", ATTACKER], timeout=60)
            during = 0
            while crack.running():
                phones.cycle("during the attack")
                during += 1
                pause = time.monotonic() + 0.5  # a few calls, not a load test
                while crack.running() and time.monotonic() < pause:
                    time.sleep(0.05)
            out = crack.wait()
            assert not crack.killed, f"svcrack did not end within {crack.timeout} s:\n{out[-3000:]}"
            tried = re.findall(r"DEBUG:\S+:trying (\S+)", out)  # -vv: svcrack logs each guess it sends
            report.append(f"svcrack (MD5 challenge, {len(DICTIONARY)} passwords, {len(tried)} sent: {tried}):\n    "
                          + excerpt("\n".join(ln for ln in out.splitlines() if "DEBUG" not in ln), 6))
            assert "The password for" not in out and not table(out), f"svcrack found a password:\n{out}"
            m2 = metrics(pw)
            banned_now = m2.get("parkway_sip_banned_sources", 0)
            for _ in range(2):
                phones.cycle("after the attack, attacker banned")

            # -- 3. the attacker is banned, because of its failed authentications
            def d(name, before=m1):
                return m2.get(name, 0) - before.get(name, 0)

            src_fail = d(f'parkway_auth_source_failures_total{{source="{ATTACKER}"}}')
            report.append("metrics after the attack: " + ", ".join(
                f"{k} {v:g}" for k, v in sorted(m2.items())
                if re.match(r"parkway_(auth_|limit_refusals|sip_ban|sip_dropped)", k)))
            assert d('parkway_auth_failures_total{reason="bad_credentials"}') >= MAX_FAILURES, m2
            assert src_fail >= MAX_FAILURES, f"failures of {ATTACKER}: {src_fail}"
            # the ban cut the guessing short: svcrack's guesses after the ban were never answered
            assert src_fail <= MAX_FAILURES + 2, \
                f"{src_fail} failed guesses from {ATTACKER} were answered: the ban did not stop it ({len(DICTIONARY)} tried)"
            assert d('parkway_limit_refusals_total{limit="auth_ban"}') >= 1, f"no auth_ban: {m2}"
            assert m2.get('parkway_limit_refusals_total{limit="rate_ban"}', 0) == 0, "banned as a flood, not for auth"
            assert d('parkway_sip_dropped_datagrams_total{reason="banned"}') > 0, "nothing of svcrack was dropped"
            assert banned_now >= 1, "no banned source right after the attack"
            assert pw.wait_log(f"limit auth_ban reached: {ATTACKER}", 2), "no log line for the ban"
            assert status_of(_ask(port, ATTACKER, 1.0)) is None, f"{ATTACKER} is answered while it should be banned"
            assert status_of(_ask(port, PROBER, 2.0)) == 200, "another source is not answered"

            # -- 4. the phones never failed, nor did their sources
            m3 = metrics(pw)
            for src in (PHONE_A, PHONE_B):
                n = m3.get(f'parkway_auth_source_failures_total{{source="{src}"}}', 0)
                assert n == 0, f"{n} authentication failures counted for the phone at {src}"
            failed = [a for a in phones.attempts if not a[1]]
            report.append(f"legitimate calls: {len(phones.attempts)} attempts ({during} during the attack), "
                          f"{len(failed)} failed; phone 1001 answered {phones.a.auth_rounds} challenges and sent "
                          f"{phones.a.auth_sent} SHA-256 credentials")
            assert during >= 2, f"only {during} calls ran during the attack"
            assert not failed, "legitimate calls failed:\n" + "\n".join(map(str, phones.attempts))
            status, body = pw.admin("GET", f"/api/parked?domain={DOMAIN}")
            assert status == 200 and not body.get("parked"), f"calls left parked: {body}"
            assert pw.alive(), "the daemon died"
        finally:
            phones.close()
            print("\n".join(report))
            print(f"took {time.monotonic() - started:.1f} s")
    return 0


def _ask(port: int, src: str, timeout: float) -> str | None:
    """An OPTIONS to the server itself from src; the first final answer, or None."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.bind((src, 0))
        s.sendto(_options(port, src).replace("$LPORT", str(s.getsockname()[1])).encode(), ("127.0.0.1", port))
        s.settimeout(timeout)
        while True:
            try:
                data, _ = s.recvfrom(65535)
            except socket.timeout:
                return None
            if not data.startswith(b"SIP/2.0 1"):
                return data.decode(errors="replace")
    finally:
        s.close()


def _options(port: int, src: str) -> str:
    return (f"OPTIONS sip:127.0.0.1:{port} SIP/2.0\r\nVia: SIP/2.0/UDP {src}:$LPORT;branch=z9hG4bK-o{time.time_ns()};rport\r\n"
            f"Max-Forwards: 70\r\nFrom: <sip:probe@127.0.0.1>;tag=o1\r\nTo: <sip:127.0.0.1:{port}>\r\n"
            f"Call-ID: o{time.time_ns()}@{src}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n")


WORK = "."

if __name__ == "__main__":
    sys.exit(main() or print("ok"))
