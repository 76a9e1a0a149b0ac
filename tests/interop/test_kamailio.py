#!/usr/bin/env python3
"""Interop: Parkway behind a real Kamailio 5.6 (Debian `kamailio`), phones registered only at Kamailio.

    test_kamailio.py <parkway binary> [kamailio binary]

Kamailio runs examples/kamailio/kamailio.cfg (its #!define lines rewritten for free ports) on 127.0.0.2; Parkway
runs on 127.0.0.1 with Kamailio as its only trusted peer and outbound proxy (examples/kamailio/parkway.toml,
docs/carrier.md). The phones are small Python user agents (tests/lib/sip_digest_client.py) that register at
Kamailio and send everything to it:

  1001 A parker / transferor   1002 B transferee   1003 C parked-on extension   1004 D watcher / retriever

Checks, each printed PASS/FAIL with its name (exit 1 when any fails):
  register      every phone registers at Kamailio
  refer_park    B calls A, A blind-transfers B to *681003 (the REFER passes Kamailio only), B's INVITE without
                Referred-By reaches Parkway through Kamailio and is parked on 1003
  refer_parker  the parker is A: Kamailio's htable copies the REFER's sender into Parkway-Parker
  blf           D's SUBSCRIBE (dialog) to *881003 is answered, and a NOTIFY shows the parked call
  park_info     C, the parked-on phone, gets a park-info NOTIFY (Parkway -> outbound proxy -> location)
  retrieve      D dials *881003: answered, nothing parked any more
  recall        a call parked with Referred-By A rings A when the recall timer (2 s) runs out
  group_park    *58 from B for parker A parks in the group; park-info reaches every member (A, C, D)
  lot_park      700 parks into slot 701; lot_retrieve: D dials 701 and gets it

Bounded (~5 s), loopback only, every process it starts is stopped by its PID. PARKWAY_KEEP_TMP=1 keeps the
folders (configs, Parkway's and Kamailio's logs). python3 stdlib only.
"""
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
from parkway_blackbox import KamailioProcess, Parkway, free_port, wait_until  # noqa: E402
from sip_digest_client import Call, Dialog, SipPhone, _rand, tag_of, uri_of  # noqa: E402

BINARY = os.path.abspath(sys.argv[1]) if len(sys.argv) > 1 else "parkway"
KAMAILIO = sys.argv[2] if len(sys.argv) > 2 else (shutil.which("kamailio") or "/usr/sbin/kamailio")
DOMAIN = "pbx.example.com"
KAMAILIO_IP = "127.0.0.2"
EXAMPLE_CFG = os.path.join(REPO, "examples", "kamailio", "kamailio.cfg")

results = []


def check(name: str, ok: bool, detail: str = ""):
    results.append((name, ok))
    print(f"{'PASS' if ok else 'FAIL'}: {name}" + (f" ({detail})" if detail and not ok else ""), flush=True)
    return ok


class Phone(SipPhone):
    """SipPhone that keeps every request it gets, answers new calls (recalls), REFERs with 202, and can
    SUBSCRIBE and add headers to its INVITEs."""

    def __init__(self, server, user):
        self.requests = []
        self.answered = []  # dialogs of calls this phone answered
        super().__init__(server, DOMAIN, user, "unused-password")

    def invite_with(self, target_user: str, extra: list, timeout: float = 8.0) -> Call:
        ruri = f"sip:{target_user}@{self.domain}"
        d = Dialog(call_id=f"{_rand(16)}@{self.ip}", local_tag=_rand(10), local_uri=self.aor, remote_uri=ruri, cseq=0)

        def headers():
            d.cseq += 1
            return ([f"From: <{self.aor}>;tag={d.local_tag}", f"To: <{ruri}>", f"Call-ID: {d.call_id}",
                     f"CSeq: {d.cseq} INVITE", f"Contact: {self.contact}"] + extra, d.cseq)

        with self._lock:
            self._dialogs[(d.call_id, d.local_tag)] = d
        responses, cseq = self._request("INVITE", ruri, headers, self.sdp(), invite=True, timeout=timeout)
        final = responses[-1] if responses and responses[-1].status >= 200 else None
        if final is not None and 200 <= final.status < 300:
            d.remote_tag = tag_of(final.get("to"))
            contact = final.all("contact")
            d.remote_target = uri_of(contact[0]) if contact else ruri
            d.route_set = list(reversed(final.all("record-route")))
            self.ack(Call(final.status, final, d, cseq))
        return Call(final.status if final else None, final, d, cseq, responses)

    def in_dialog(self, d: Dialog, method: str, extra: list) -> int | None:
        d.cseq += 1
        data, branch = self._in_dialog(d, method, d.cseq, extra=extra)
        responses = self._transaction(data, branch, False, 8.0)
        return responses[-1].status if responses and responses[-1].status >= 200 else None

    def hang_up(self, d: Dialog):
        self.in_dialog(d, "BYE", [])

    def subscribe(self, target_user: str, event: str, accept: str) -> int | None:
        ruri = f"sip:{target_user}@{self.domain}"
        call_id, tag, n = f"sub-{_rand(12)}@{self.ip}", _rand(8), [0]

        def headers():
            n[0] += 1
            return ([f"From: <{self.aor}>;tag={tag}", f"To: <{ruri}>", f"Call-ID: {call_id}",
                     f"CSeq: {n[0]} SUBSCRIBE", f"Contact: {self.contact}", f"Event: {event}", f"Accept: {accept}",
                     "Expires: 120"], n[0])

        responses, _ = self._request("SUBSCRIBE", ruri, headers)
        return responses[-1].status if responses else None

    def notifies(self, event: str) -> list:
        with self._lock:
            return [r for r in self.requests
                    if r.first.startswith("NOTIFY ") and (r.get("event") or "").lower().startswith(event)]

    def new_invites(self) -> list:
        with self._lock:
            return [r for r in self.requests if r.first.startswith("INVITE ") and not tag_of(r.get("to"))]

    def _on_request(self, req, src):
        with self._lock:
            self.requests.append(req)
        method = req.first.split(" ", 1)[0]
        m = re.search(r"branch=([^;,\s]+)", req.get("via", ""))
        branch = m.group(1) if m else ""
        if method == "ACK":
            return
        with self._lock:
            cached = self._answered.get((branch, method))
        if cached is not None:
            self._send(cached, self._reply_to(req, src))
            return
        to_tag = tag_of(req.get("to"))
        with self._lock:
            d = next((dd for (cid, lt), dd in self._dialogs.items() if cid == req.call_id and lt == to_tag), None)
        body, status, reason, new_tag = b"", 200, "OK", None
        if method == "INVITE" and d is None and not to_tag:  # a new call (a recall): answer it
            new_tag = _rand(8)
            contact = req.all("contact")
            d = Dialog(call_id=req.call_id, local_tag=new_tag, remote_tag=tag_of(req.get("from")),
                       local_uri=uri_of(req.get("to")), remote_uri=uri_of(req.get("from")),
                       remote_target=uri_of(contact[0]) if contact else "", route_set=req.all("record-route"))
            with self._lock:
                self._dialogs[(d.call_id, new_tag)] = d
                self.answered.append(d)
            body = self.sdp()
        elif method in ("INVITE", "UPDATE"):
            if d is None:
                status, reason = 481, "Call/Transaction Does Not Exist"
            else:
                body = self.sdp()
        elif method == "BYE":
            if d is None:
                status, reason = 481, "Call/Transaction Does Not Exist"
            else:
                d.ended.set()
        elif method == "REFER":
            status, reason = 202, "Accepted"
        headers = [f"Via: {v}" for v in req.all("via")]
        if method == "INVITE" and status == 200:  # RFC 3261 §12.1.1: the route set goes back in the 2xx
            headers += [f"Record-Route: {r}" for r in req.all("record-route")]
        headers += [f"From: {req.get('from')}", f"To: {req.get('to')}" + (f";tag={new_tag}" if new_tag else ""),
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


class Kamailio(KamailioProcess):
    """examples/kamailio/kamailio.cfg with its #!define lines set for this run, in the foreground."""

    def __init__(self, binary: str, port: int, parkway_port: int, folder: str):
        defines = {"KAMAILIO_LISTEN": f"udp:{KAMAILIO_IP}:{port}", "PARKWAY_IP": '"127.0.0.1"',
                   "PARKWAY_PORT": str(parkway_port), "PARKWAY_URI": f'"sip:127.0.0.1:{parkway_port}"'}
        super().__init__(binary, EXAMPLE_CFG, defines, folder, KAMAILIO_IP, port, f"sip:ping@{DOMAIN}")


def parked(pw) -> list:
    status, body = pw.admin("GET", f"/api/parked?domain={DOMAIN}")
    return body.get("parked", []) if status == 200 and isinstance(body, dict) else []


def supports(binary: str, key: str) -> bool:
    """Whether this parkway knows a setting (--dump-config lists every key, module parameters included)."""
    out = subprocess.run([binary, "--dump-config"], capture_output=True, text=True, timeout=10).stdout
    return re.search(rf"^\s*#?\s*{key}\s*=", out, re.M) is not None


def parkway_for(folder: str, kport: int, routing: dict) -> Parkway:
    provision = os.path.join(folder, "provision.toml")
    with open(provision, "w") as f:
        f.write(f'[[domain]]\nname = "{DOMAIN}"\nrecall_time = 2\nrecall_mode = "parker"\nretry = 1\n\n'
                '[[domain.group]]\nname = "sales"\nmembers = ["1001", "1003", "1004"]\nnotify_parker = true\n\n'
                '[[domain.lot]]\nname = "main"\nfirst = 701\nlast = 720\nchoice = "first"\n')
    moh = 41000 + 100 * (os.getpid() % 180)
    callpark = {"refer_mode": "passthrough", "park_info": True, "moh_ip": "127.0.0.1", "moh_port_min": moh,
                "moh_port_max": moh + 99, "provision_file": provision,
                "rules_file": os.path.join(REPO, "examples", "rules.tsv")}
    proxy = {"trusted_peers": [KAMAILIO_IP]}
    if routing["outbound_proxy"]:
        proxy["outbound_proxy"] = f"sip:{KAMAILIO_IP}:{kport};lr"
    if routing["notify_target"]:
        callpark["notify_target"] = "auto"
    return Parkway(BINARY, modules=["registrar", "callpark", "router"], module_params={"callpark": callpark},
                   proxy=proxy, admin=True, auth={}, workdir=folder)


def scenario(pw, kam) -> None:
    server = (KAMAILIO_IP, kam.port)
    a, b, c, d = (Phone(server, u) for u in ("1001", "1002", "1003", "1004"))
    phones = (a, b, c, d)
    try:
        regs = [p.register(expires=300).status for p in phones]
        check("register", regs == [200] * 4, f"REGISTER answers {regs}")

        # BLF: D watches the park slot *881003 before anything is parked.
        sub = d.subscribe("*881003", "dialog", "application/dialog-info+xml")
        check("blf_subscribe", sub == 200, f"SUBSCRIBE -> {sub}")

        # Park by REFER, passthrough: Parkway never sees the REFER, only the transferee's INVITE.
        call = b.invite_with("1001", [])
        ok = call.status == 200 and bool(a.answered)
        check("call_b_to_a", ok, f"B -> A: {call.status}")
        refer = a.in_dialog(a.answered[-1], "REFER", [f"Refer-To: <sip:*681003@{DOMAIN}>"]) if ok else None
        check("refer_relayed", refer == 202, f"REFER -> {refer}")
        park = b.invite_with("*681003", [])  # like baresip and linphone: no Referred-By
        check("refer_park", park.status == 200, f"INVITE *681003 -> {park.status}")
        if a.answered:
            a.hang_up(a.answered[-1])  # the transferor leaves its call with B, as a phone does after the transfer
        calls = parked(pw)
        check("refer_parker", len(calls) == 1 and calls[0].get("parker") == "1001"
              and calls[0].get("extension") == "1003", f"parked: {calls}")
        check("blf", wait_until(lambda: any(re.search(rb"<state>(early|confirmed)</state>", n.body)
                                          for n in d.notifies("dialog")), 3),
              f"{len(d.notifies('dialog'))} dialog NOTIFYs")
        check("park_info", wait_until(lambda: len(c.notifies("park-info")) >= 1, 3),
              "no park-info NOTIFY reached 1003 through Kamailio")

        # Retrieve from D.
        ret = d.invite_with("*881003", [])
        check("retrieve", ret.status == 200 and wait_until(lambda: not parked(pw), 3),
              f"*881003 -> {ret.status}, parked {parked(pw)}")
        if ret.status == 200:
            d.hang_up(ret.dialog)

        # Recall: parked with Referred-By A (believed from Kamailio, a trusted peer); 2 s later A rings.
        before = len(a.new_invites())
        rp = b.invite_with("*681004", [f"Referred-By: <sip:1001@{DOMAIN}>"])
        check("recall_park", rp.status == 200, f"INVITE *681004 -> {rp.status}")
        check("recall", wait_until(lambda: len(a.new_invites()) > before, 6),
              "no recall INVITE reached 1001 through Kamailio")
        if rp.status == 200:
            b.hang_up(rp.dialog)
        wait_until(lambda: not parked(pw), 3)

        # Group park: *58 from B for A (a member of sales): park-info to every member.
        counts = {p.user: len(p.notifies("park-info")) for p in (a, c, d)}
        gp = b.invite_with("*58", [f"Referred-By: <sip:1001@{DOMAIN}>"])
        calls = parked(pw)
        check("group_park", gp.status == 200 and len(calls) == 1 and calls[0].get("group") == "sales",
              f"*58 -> {gp.status}, parked {calls}")
        got = wait_until(lambda: all(len(p.notifies("park-info")) > counts[p.user] for p in (a, c, d)), 3)
        check("group_park_info", got, f"park-info before {counts}, after "
              f"{ {p.user: len(p.notifies('park-info')) for p in (a, c, d)} }")
        if gp.status == 200:
            b.hang_up(gp.dialog)
        wait_until(lambda: not parked(pw), 3)

        # Lot: 700 parks into the first free slot (701), D dials 701 to get it.
        lp = b.invite_with("700", [f"Referred-By: <sip:1001@{DOMAIN}>"])
        calls = parked(pw)
        check("lot_park", lp.status == 200 and len(calls) == 1 and str(calls[0].get("slot")) == "701",
              f"700 -> {lp.status}, parked {calls}")
        lr = d.invite_with("701", [])
        check("lot_retrieve", lr.status == 200 and wait_until(lambda: not parked(pw), 3), f"701 -> {lr.status}")
        if lr.status == 200:
            d.hang_up(lr.dialog)
    finally:
        for p in phones:
            p.close()


def main() -> int:
    if not os.path.exists(KAMAILIO):
        print(f"WARNING: {KAMAILIO} not found (install kamailio): skipped", flush=True)
        return 0
    folder = tempfile.mkdtemp(prefix="parkway-kamailio-")
    routing = {k: supports(BINARY, k) for k in ("outbound_proxy", "notify_target")}
    for k in (k for k, ok in routing.items() if not ok):
        print(f"WARNING: this parkway has no '{k}' setting: park-info and recalls cannot reach phones registered "
              "only at Kamailio", flush=True)
    kport = free_port(KAMAILIO_IP)
    pw = kam = None
    try:
        pw = parkway_for(folder, kport, routing)
        kam = Kamailio(KAMAILIO, kport, pw.port, folder)
        scenario(pw, kam)
    except Exception as e:  # a broken set-up is a failure with its cause, not a traceback
        check("setup", False, f"{type(e).__name__}: {e}")
    finally:
        if kam:
            kam.stop()
        if pw:
            pw.stop()
        failed = [n for n, ok in results if not ok]
        if failed:
            if pw:
                print(f"---- parkway log\n{pw.log()[-5000:]}")
            if kam:
                print(f"---- kamailio log\n{kam.log()[-3000:]}")
        if os.environ.get("PARKWAY_KEEP_TMP") == "1":
            print(f"kept {folder}")
        else:
            if pw:
                pw.close()
            shutil.rmtree(folder, ignore_errors=True)
    print(f"{len(results) - len(failed)} passed, {len(failed)} failed", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    sys.exit(main())
