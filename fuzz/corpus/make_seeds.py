#!/usr/bin/env python3
"""Writes the hand-made seed files of fuzz/corpus/<target>/ and fuzz/corpus/README.md (one line per seed).

Each seed is (target, name, intent, bytes). The SIP seeds are written after the kinds of message RFC 4475
("SIP Torture Test Messages") describes, in our own words, plus the park flows Parkway serves. Run it after
editing a seed here:  python3 fuzz/corpus/make_seeds.py   (files other than these seeds are left alone; seeds
saved from fuzzing runs, crash-* reproducers included, are committed as plain files next to them).

Addresses: the proxy's local domain is parkway.test; 127.0.0.1:5099 is the fuzz harness's answering phone, so
a Via or Contact naming it gets answers (fuzz/fuzz_sip_core.cc).
"""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
SEEDS = []
_branch = [0]


def seed(target, name, intent, data):
    if isinstance(data, str):
        data = data.encode("latin-1")
    SEEDS.append((target, name, intent, data))


def sip(method, ruri, headers=(), body=b"", via=None, cl=None, cseq=None, from_=None, to=None, callid=None,
        transport="UDP", contact=True):
    """A request with the usual headers; `headers` are added as written ("Name: value" strings or bytes)."""
    _branch[0] += 1
    n = _branch[0]
    if isinstance(body, str):
        body = body.encode("latin-1")
    lines = [f"{method} {ruri} SIP/2.0".encode("latin-1")]
    lines.append((via or f"Via: SIP/2.0/{transport} 127.0.0.1:5099;branch=z9hG4bK-seed{n};rport").encode("latin-1"))
    lines.append(b"Max-Forwards: 70")
    lines.append((from_ or f"From: \"Alice\" <sip:1001@parkway.test>;tag=a{n}").encode("latin-1"))
    lines.append((to or f"To: <{ruri}>").encode("latin-1"))
    lines.append((callid or f"Call-ID: seed-{n}@127.0.0.1").encode("latin-1"))
    lines.append((cseq or f"CSeq: 1 {method}").encode("latin-1"))
    if contact:
        lines.append(b"Contact: <sip:1001@127.0.0.1:5099>")
    for h in headers:
        lines.append(h if isinstance(h, bytes) else h.encode("latin-1"))
    lines.append(f"Content-Length: {len(body) if cl is None else cl}".encode("latin-1"))
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def sdp(port=5098, codecs="0 8", direction="sendrecv"):
    return (f"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
            f"m=audio {port} RTP/AVP {codecs}\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\na={direction}\r\n")


SDP_CT = "Content-Type: application/sdp"

# ------------------------------------------------------------------ sip_core (UDP and TCP targets)
T = "sip_core"
seed(T, "options-plain", "a well-formed OPTIONS to the proxy's domain (the baseline every mutation starts from)",
     sip("OPTIONS", "sip:parkway.test", ["Accept: application/sdp"]))
seed(T, "register-1001", "REGISTER of extension 1001 with its contact on the answering phone",
     sip("REGISTER", "sip:parkway.test", ["Expires: 3600"], to="To: <sip:1001@parkway.test>",
         from_="From: <sip:1001@parkway.test>;tag=r1"))
seed(T, "register-star-expires0", "REGISTER with Contact: * and Expires: 0 (remove every binding, RFC 3261 §10.2.2)",
     sip("REGISTER", "sip:parkway.test", ["Contact: *", "Expires: 0"], contact=False,
         to="To: <sip:1001@parkway.test>", from_="From: <sip:1001@parkway.test>;tag=r2"))
seed(T, "invite-to-extension", "a plain INVITE with SDP to extension 1002 (routed to its contacts, 404 when unknown)",
     sip("INVITE", "sip:1002@parkway.test", [SDP_CT], sdp()))
seed(T, "compact-forms-and-folding",
     "INVITE written with compact header names (v f t i m l c s k), odd spacing, a folded header line and "
     "mixed-case names",
     b"INVITE sip:1002@parkway.test SIP/2.0\r\n"
     b"v:  SIP/2.0/UDP 127.0.0.1:5099;branch=z9hG4bK-compact;rport\r\n"
     b"max-FORWARDS:70\r\n"
     b"f: \"Al\\\"ice\"<sip:1001@parkway.test>\r\n  ;tag=c1\r\n"
     b"t:<sip:1002@parkway.test>\r\n"
     b"i: compact-1@127.0.0.1\r\n"
     b"CSeq:   8   INVITE\r\n"
     b"m: <sip:1001@127.0.0.1:5099>;expires=60\r\n"
     b"s: folded\r\n subject\r\n"
     b"k: 100rel, timer\r\n"
     b"c: application/sdp\r\n"
     b"l: " + str(len(sdp())).encode() + b"\r\n\r\n" + sdp().encode())
seed(T, "escaped-nulls-in-uris", "REGISTER whose To, Contact and Request-URI user parts carry %00 and other escapes",
     sip("REGISTER", "sip:parkway.test", ["Expires: 60"], contact=False,
         to="To: <sip:10%0001@parkway.test>", from_="From: <sip:10%0001@parkway.test>;tag=n1")
     .replace(b"Max-Forwards: 70", b"Max-Forwards: 70\r\nContact: <sip:%00%ff%25@127.0.0.1:5099;x=%00>"))
seed(T, "huge-content-length", "OPTIONS whose Content-Length does not fit in 64 bits",
     sip("OPTIONS", "sip:parkway.test", cl="99999999999999999999999999"))
seed(T, "content-length-past-datagram",
     "park INVITE whose Content-Length runs past the end of the datagram with no body bytes (RFC 3261 §18.3: 400)",
     sip("INVITE", "sip:*68103@parkway.test", [SDP_CT], b"", cl=300))
seed(T, "content-length-larger-than-body", "INVITE with a truncated SDP: Content-Length 40 bytes longer than the body",
     sip("INVITE", "sip:*68104@parkway.test", [SDP_CT], sdp(), cl=len(sdp()) + 40))
seed(T, "negative-cseq", "INVITE with a negative CSeq number",
     sip("INVITE", "sip:1002@parkway.test", [SDP_CT], sdp(), cseq="CSeq: -1 INVITE"))
seed(T, "cseq-overflow-and-mismatch", "OPTIONS whose CSeq is over 2^32 and names another method",
     sip("OPTIONS", "sip:parkway.test", cseq="CSeq: 4294967296 INVITE"))
seed(T, "unknown-uri-scheme", "INVITE to an unknown URI scheme (RFC 3261 §16.3: 416)",
     sip("INVITE", "xyz:1002@parkway.test", [SDP_CT], sdp(), to="To: <xyz:1002@parkway.test>"))
seed(T, "tel-uri", "INVITE to a tel: URI (not ours; the core decides)",
     sip("INVITE", "tel:+441234567890", [SDP_CT], sdp(), to="To: <tel:+441234567890>"))
seed(T, "multiple-values-single-header", "OPTIONS with two values in To, From and Call-ID (each allows one)",
     sip("OPTIONS", "sip:parkway.test", to="To: <sip:a@parkway.test>, <sip:b@parkway.test>",
         from_="From: <sip:1001@parkway.test>;tag=m1, <sip:1003@parkway.test>;tag=m2",
         callid="Call-ID: one@x, two@y"))
seed(T, "request-uri-40k", "INVITE whose Request-URI user part is 40 KB of digits (router regex route, dial length caps)",
     sip("INVITE", "sip:+44" + "1" * 40000 + "@parkway.test", [SDP_CT], sdp(), to="To: <sip:+44@parkway.test>"))
seed(T, "crlf-keepalive", "a double-CRLF keepalive (RFC 5626 §3.5.1) with nothing else", b"\r\n\r\n")
seed(T, "crlf-single", "a lone CRLF", b"\r\n")
seed(T, "max-forwards-zero", "OPTIONS to a foreign host with Max-Forwards: 0 (483, RFC 3261 §16.3)",
     sip("OPTIONS", "sip:1002@127.0.0.1:5099").replace(b"Max-Forwards: 70", b"Max-Forwards: 0"))
seed(T, "bad-sip-version", "a request line with SIP/7.0", sip("OPTIONS", "sip:parkway.test").replace(
    b"SIP/2.0\r\n", b"SIP/7.0\r\n", 1))
seed(T, "unknown-method", "an extension method the proxy has never heard of, with a body",
     sip("NEWMETHOD", "sip:1002@parkway.test", ["Content-Type: text/plain"], "hello"))
seed(T, "stray-response", "a 200 OK answering no transaction of ours",
     b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:1;branch=z9hG4bK-nobody\r\nFrom: <sip:a@b>;tag=1\r\n"
     b"To: <sip:c@d>;tag=2\r\nCall-ID: stray@x\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n")
seed(T, "uri-with-headers-and-params", "INVITE whose Request-URI carries escaped headers, odd params and a password",
     sip("INVITE", "sip:1002:secret@parkway.test;transport=udp;lr;maddr=127.0.0.1;x?Route=%3Csip:evil%3E&body=hi",
         [SDP_CT], sdp()))
seed(T, "ipv6-via-and-contact", "OPTIONS with an IPv6 Via sent-by, received and Contact",
     sip("OPTIONS", "sip:parkway.test", ["Contact: <sip:1001@[::1]:5099>"], contact=False,
         via="Via: SIP/2.0/UDP [::1]:5099;branch=z9hG4bK-v6;received=::1;rport=5099"))
seed(T, "route-to-self-loose", "INVITE with a Route set naming the proxy itself (loose routing, RFC 3261 §16.4)",
     sip("INVITE", "sip:1002@parkway.test", ["Route: <sip:parkway.test;lr>, <sip:127.0.0.1;lr>", SDP_CT], sdp()))
seed(T, "binary-junk", "bytes that are not SIP at all", bytes(range(256)))
seed(T, "crash-junk-stun-leak", "found by fuzz_sip_core: a datagram starting with 0x00 0x01 that is no valid STUN; "
     "sofia's STUN server answered it through send_stun_error(), leaking 12 bytes each time (fixed: the core drops "
     "non-SIP datagrams before sofia)", bytes(range(22)))
seed(T, "latin1-display-name", "park INVITE on *68110 whose From display name is ISO-8859-1 (\"Jos\\xe9\"), not UTF-8",
     sip("INVITE", "sip:*68110@parkway.test", [SDP_CT], sdp(),
         from_="From: \"Jos\xe9\" <sip:1004@parkway.test>;tag=l1"))
seed(T, "park-invite-68103", "park INVITE on *68103 with an SDP offer and Referred-By the parker",
     sip("INVITE", "sip:*68103@parkway.test", [SDP_CT, "Referred-By: <sip:1003@parkway.test>"], sdp()))
seed(T, "park-invite-escaped-hash", "park INVITE dialled as *68103%23 (escaped #)",
     sip("INVITE", "sip:*68103%23@parkway.test", [SDP_CT], sdp()))
seed(T, "group-park-58", "group park INVITE on *58 from a member of group sales",
     sip("INVITE", "sip:*58@parkway.test", [SDP_CT], sdp()))
seed(T, "lot-park-700", "orbit park INVITE on 700 (rules.tsv: lot main)",
     sip("INVITE", "sip:700@parkway.test", [SDP_CT], sdp(codecs="8")))
seed(T, "retrieve-88103", "retrieve INVITE on *88103 with an SDP offer",
     sip("INVITE", "sip:*88103@parkway.test", [SDP_CT], sdp(),
         from_="From: \"Bob\" <sip:1010@parkway.test>;tag=rt1"))
seed(T, "retrieve-701-offerless", "retrieve INVITE on lot slot 701 without an SDP offer",
     sip("INVITE", "sip:701@parkway.test"))
seed(T, "refer-to-park", "REFER whose Refer-To is *68103 with Referred-By (blind-transfer style park)",
     sip("REFER", "sip:2001@parkway.test", ["Refer-To: <sip:*68103@parkway.test>",
                                           "Referred-By: <sip:1003@parkway.test>"],
         to="To: <sip:2001@parkway.test>;tag=peer1"))
seed(T, "refer-with-replaces", "REFER to *68103 whose Refer-To embeds an escaped Replaces (attended transfer into park)",
     sip("REFER", "sip:2001@parkway.test",
         ["Refer-To: <sip:*68103@parkway.test?Replaces=call-9%3Bto-tag%3Dt9%3Bfrom-tag%3Df9>"],
         to="To: <sip:2001@parkway.test>;tag=peer2"))
seed(T, "subscribe-dialog-88103", "BLF SUBSCRIBE Event: dialog to *88103",
     sip("SUBSCRIBE", "sip:*88103@parkway.test", ["Event: dialog", "Accept: application/dialog-info+xml",
                                                 "Expires: 60"]))
seed(T, "subscribe-broadworks-call-info", "SUBSCRIBE Event: call-info accepting the BroadWorks call-park body",
     sip("SUBSCRIBE", "sip:103@parkway.test", ["Event: call-info",
                                              "Accept: application/x-broadworks-callpark-info+xml",
                                              "Expires: 60"]))
seed(T, "subscribe-unsubscribe", "SUBSCRIBE Event: dialog with Expires: 0 (fetch and end)",
     sip("SUBSCRIBE", "sip:701@parkway.test", ["Event: dialog", "Expires: 0"]))
seed(T, "invite-replaces", "INVITE with a Replaces header naming a park dialog (BLF pickup, RFC 3891)",
     sip("INVITE", "sip:103@parkway.test", [SDP_CT, "Replaces: pk-call@127.0.0.1;to-tag=pw-1;from-tag=a1"], sdp()))
seed(T, "invite-replaces-malformed", "INVITE with a Replaces lacking its tags (400 Bad Replaces Header)",
     sip("INVITE", "sip:103@parkway.test", [SDP_CT, "Replaces: ;to-tag=;;early-only"], sdp()))
seed(T, "bye-no-dialog", "BYE for a dialog that does not exist (481)",
     sip("BYE", "sip:1002@127.0.0.1:5099", to="To: <sip:1002@parkway.test>;tag=gone"))
seed(T, "cancel-no-transaction", "CANCEL matching no INVITE", sip("CANCEL", "sip:*68103@parkway.test"))
seed(T, "ack-stray", "an ACK with no INVITE transaction", sip("ACK", "sip:*68103@parkway.test",
                                                           to="To: <sip:*68103@parkway.test>;tag=x"))
seed(T, "notify-out-of-dialog", "an unsolicited NOTIFY with a sipfrag body",
     sip("NOTIFY", "sip:1001@parkway.test", ["Event: refer", "Subscription-State: active;expires=60",
                                             "Content-Type: message/sipfrag;version=2.0"], "SIP/2.0 200 OK\r\n"))
seed(T, "multipart-body", "INVITE to a park code with a multipart/mixed body (SDP + something else)",
     sip("INVITE", "sip:*68105@parkway.test", ["Content-Type: multipart/mixed;boundary=zz"],
         "--zz\r\nContent-Type: application/sdp\r\n\r\n" + sdp() + "--zz\r\nContent-Type: text/plain\r\n\r\nx\r\n--zz--\r\n"))

# The sofia abort the issue names: a forwarded request with duplicated single-instance headers
# (msg_parser.c serialize_one: Assertion '!msg_is_single(h)'); once fixed the proxy answers 400.
DUPS = ["Max-Forwards: 69", "Subject: one", "Subject: two", "Refer-To: <sip:a@parkway.test>",
        "Refer-To: <sip:b@parkway.test>", "Referred-By: <sip:c@parkway.test>", "Referred-By: <sip:d@parkway.test>",
        "Replaces: a;to-tag=1;from-tag=2", "Replaces: b;to-tag=3;from-tag=4", "User-Agent: one", "User-Agent: two",
        "Date: Sat, 13 Nov 2010 23:29:00 GMT", "Date: Sun, 14 Nov 2010 23:29:00 GMT", "Priority: urgent",
        "Priority: normal", "Retry-After: 5", "Retry-After: 6"]
seed(T, "crash-duplicated-single-headers",
     "sofia serialize_one abort: a request forwarded to a foreign host with two Max-Forwards, Subject, "
     "Refer-To, Referred-By, Replaces, User-Agent, Date, Priority and Retry-After (answer 400 before forwarding)",
     sip("MESSAGE", "sip:1002@127.0.0.2:5099", DUPS + ["Content-Type: text/plain"], "hi"))

# ------------------------------------------------------------------ sip_core_tcp (TCP target only)
T = "sip_core_tcp"
seed(T, "two-messages-one-stream", "two requests back to back on one TCP connection (framing by Content-Length)",
     sip("OPTIONS", "sip:parkway.test", transport="TCP") + sip("INVITE", "sip:*68103@parkway.test", [SDP_CT], sdp(),
                                                              transport="TCP"))
seed(T, "keepalive-then-request", "CRLF keepalives, then a request, then a half message",
     b"\r\n\r\n\r\n\r\n" + sip("OPTIONS", "sip:parkway.test", transport="TCP") + b"INVITE sip:x@parkway.test SIP/2.0\r\nVia:")
seed(T, "content-length-missing", "a TCP request with a body and no Content-Length (RFC 3261 §18.3: mandatory on streams)",
     sip("MESSAGE", "sip:1002@parkway.test", ["Content-Type: text/plain"], "body", transport="TCP")
     .replace(b"Content-Length: 4\r\n", b""))
seed(T, "crash-huge-content-length-stream",
     "the 762 MB receive-buffer idea: a TCP request announcing a 762 MB body, then a few bytes of it (sofia "
     "allocator assertion; a maximum message size must refuse it)",
     sip("INVITE", "sip:*68103@parkway.test", [SDP_CT], b"", cl=799014912, transport="TCP") + b"v=0\r\n" * 64)

# ------------------------------------------------------------------ sdp
T = "sdp"
seed(T, "offer-pcmu-pcma", "an ordinary offer: PCMU, PCMA and telephone-event, sendrecv", sdp(codecs="0 8 101")
     + "a=rtpmap:101 telephone-event/8000\r\na=ptime:20\r\n")
seed(T, "offer-sendonly-hold", "an offer already on hold (sendonly: our answer is inactive)", sdp(direction="sendonly"))
seed(T, "offer-no-g711", "offer with only G.722 and Opus (no common codec: inactive answer)",
     "v=0\r\no=- 5 5 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 9 111\r\n"
     "a=rtpmap:9 G722/8000\r\na=rtpmap:111 opus/48000/2\r\n")
seed(T, "offer-video-and-audio", "video before audio, media-level c= lines, IPv6",
     "v=0\r\no=- 7 9 IN IP6 ::1\r\ns=-\r\nt=0 0\r\nm=video 5000 RTP/AVP 96\r\nc=IN IP6 ::1\r\na=rtpmap:96 H264/90000\r\n"
     "m=audio 5002 RTP/AVP 8\r\nc=IN IP6 ::1\r\na=recvonly\r\n")
seed(T, "offer-remapped-static-pt", "PT 0 remapped by rtpmap to another codec (not playable as PCMU)",
     "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0\r\na=rtpmap:0 G729/8000\r\n")
seed(T, "offer-lf-only-multicast", "LF line ends, multicast c= with TTL, a port count (49170/2)",
     "v=0\no=alice 2890844526 2890844527 IN IP4 host.example\ns=x\nc=IN IP4 224.2.1.1/127\nt=0 0\n"
     "m=audio 49170/2 RTP/AVP 0\n")
seed(T, "offer-huge-numbers", "session id and version at 2^64-1, a port of 65535 and a 20-digit payload type",
     "v=0\r\no=- 18446744073709551615 18446744073709551615 IN IP4 1.2.3.4\r\ns=-\r\nc=IN IP4 1.2.3.4\r\nt=0 0\r\n"
     "m=audio 65535 RTP/AVP 00000000000000000008 0\r\n")
seed(T, "offer-no-connection", "an audio stream with no c= anywhere (RFC 4566 §5.7: refused)",
     "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n")

# ------------------------------------------------------------------ refer (one header value per seed)
T = "refer"
seed(T, "refer-to-plain", "Refer-To naming a park code", "<sip:*68103@pbx.example.com>")
seed(T, "refer-to-replaces", "Refer-To with an escaped Replaces header (RFC 3891 §7)",
     "<sip:*68103@pbx.example.com?Replaces=abc%40host%3Bto-tag%3D1%3Bfrom-tag%3D2%3Bearly-only>")
seed(T, "referred-by-display", "Referred-By with a quoted display name holding escapes, quotes and <",
     "\"Ali\\\"ce <boss> & co\" <sip:1003@pbx.example.com;user=phone>;cid=\"x\"")
seed(T, "replaces-plain", "a Replaces header value", "call-1@192.0.2.1;to-tag=a;from-tag=b")
seed(T, "replaces-repeated-tags", "Replaces with a repeated to-tag and an unknown parameter",
     "c;to-tag=a;to-tag=b;from-tag=c;x=y")
seed(T, "uri-ipv6-port-password", "a URI with a password, an IPv6 host and a port", "sips:u%23:pw@[2001:db8::1]:5061;a=b?c=d")
seed(T, "uri-bad-escape", "a user part with a broken escape", "sip:%2@x")
seed(T, "tel-uri", "a tel: URI with parameters", "tel:+1-201-555-0123;phone-context=example.com")

# ------------------------------------------------------------------ dialplan (rules, %%, dial strings)
T = "dialplan"
RULES_HDR = "id\tdomain\tdpid\tpr\tmatch_op\tmatch_exp\tmatch_len\tsubst_exp\trepl_exp\tattrs\tdisabled\tcontinue\n"
seed(T, "example-lot-rules", "the example orbit-lot rules (exact 700 park, regex 701-720 retrieve) and dial strings",
     RULES_HDR + "1\tpbx.example.com\t0\t10\texact\t700\t0\t\t\taction=park;lot=main\n"
     "2\tpbx.example.com\t0\t20\tregex\t^7(0[1-9]|1[0-9]|20)$\t3\t\t\taction=retrieve;lot=main\n%%\n700\n"
     "1002\t713\n*68103#\n")
seed(T, "subst-and-continue", "a continue rule rewriting the dial string with back-references, then a glob",
     "10\t\t0\t1\tregex\t^\\*\\*(.*)$\t0\t^\\*\\*(.*)$\t*68\\1\taction=park\t0\t1\n"
     "11\t\t0\t2\tglob\t*68*\t0\t\t\taction=park;recall=30;mode=parker_then_alternate\n%%\n**103\n")
seed(T, "reject-and-route", "reject with a code and a route rule with a destination attribute",
     "5\tpbx.example.com\t0\t5\tprefix-not-an-op\tx\n6\tpbx.example.com\t0\t6\texact\t666\t0\t\t\taction=reject;code=603\n"
     "7\tpbx.example.com\t0\t7\tglob\t9*\t0\t\t\taction=route;route=sip:gw@192.0.2.1\n%%\n666\n9123\n")
seed(T, "pathological-regex", "an operator regex with nested quantifiers and a dial string that makes backtracking "
     "engines explode (must stay linear)",
     "1\t\t0\t1\tregex\t^(a+)+$\t0\t\t\taction=park\n%%\n" + "a" * 30 + "!\n")
seed(T, "backref-beyond-groups", "a replacement naming \\3 with one group (load-time error)",
     "1\t\t0\t1\tregex\t^(1)$\t0\t^(1)$\t\\3\taction=park\n%%\n1\n")

# ------------------------------------------------------------------ config (main config and provision TOML)
T = "config"
with open(os.path.join(HERE, "..", "..", "examples", "parkway.toml"), "rb") as f:
    seed(T, "example-parkway-toml", "the example daemon config (examples/parkway.toml)", f.read())
with open(os.path.join(HERE, "..", "..", "examples", "provision.toml"), "rb") as f:
    seed(T, "example-provision-toml", "the example provision file (examples/provision.toml)", f.read())
seed(T, "provision-typo-key", "a provision file with a misspelt key (recal_time) that must be an error with file:line",
     "[[domain]]\nname = \"x.test\"\nrecal_time = 5\n")
seed(T, "config-bad-types", "config keys with the wrong types, a huge integer and a duplicate table",
     "[proxy]\nlisten = \"udp:127.0.0.1:5060\"\nt1_ms = 99999999999999999999\n[proxy]\n")
seed(T, "config-module-params", "module tables with bad int/bool/duration values",
     "[modules]\nload = [\"registrar\", \"callpark\", \"router\"]\n[module.registrar]\nmin_expires = \"x\"\n"
     "[module.callpark]\nrecall_time = \"5 fortnights\"\npark_info = 2\n[module.router]\nroutes = [\"regex:( => x\"]\n")
seed(T, "provision-lots-groups", "provision with overlapping lots, a group without members and bad choice/policy",
     "[[domain]]\nname = \"a.test\"\noccupied_policy = \"queue\"\n[[domain.lot]]\nname = \"l1\"\nfirst = 10\nlast = 1\n"
     "[[domain.lot]]\nname = \"l2\"\nfirst = 5\nlast = 2147483648\nchoice = \"random\"\n[[domain.group]]\nname = \"\"\n")
seed(T, "admin-listen-token", "an admin table on a public address with a short token",
     "[admin]\nlisten = \"0.0.0.0:8089\"\ntoken = \"short\"\nrequire_token = true\n")

# ------------------------------------------------------------------ admin_json (HTTP request: head + body)
T = "admin_json"


def http(method, path, body="", headers=()):
    b = body.encode("utf-8", "surrogateescape") if isinstance(body, str) else body
    h = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", "Authorization: Bearer fuzz-token-0123456789",
         f"Content-Length: {len(b)}"] + list(headers)
    return ("\r\n".join(h) + "\r\n\r\n").encode() + b


seed(T, "groups-set", "POST a group (the admin command groups.set)",
     http("POST", "/api/cmd/groups.set", '{"domain":"pbx.example.com","name":"g1","members":["1001","1002"]}'))
seed(T, "lots-set", "POST a lot with a slot range", http("POST", "/api/cmd/lots.set",
                                                          '{"domain":"pbx.example.com","name":"l","first":1,"last":9}'))
seed(T, "rules-import", "rules imported as text through the admin API",
     http("POST", "/api/cmd/rules.import", '{"text":"1\\t\\t0\\t1\\tregex\\t^7$\\t0\\t\\t\\taction=park\\n",'
                                           '"replace":true}'))
seed(T, "rules-explain", "explain a dial string", http("POST", "/api/cmd/rules.explain",
                                                      '{"domain":"pbx.example.com","caller":"1001","dial":"*68103"}'))
seed(T, "domains-set", "change a domain's park codes and recall settings",
     http("PUT", "/api/cmd/domains.set", '{"domain":"pbx.example.com","park_code":"*6","recall_time":5}'))
seed(T, "parked-get-string-id", "a parked-call id that is not a number", http("GET", "/api/cmd/parked.get",
                                                                             '{"id":"../../etc"}'))
seed(T, "invalid-utf8-string", "a JSON string holding ISO-8859-1 bytes (400, not 500)",
     http("POST", "/api/cmd/groups.set", b'{"domain":"pbx.example.com","name":"Jos\xe9"}'))
seed(T, "deep-nesting", "a body nested 10,000 deep (refused before the parser)",
     http("POST", "/api/cmd/groups.set", "[" * 10000 + "]" * 10000))
seed(T, "no-token-big-length", "no Authorization and a Content-Length of 8 GiB (401 before any body byte)",
     b"POST /api/parked HTTP/1.1\r\nContent-Length: 8589934592\r\n\r\n{")
seed(T, "chunked-and-expect", "Transfer-Encoding: chunked and Expect: 100-continue (refused by the gate)",
     http("POST", "/api/cmd/stats", "{}", ["Transfer-Encoding: chunked", "Expect: 100-continue"]))
seed(T, "bare-body", "no head at all: the whole input is a body", b'{"domain": "127.0.0.1", "extension": "1001"}')

# ------------------------------------------------------------------ bodies (FuzzedDataProvider stream)
T = "bodies"
seed(T, "hostile-identities",
     "display names and URIs with quotes, <, >, &, apostrophes and a Latin-1 byte, separated the way "
     "FuzzedDataProvider reads strings (backslash + character)",
     b"sip:*88103@x\\ \"Al<i>ce\" & 'co'\\ sip:a\"b<c>&d@x\\ pk-1\\ call&id\\ t<1\\ t>2\\ Jos\xe9\\ sip:\x01@x\\ ")
seed(T, "crash-invalid-utf8-entity", "found by fuzz_bodies: a lone 0xFD byte as the entity made dialog-info "
     "ill-formed XML (fixed: xmlEscape replaces invalid UTF-8 with U+FFFD)", b"\xfd")
seed(T, "crash-u+fffe-noncharacter", "found by fuzz_bodies: U+FFFE is valid UTF-8 but no XML character; it made "
     "dialog-info ill-formed (fixed: xmlEscape drops U+FFFE/U+FFFF)", b"\xef\xbf\xbe")
seed(T, "utf8-names", "valid UTF-8 display names (accents, CJK, an emoji)",
     "sip:103@x\\ José Müller\\ sip:1001@x\\ 山田\\ \U0001F600\\ ".encode("utf-8"))

# ------------------------------------------------------------------ trace (parkway-replay readers, any file)
T = "trace"
DATA = os.path.join(HERE, "..", "..", "tests", "replay", "data")


def data_file(name, limit=None):
    with open(os.path.join(DATA, name), "rb") as f:
        b = f.read()
    return b if limit is None else b[:limit]


def pcap(linktype, frames, big=False, nano=False):
    """A classic pcap file; frames are (seconds, microseconds, bytes)."""
    e = ">" if big else "<"
    out = struct.pack(e + "IHHiIII", 0xa1b23c4d if nano else 0xa1b2c3d4, 2, 4, 0, 0, 262144, linktype)
    for sec, usec, fr in frames:
        out += struct.pack(e + "IIII", sec, usec * (1000 if nano else 1), len(fr), len(fr)) + fr
    return out


def ip4(payload, proto, ident=1, off=0, more=False, src=b"\x7f\0\0\1", dst=b"\x7f\0\0\1"):
    return struct.pack(">BBHHHBBH", 0x45, 0, 20 + len(payload), ident, (0x2000 if more else 0) | off // 8, 64,
                       proto, 0) + src + dst + payload


def ip6(payload, nxt):
    lo = b"\0" * 15 + b"\1"
    return struct.pack(">IHBB", 0x60000000, len(payload), nxt, 64) + lo + lo + payload


def udp(sport, dport, payload):
    return struct.pack(">HHHH", sport, dport, 8 + len(payload), 0) + payload


def tcp(sport, dport, seq, flags, payload):
    return struct.pack(">HHIIBBHHH", sport, dport, seq, 0, 5 << 4, flags, 65535, 0, 0) + payload


SEED_INVITE = sip("INVITE", "sip:1002@example.com", [SDP_CT], body=sdp(), transport="TCP")
SEED_BYE = sip("BYE", "sip:1002@example.com", transport="TCP")
seed(T, "udp-sll2-real", "a real UDP call between two SIPp on loopback, tshark -i any -y LINUX_SLL2 (pcap)",
     data_file("sipp-udp-sll2.pcap"))
seed(T, "tcp-sll-real", "a real TCP call between two SIPp, tshark -i any (pcapng, Linux cooked v1)",
     data_file("sipp-tcp-sll.pcapng"))
seed(T, "tcp-split-out-of-order", "raw-IP pcap: handshake, an INVITE split in three segments sent out of order with "
     "a retransmission, then a BYE and a keep-alive in one segment, FIN",
     pcap(101, [(1, 0, ip4(tcp(40000, 5060, 99, 2, b""), 6)),
                (1, 1, ip4(tcp(40000, 5060, 299, 0x18, SEED_INVITE[199:]), 6)),
                (1, 2, ip4(tcp(40000, 5060, 100, 0x18, SEED_INVITE[:120]), 6)),
                (1, 3, ip4(tcp(40000, 5060, 100, 0x18, SEED_INVITE[:199]), 6)),
                (1, 4, ip4(tcp(40000, 5060, 100 + len(SEED_INVITE), 0x18, SEED_BYE + b"\r\n\r\n"), 6)),
                (1, 5, ip4(tcp(40000, 5060, 104 + len(SEED_INVITE) + len(SEED_BYE), 0x11, b""), 6))]))
_frag = udp(5062, 5060, sip("MESSAGE", "sip:1002@example.com", ["Content-Type: text/plain"], body="x" * 600))
seed(T, "udp-ipv4-fragments", "big-endian nanosecond pcap, Ethernet with an 802.1Q tag: a UDP MESSAGE in four "
     "IPv4 fragments, last first",
     pcap(1, [(2, i, b"\2\0\0\0\0\1\2\0\0\0\0\2\x81\0\0\x2a\x08\0" +
               ip4(_frag[o:o + 256], 17, 7, o, o + 256 < len(_frag))) for i, o in enumerate(sorted(range(0, len(_frag), 256), reverse=True))],
          big=True, nano=True))
seed(T, "udp-ipv6-fragments", "raw-IP pcap: a UDP MESSAGE over IPv6 in two Fragment-header fragments, out of order",
     pcap(101, [(3, 0, ip6(struct.pack(">BBHI", 17, 0, (512 // 8) << 3, 9) + _frag[512:], 44)),
                (3, 1, ip6(struct.pack(">BBHI", 17, 0, 1, 9) + _frag[:512], 44))]))
seed(T, "parkway-text", "Parkway's own text trace (eight records)", data_file("parkway-text-trace.txt"))
seed(T, "kamailio-sipdump", "Kamailio sipdump text file (mode 1), the first records",
     data_file("kamailio-sipdump.data", 2200))
seed(T, "sngrep-text", "sngrep's .txt export, the first messages", data_file("sngrep-export.txt", 2000))
seed(T, "sipp-trace-msg", "SIPp -trace_msg log of a TCP UAC, with SIPp's socket diagnostics first",
     data_file("sipp-uac-tcp-trace_msg.log", 2000))


def main():
    lines = ["# Seed corpus\n",
             "\n",
             "One folder per fuzz target (`fuzz/corpus/<target>/`; `fuzz_sip_core_tcp` also reads `sip_core/`). "
             "The seeds below are\n",
             "written by `make_seeds.py` (edit them there); the SIP ones follow the kinds of message RFC 4475 "
             "describes, in our own\n",
             "words, plus the park flows. `crash-*` seeds reproduce a crash that was found and fixed; they must "
             "stay harmless.\n",
             "Inputs kept from fuzzing runs (reviewed, minimised) may sit next to them without a line here.\n"]
    current = None
    for target, name, intent, data in SEEDS:
        d = os.path.join(HERE, target)
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, name), "wb") as f:
            f.write(data)
        if target != current:
            lines.append(f"\n## {target}\n\n")
            current = target
        lines.append(f"- `{name}`: {intent}\n")
    with open(os.path.join(HERE, "README.md"), "w") as f:
        f.writelines(lines)


if __name__ == "__main__":
    main()
