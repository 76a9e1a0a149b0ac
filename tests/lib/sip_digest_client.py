#!/usr/bin/env python3
"""A tiny SIP phone over UDP that authenticates with digest (python3 stdlib only).

Enough of RFC 3261 to REGISTER, make a call (INVITE, ACK, BYE) and answer what the server sends inside that
call (a re-INVITE of an RFC 3725 bridge, BYE, NOTIFY, OPTIONS, ...), answering 401/407 challenges with
RFC 7616 digest (SHA-256 by default, MD5 on request), qop=auth, a fresh cnonce and a nonce-count that grows
with every use of the same nonce. After the first challenge the credentials are sent with the next requests
of the same kind (Authorization for REGISTER, Proxy-Authorization for the rest) on the same nonce, nc + 1,
until the server asks again (a new or stale nonce).

    with SipPhone(("127.0.0.1", 5060), "pbx.example.com", "1001", "secret", local_ip="127.0.0.3") as a:
        assert a.register(expires=60).status == 200
        call = a.invite("*68103")             # 200 expected: call.status, call.response
        a.ack(call)
        ...
        a.bye(call)

Requests the phone receives are answered by a background thread and recorded in `received` (method,
Call-ID, CSeq). The SDP it offers and answers names an RTP socket it holds open (and never reads), so
whatever media the server sends lands somewhere real.
"""
from __future__ import annotations

import hashlib
import os
import queue
import random
import re
import socket
import threading
import time
from dataclasses import dataclass, field

T1 = 0.5
T2 = 4.0

_COMPACT = {"v": "via", "f": "from", "t": "to", "i": "call-id", "m": "contact", "l": "content-length",
            "c": "content-type", "k": "supported", "s": "subject", "e": "content-encoding", "o": "event",
            "r": "refer-to", "b": "referred-by", "u": "allow-events", "x": "session-expires"}

_HASH = {"SHA-256": hashlib.sha256, "MD5": hashlib.md5}


def _rand(n: int = 12) -> str:
    return "".join(random.choice("0123456789abcdef") for _ in range(n))


@dataclass
class SipMessage:
    first: str
    headers: list  # (lower-case name, value) in order
    body: bytes = b""
    source: tuple | None = None

    @property
    def is_response(self) -> bool:
        return self.first.startswith("SIP/2.0 ")

    @property
    def status(self) -> int:
        return int(self.first.split(" ", 2)[1]) if self.is_response else 0

    @property
    def method(self) -> str:
        return self.first.split(" ", 1)[0] if not self.is_response else self.cseq[1]

    @property
    def ruri(self) -> str:
        return self.first.split(" ")[1]

    def get(self, name: str, default: str | None = None) -> str | None:
        name = name.lower()
        for k, v in self.headers:
            if k == name:
                return v
        return default

    def all(self, name: str) -> list:
        """Every value of a header, comma-separated lists split (not inside quotes or <>)."""
        name = name.lower()
        out = []
        for k, v in self.headers:
            if k == name:
                out += _split_list(v) if name in ("via", "record-route", "route", "contact") else [v]
        return out

    @property
    def cseq(self) -> tuple:
        n, m = self.get("cseq", "0 X").split()
        return int(n), m.upper()

    @property
    def call_id(self) -> str:
        return self.get("call-id", "")

    def text(self) -> str:
        return (self.first + "\r\n" + "".join(f"{k}: {v}\r\n" for k, v in self.headers) + "\r\n"
                + self.body.decode(errors="replace"))


def _split_list(value: str) -> list:
    out, cur, quote, angle = [], "", False, False
    for ch in value:
        if ch == '"':
            quote = not quote
        elif ch == "<" and not quote:
            angle = True
        elif ch == ">" and not quote:
            angle = False
        if ch == "," and not quote and not angle:
            out.append(cur.strip())
            cur = ""
        else:
            cur += ch
    if cur.strip():
        out.append(cur.strip())
    return out


def parse(data: bytes, source=None) -> SipMessage | None:
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        return None
    lines = head.decode(errors="replace").split("\r\n")
    headers = []
    for line in lines[1:]:
        if line[:1] in (" ", "\t") and headers:  # folded line
            headers[-1] = (headers[-1][0], headers[-1][1] + " " + line.strip())
            continue
        name, _, value = line.partition(":")
        name = name.strip().lower()
        headers.append((_COMPACT.get(name, name), value.strip()))
    msg = SipMessage(lines[0], headers, body, source)
    length = msg.get("content-length")
    if length is not None and length.isdigit():
        msg.body = body[:int(length)]
    return msg


def tag_of(header: str | None) -> str | None:
    m = re.search(r";\s*tag=([^;>\s]+)", header or "")
    return m.group(1) if m else None


def uri_of(header: str) -> str:
    m = re.search(r"<([^>]*)>", header)
    return m.group(1) if m else header.split(";")[0].strip()


def parse_challenge(value: str) -> dict:
    """WWW-Authenticate / Proxy-Authenticate value -> {'scheme': 'Digest', 'realm': ..., 'nonce': ...}."""
    scheme, _, rest = value.strip().partition(" ")
    params = {"scheme": scheme}
    for m in re.finditer(r'([A-Za-z0-9_-]+)\s*=\s*("([^"]*)"|[^,\s]+)', rest):
        params[m.group(1).lower()] = m.group(3) if m.group(3) is not None else m.group(2)
    return params


def digest_response(algorithm: str, user: str, realm: str, password: str, method: str, uri: str, nonce: str,
                    nc: str, cnonce: str, qop: str = "auth") -> str:
    """RFC 7616 §3.4.1 with qop=auth: H(H(A1):nonce:nc:cnonce:qop:H(A2))."""
    h = lambda s: _HASH[algorithm](s.encode()).hexdigest()  # noqa: E731
    ha1 = h(f"{user}:{realm}:{password}")
    ha2 = h(f"{method}:{uri}")
    return h(f"{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}")


@dataclass
class Dialog:
    call_id: str
    local_tag: str
    remote_tag: str | None = None
    local_uri: str = ""
    remote_uri: str = ""
    remote_target: str = ""
    route_set: list = field(default_factory=list)
    cseq: int = 1
    ended: threading.Event = field(default_factory=threading.Event)


@dataclass
class Call:
    status: int | None
    response: SipMessage | None
    dialog: Dialog
    invite_cseq: int
    responses: list = field(default_factory=list)  # every response of the last transaction


@dataclass
class Result:
    status: int | None
    response: SipMessage | None
    responses: list = field(default_factory=list)


class SipPhone:
    """One user agent on its own UDP socket (local_ip, ephemeral port)."""

    def __init__(self, server: tuple, domain: str, user: str, password: str, local_ip: str = "127.0.0.1",
                 algorithm: str = "SHA-256", sdp_codecs: str = "0 8", verbose: bool = False):
        assert algorithm in _HASH
        self.server = server
        self.domain = domain
        self.user = user
        self.password = password
        self.algorithm = algorithm
        self.codecs = sdp_codecs
        self.verbose = verbose
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((local_ip, 0))
        self.rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # media sink, never read
        self.rtp.bind((local_ip, 0))
        self.ip, self.port = self.sock.getsockname()
        self.rtp_port = self.rtp.getsockname()[1]
        self.aor = f"sip:{user}@{domain}"
        self.contact = f"<sip:{user}@{self.ip}:{self.port}>"
        self.received: list = []       # (method, call-id, cseq) of every request received
        self.auth_rounds = 0           # credentials computed for a fresh nonce
        self.auth_sent = 0             # requests sent with credentials
        self._credentials: dict = {}   # header name -> challenge params (+ 'nc')
        self._pending: dict = {}       # branch -> Queue of responses
        self._answered: dict = {}      # branch of a request we answered -> response bytes (retransmissions)
        self._acks: dict = {}          # (call-id, cseq) -> ACK bytes (re-sent on a retransmitted 2xx)
        self._dialogs: dict = {}       # (call-id, local tag) -> Dialog
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._reg_call_id = f"reg-{_rand()}@{self.ip}"
        self._reg_cseq = 0
        self._sdp_version = 1
        self.errors: list = []
        self._thread = threading.Thread(target=self._receive_loop, name=f"phone-{user}", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ plumbing
    def _log(self, text: str):
        if self.verbose:
            print(f"[{self.user}@{self.ip}:{self.port}] {text}", flush=True)

    def _send(self, data: bytes, dest: tuple | None = None):
        self.sock.sendto(data, dest or self.server)

    def sdp(self) -> bytes:
        self._sdp_version += 1
        return (f"v=0\r\no={self.user} 1 {self._sdp_version} IN IP4 {self.ip}\r\ns=-\r\nc=IN IP4 {self.ip}\r\n"
                f"t=0 0\r\nm=audio {self.rtp_port} RTP/AVP {self.codecs}\r\na=sendrecv\r\n").encode()

    def _build(self, method: str, ruri: str, headers: list, body: bytes = b"", branch: str | None = None) -> tuple:
        branch = branch or "z9hG4bK" + _rand(16)
        lines = [f"{method} {ruri} SIP/2.0", f"Via: SIP/2.0/UDP {self.ip}:{self.port};branch={branch};rport",
                 "Max-Forwards: 70"] + headers + ["User-Agent: parkway-test-phone"]
        if body:
            lines.append("Content-Type: application/sdp")
        lines.append(f"Content-Length: {len(body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + body, branch

    def _transaction(self, data: bytes, branch: str, invite: bool, timeout: float) -> list:
        """Send a request, retransmit it (RFC 3261 §17.1 timers A/E), return its responses up to the final."""
        q: queue.Queue = queue.Queue()
        with self._lock:
            self._pending[branch] = q
        responses = []
        try:
            self._send(data)
            interval, next_send, end = T1, time.monotonic() + T1, time.monotonic() + timeout
            provisional = False
            while time.monotonic() < end:
                try:
                    r = q.get(timeout=max(0.01, min(next_send, end) - time.monotonic()))
                except queue.Empty:
                    if not provisional or not invite:
                        self._send(data)
                    interval = min(interval * 2, T2) if not invite else interval * 2
                    next_send = time.monotonic() + interval
                    continue
                responses.append(r)
                if r.status >= 200:
                    return responses
                provisional = True
            return responses
        finally:
            with self._lock:
                self._pending.pop(branch, None)

    def _auth_header(self, kind: str, method: str, uri: str) -> str | None:
        """Credentials for the cached challenge of this kind (Authorization / Proxy-Authorization), nc + 1."""
        ch = self._credentials.get(kind)
        if not ch:
            return None
        ch["nc"] += 1
        nc = f"{ch['nc']:08x}"
        cnonce = _rand(16)
        resp = digest_response(self.algorithm, self.user, ch["realm"], self.password, method, uri, ch["nonce"], nc,
                               cnonce)
        value = (f'Digest username="{self.user}", realm="{ch["realm"]}", nonce="{ch["nonce"]}", uri="{uri}", '
                 f'response="{resp}", algorithm={self.algorithm}, cnonce="{cnonce}", qop=auth, nc={nc}')
        if ch.get("opaque"):
            value += f', opaque="{ch["opaque"]}"'
        self.auth_sent += 1
        return f"{kind}: {value}"

    def _take_challenge(self, r: SipMessage) -> bool:
        """Remember the challenge in a 401/407 that offers our algorithm. False when there is none, or when it
        repeats the nonce our credentials just used without stale=true (the credentials were refused)."""
        header = "www-authenticate" if r.status == 401 else "proxy-authenticate"
        kind = "Authorization" if r.status == 401 else "Proxy-Authorization"
        offers = [parse_challenge(v) for v in r.all(header)]
        mine = [c for c in offers if c.get("scheme", "").lower() == "digest"
                and c.get("algorithm", "MD5").upper() == self.algorithm
                and "auth" in [q.strip() for q in c.get("qop", "").split(",")]]
        if not mine:
            self.errors.append(f"no {self.algorithm} qop=auth challenge in: {r.all(header)}")
            return False
        c = mine[0]
        old = self._credentials.get(kind)
        if old and old["nonce"] == c["nonce"] and c.get("stale", "").lower() != "true":
            return False
        c["nc"] = 0
        self._credentials[kind] = c
        self.auth_rounds += 1
        return True

    def _request(self, method: str, ruri: str, headers_fn, body: bytes = b"", invite: bool = False,
                 timeout: float = 8.0, on_ack=None) -> tuple:
        """Send with credentials when we have them; answer a challenge once. headers_fn(cseq) -> header lines.
        Returns (responses of the last transaction, cseq used)."""
        kind = "Authorization" if method == "REGISTER" else "Proxy-Authorization"
        responses, cseq = [], 0
        for _ in range(3):
            hdrs, cseq = headers_fn()
            auth = self._auth_header(kind, method, ruri)
            data, branch = self._build(method, ruri, hdrs + ([auth] if auth else []), body)
            self._log(f"-> {method} {ruri} cseq {cseq}{' (credentials)' if auth else ''}")
            responses = self._transaction(data, branch, invite, timeout)
            final = responses[-1] if responses and responses[-1].status >= 200 else None
            self._log(f"<- {final.first if final else 'no final response'}")
            if final is None:
                return responses, cseq
            if invite and final.status >= 300:  # ACK the failure, same branch (RFC 3261 §17.1.1.3)
                self._send(self._ack_for_failure(data, final, branch))
            if final.status in (401, 407) and self._take_challenge(final):
                continue
            return responses, cseq
        return responses, cseq

    def _ack_for_failure(self, invite: bytes, final: SipMessage, branch: str) -> bytes:
        req = parse(invite)
        n, _ = req.cseq
        headers = [f"From: {req.get('from')}", f"To: {final.get('to')}", f"Call-ID: {req.call_id}",
                   f"CSeq: {n} ACK"]
        data, _ = self._build("ACK", req.ruri, headers, branch=branch)
        return data

    # ------------------------------------------------------------------ what a phone does
    def register(self, expires: int = 60, timeout: float = 8.0) -> Result:
        def headers():
            self._reg_cseq += 1
            return ([f"From: <{self.aor}>;tag={_rand(8)}", f"To: <{self.aor}>", f"Call-ID: {self._reg_call_id}",
                     f"CSeq: {self._reg_cseq} REGISTER", f"Contact: {self.contact}", f"Expires: {expires}"],
                    self._reg_cseq)

        responses, _ = self._request("REGISTER", f"sip:{self.domain}", headers, timeout=timeout)
        final = responses[-1] if responses else None
        return Result(final.status if final else None, final, responses)

    def invite(self, target_user: str, with_sdp: bool = True, timeout: float = 10.0) -> Call:
        ruri = f"sip:{target_user}@{self.domain}"
        d = Dialog(call_id=f"{_rand(16)}@{self.ip}", local_tag=_rand(10), local_uri=self.aor, remote_uri=ruri,
                   cseq=0)

        def headers():
            d.cseq += 1
            return ([f"From: <{self.aor}>;tag={d.local_tag}", f"To: <{ruri}>", f"Call-ID: {d.call_id}",
                     f"CSeq: {d.cseq} INVITE", f"Contact: {self.contact}"], d.cseq)

        with self._lock:
            self._dialogs[(d.call_id, d.local_tag)] = d
        responses, cseq = self._request("INVITE", ruri, headers, self.sdp() if with_sdp else b"", invite=True,
                                        timeout=timeout)
        final = responses[-1] if responses and responses[-1].status >= 200 else None
        if final is not None and 200 <= final.status < 300:
            d.remote_tag = tag_of(final.get("to"))
            contact = final.all("contact")
            d.remote_target = uri_of(contact[0]) if contact else ruri
            d.route_set = list(reversed(final.all("record-route")))
        return Call(final.status if final else None, final, d, cseq, responses)

    def _in_dialog(self, d: Dialog, method: str, cseq: int, body: bytes = b"", branch: str | None = None,
                   extra: list | None = None) -> tuple:
        headers = [f"From: <{d.local_uri}>;tag={d.local_tag}",
                   f"To: <{d.remote_uri}>" + (f";tag={d.remote_tag}" if d.remote_tag else ""),
                   f"Call-ID: {d.call_id}", f"CSeq: {cseq} {method}"] + [f"Route: {r}" for r in d.route_set]
        if method in ("INVITE", "ACK"):
            headers.append(f"Contact: {self.contact}")
        return self._build(method, d.remote_target, headers + (extra or []), body, branch)

    def ack(self, call: Call, body: bytes = b""):
        data, _ = self._in_dialog(call.dialog, "ACK", call.invite_cseq, body)
        with self._lock:
            self._acks[(call.dialog.call_id, call.invite_cseq)] = data
        self._send(data)

    def bye(self, call: Call, timeout: float = 8.0) -> Result:
        d = call.dialog
        d.cseq += 1
        data, branch = self._in_dialog(d, "BYE", d.cseq)
        responses = self._transaction(data, branch, False, timeout)
        final = responses[-1] if responses and responses[-1].status >= 200 else None
        if final is not None and final.status < 300:
            d.ended.set()
        return Result(final.status if final else None, final, responses)

    def close(self):
        self._stop.set()
        self._thread.join(2)
        self.sock.close()
        self.rtp.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ------------------------------------------------------------------ receiving
    def _receive_loop(self):
        self.sock.settimeout(0.1)
        while not self._stop.is_set():
            try:
                data, src = self.sock.recvfrom(65535)
            except socket.timeout:
                continue
            except OSError:
                return
            msg = parse(data, src)
            if msg is None:
                continue
            try:
                if msg.is_response:
                    self._on_response(msg)
                else:
                    self._on_request(msg, src)
            except Exception as e:  # keep answering; the test sees the error
                self.errors.append(f"{type(e).__name__}: {e} on {msg.first}")

    def _on_response(self, r: SipMessage):
        via = r.get("via", "")
        m = re.search(r"branch=([^;,\s]+)", via)
        with self._lock:
            q = self._pending.get(m.group(1)) if m else None
            ack = self._acks.get((r.call_id, r.cseq[0]))
        if q is not None:
            q.put(r)
        elif r.cseq[1] == "INVITE" and 200 <= r.status < 300 and ack is not None:
            self._send(ack)  # our ACK was lost: the 2xx is retransmitted (RFC 3261 §13.2.2.4)

    def _on_request(self, req: SipMessage, src):
        method = req.first.split(" ", 1)[0]
        self.received.append((method, req.call_id, req.cseq[0]))
        self._log(f"<- {method} from {src[0]}:{src[1]}")
        m = re.search(r"branch=([^;,\s]+)", req.get("via", ""))
        branch = m.group(1) if m else ""
        if method == "ACK":
            return
        with self._lock:
            cached = self._answered.get((branch, method))
        if cached is not None:  # a retransmission: the same answer again
            self._send(cached, self._reply_to(req, src))
            return
        to_tag = tag_of(req.get("to"))
        d = None
        with self._lock:
            for (cid, ltag), dd in self._dialogs.items():
                if cid == req.call_id and ltag == to_tag:
                    d = dd
        body, status, reason = b"", 200, "OK"
        if method in ("INVITE", "UPDATE"):
            if d is None:  # a new call to this phone (a recall, say): not in this test's script
                status, reason = 486, "Busy Here"
            else:
                body = self.sdp()
        elif method == "BYE":
            if d is None:
                status, reason = 481, "Call/Transaction Does Not Exist"
            else:
                d.ended.set()
        elif method == "CANCEL":
            pass
        headers = [f"Via: {v}" for v in req.all("via")] + [
            f"From: {req.get('from')}",
            f"To: {req.get('to')}" + ("" if to_tag else f";tag={_rand(8)}"),
            f"Call-ID: {req.call_id}", f"CSeq: {req.get('cseq')}"]
        if method == "INVITE" and status == 200:
            headers.append(f"Contact: {self.contact}")
        if body:
            headers.append("Content-Type: application/sdp")
        headers.append(f"Content-Length: {len(body)}")
        data = (f"SIP/2.0 {status} {reason}\r\n" + "\r\n".join(headers) + "\r\n\r\n").encode() + body
        with self._lock:
            self._answered[(branch, method)] = data
        self._send(data, self._reply_to(req, src))

    @staticmethod
    def _reply_to(req: SipMessage, src) -> tuple:
        """RFC 3261 §18.2.2 with RFC 3581: to the source address, at the Via's rport (or port)."""
        via = req.all("via")[0] if req.all("via") else ""
        m = re.search(r"rport=(\d+)", via)
        if m:
            return src[0], int(m.group(1))
        m = re.match(r"SIP/2.0/UDP\s+[^:;\s]+:(\d+)", via, re.I)
        return src[0], int(m.group(1)) if m else src[1]


if __name__ == "__main__":  # a smoke test against a running daemon: HOST PORT DOMAIN USER PASSWORD
    import sys
    host, port, dom, user, pw = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
    with SipPhone((host, port), dom, user, pw, local_ip=os.environ.get("LOCAL_IP", "127.0.0.1"), verbose=True) as p:
        print("REGISTER ->", p.register().status)
