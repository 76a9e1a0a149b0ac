"""A bounded, reproducible corpus of hostile SIP traffic (python3 stdlib only).

Seeds are well-formed park-flow messages and the reproducers of defects found when Parkway was attacked; the
corpus is the seeds plus random mutations of them (byte flips, cuts, duplicated and oversized headers, bad
lengths, odd encodings), and the seed files of the kept fuzz corpus (fuzz/corpus/sip_core*) when present.
The same seed number gives the same corpus.
"""
from __future__ import annotations

import os
import random

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _msg(method, ruri, headers, body=b"", cl=None):
    head = [f"{method} {ruri} SIP/2.0",
            "Via: SIP/2.0/UDP 127.0.0.2:5999;branch=z9hG4bK-h{n};rport",
            "Max-Forwards: 70",
            "From: \"Mallory\" <sip:6666@pbx.example.com>;tag=m{n}",
            f"To: <{ruri}>",
            "Call-ID: hostile-{n}@127.0.0.2",
            f"CSeq: 1 {method}"] + headers
    length = len(body) if cl is None else cl
    return ("\r\n".join(head) + f"\r\nContent-Length: {length}\r\n\r\n").encode() + body


SDP = (b"v=0\r\no=m 1 1 IN IP4 127.0.0.2\r\ns=-\r\nc=IN IP4 127.0.0.2\r\nt=0 0\r\n"
       b"m=audio 40000 RTP/AVP 0 8\r\na=sendrecv\r\n")


def seeds() -> list[bytes]:
    d = "pbx.example.com"
    out = [
        # park flows
        _msg("INVITE", f"sip:*68110@{d}", ["Content-Type: application/sdp", "Referred-By: <sip:1003@" + d + ">"], SDP),
        # (no retrieve of 103/104 here: without authentication, which comes later, anyone may retrieve)
        _msg("INVITE", f"sip:*88199@{d}", ["Content-Type: application/sdp"], SDP),
        _msg("INVITE", f"sip:*58@{d}", ["Content-Type: application/sdp"], SDP),
        _msg("REFER", f"sip:1003@{d}", [f"Refer-To: <sip:*68103@{d}>", "Contact: <sip:6666@127.0.0.2:5999>"]),
        _msg("SUBSCRIBE", f"sip:*88103@{d}", ["Event: dialog", "Expires: 3600", "Contact: <sip:6666@127.0.0.2:5999>"]),
        _msg("SUBSCRIBE", f"sip:103@{d}", ["Event: call-info", "Accept: application/x-broadworks-callpark-info+xml",
                                            "Contact: <sip:6666@127.0.0.2:5999>"]),
        _msg("INVITE", f"sip:*88@{d}", ["Replaces: abc@x;to-tag=1;from-tag=2", "Content-Type: application/sdp"], SDP),
        _msg("REGISTER", f"sip:{d}", ["Contact: <sip:6666@127.0.0.2:5999>", "Expires: 60"]),
        _msg("REGISTER", f"sip:{d}", ["Contact: *", "Expires: 0"]),
        _msg("OPTIONS", "sip:127.0.0.1", []),
        b"\x00\x01\x00\x08junkjunkjunkjunk" + b"\xff" * 8,   # looks like STUN (no magic cookie)
        b"\x00\x01\x00\x08\x21\x12\xa4\x42junkjunkjunk" + b"\xff" * 8,  # a STUN header, junk attributes
        b"\xf8" + b"\x00" * 40,                                 # SigComp
        _msg("BYE", f"sip:1003@{d}", []),
        _msg("NOTIFY", f"sip:1003@{d}", ["Event: park-info", "Subscription-State: active"]),
        # the reproducers
        _msg("MESSAGE", "sip:2001@elsewhere.example.net", ["Max-Forwards: 3", "Subject: a", "Subject: b"]),
        _msg("REFER", f"sip:1003@{d}", [f"Refer-To: <sip:*68103@{d}>", f"Refer-To: <sip:*68104@{d}>",
                                         "Referred-By: <sip:a@b>", "Referred-By: <sip:c@d>"]),
        _msg("INVITE", f"sip:*88199@{d}", ["Content-Type: application/sdp"], b"", cl=300),
        _msg("OPTIONS", "foo:bar@example.test", []),
        _msg("INVITE", "sip:" + "a" * 40000 + f"@{d}", ["Content-Type: application/sdp"], SDP),
        _msg("INVITE", f"sip:*68110@{d}", ["Content-Type: application/sdp"], SDP).replace(
            b"\"Mallory\"", "\"Jos\xe9\"".encode("latin-1")),
        _msg("OPTIONS", "sip:x@h.example.invalid", []),
        _msg("INVITE", f"sip:*68{'9' * 200}@{d}", ["Content-Type: application/sdp"], SDP),
    ]
    for folder in ("sip_core", "sip_core_tcp"):
        path = os.path.join(REPO, "fuzz", "corpus", folder)
        if os.path.isdir(path):
            for name in sorted(os.listdir(path)):
                with open(os.path.join(path, name), "rb") as f:
                    out.append(f.read()[:70000])
    return out


def _mutate(rng: random.Random, m: bytes) -> bytes:
    op = rng.randrange(9)
    b = bytearray(m)
    if op == 0 and b:  # flip bytes
        for _ in range(rng.randint(1, 8)):
            b[rng.randrange(len(b))] = rng.randrange(256)
    elif op == 1 and b:  # cut
        b = b[:rng.randrange(len(b))]
    elif op == 2:  # duplicate a header line
        lines = bytes(b).split(b"\r\n")
        if len(lines) > 3:
            i = rng.randrange(1, len(lines) - 2)
            lines.insert(i, lines[i])
        b = bytearray(b"\r\n".join(lines))
    elif op == 3:  # an oversized header
        b = bytearray(bytes(b).replace(b"\r\n", b"\r\nX-Big: " + b"z" * rng.choice([100, 5000, 30000]) + b"\r\n", 1))
    elif op == 4:  # a wrong Content-Length
        b = bytearray(bytes(b).replace(b"Content-Length: ", b"Content-Length: " + str(rng.randint(1, 99999)).encode()
                                       + b"0", 1))
    elif op == 5:  # non-UTF-8 in a display name or a header value
        b = bytearray(bytes(b).replace(b"Mallory", bytes(rng.randrange(128, 256) for _ in range(6)), 1))
    elif op == 6:  # folded / odd whitespace
        b = bytearray(bytes(b).replace(b"\r\nTo:", b"\r\n  \t\r\nTo:\t\t", 1))
    elif op == 7:  # a compact form and a lower-case method
        b = bytearray(bytes(b).replace(b"\r\nCall-ID:", b"\r\ni:", 1).replace(b"INVITE ", b"invite ", 1))
    else:  # many Via headers (a long list)
        b = bytearray(bytes(b).replace(b"\r\nVia:", b"\r\nVia: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKx" * 50 + b"\r\nVia:", 1))
    return bytes(b)


def corpus(count: int, seed: int = 8) -> list[bytes]:
    """count messages: every seed once, then mutations; {n} in seeds becomes a running number."""
    rng = random.Random(seed)
    base = seeds()
    out = []
    for i in range(count):
        m = base[i] if i < len(base) else _mutate(rng, rng.choice(base))
        out.append(m.replace(b"{n}", str(i).encode()))
    return out
