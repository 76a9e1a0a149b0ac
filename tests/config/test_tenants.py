#!/usr/bin/env python3
"""Tenants without restart (docs/admin-api.md "Live reload" and "Tenants", docs/callpark.md "Tenants"), against the real daemon:

    test_tenants.py <parkway binary> <case>

  reload_domains      a domain added to [proxy] domains is served after SIGHUP, another after POST /api/reload
                      (which names what was added and removed); a bad file changes nothing and names the setting
  remove_parked       a reload dropping a domain that holds a parked call is refused (409, the domain and the
                      count named), the call stays parked and the domain stays served
  provision_serves    a domain provisioned with PUT /api/domains/{d} (not in [proxy]) is served: its users are
                      challenged in its realm, a user added over the API registers, and calls reach its contacts
  deprovision_parked  DELETE /api/domains/{d} with a parked call: 409 naming the domain and the count; after the
                      call is gone: deleted, and the domain is no longer served

Every process started here is stopped here.
"""
import hashlib
import os
import random
import re
import socket
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from parkway_blackbox import Parkway, Sipp, free_port, status_of, wait_until  # noqa: E402

BINARY, CASE = sys.argv[1], sys.argv[2]
PARK = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "examples", "sipp", "park")
MODULES = ["registrar", "callpark", "router"]
PARAMS = {"callpark": {"database": "park.db"}}
BASE = ["127.0.0.1", "pbx.example.com"]


def branch():
    return "z9hG4bK" + "".join(random.choice("0123456789abcdef") for _ in range(16))


class Phone:
    """A UDP socket that registers for user@domain and takes what is sent to its contact."""

    def __init__(self, pw, domain, user="2001"):
        self.pw, self.domain, self.user = pw, domain, user
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(3)
        self.port = self.sock.getsockname()[1]

    def close(self):
        self.sock.close()

    def _recv_final(self, timeout=3.0):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                data, _ = self.sock.recvfrom(65535)
            except socket.timeout:
                return None
            text = data.decode(errors="replace")
            if text.startswith("SIP/2.0 ") and not text.startswith("SIP/2.0 1"):
                return text
        return None

    def register(self, auth=None, cseq=1, call_id=None):
        b = branch()
        self.call_id = call_id or f"reg-{b}@127.0.0.1"
        msg = (f"REGISTER sip:{self.domain} SIP/2.0\r\n"
               f"Via: SIP/2.0/UDP 127.0.0.1:{self.port};branch={b};rport\r\nMax-Forwards: 70\r\n"
               f"From: <sip:{self.user}@{self.domain}>;tag=r{b[-6:]}\r\nTo: <sip:{self.user}@{self.domain}>\r\n"
               f"Call-ID: {self.call_id}\r\nCSeq: {cseq} REGISTER\r\n"
               f"Contact: <sip:{self.user}@127.0.0.1:{self.port}>\r\nExpires: 300\r\n"
               + (f"Authorization: {auth}\r\n" if auth else "") + "Content-Length: 0\r\n\r\n")
        self.sock.sendto(msg.encode(), ("127.0.0.1", self.pw.port))
        return self._recv_final()

    def register_digest(self, password):
        """REGISTER, answer the SHA-256 challenge (RFC 7616 §3.4), return the final status."""
        first = self.register()
        assert status_of(first) == 401, first
        m = re.search(r'WWW-Authenticate: Digest realm="([^"]+)", nonce="([^"]+)", algorithm=SHA-256', first)
        assert m, first
        realm, nonce = m.group(1), m.group(2)
        assert realm == self.domain, f"challenged in realm {realm}, not {self.domain}"
        h = lambda s: hashlib.sha256(s.encode()).hexdigest()  # noqa: E731
        uri, cnonce, nc = f"sip:{self.domain}", "c0ffee", "00000001"
        ha1, ha2 = h(f"{self.user}:{realm}:{password}"), h(f"REGISTER:{uri}")
        resp = h(f"{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}")
        auth = (f'Digest username="{self.user}", realm="{realm}", nonce="{nonce}", uri="{uri}", '
                f'response="{resp}", algorithm=SHA-256, qop=auth, nc={nc}, cnonce="{cnonce}"')
        return status_of(self.register(auth=auth, cseq=2, call_id=self.call_id))

    def expect_request(self, method, timeout=3.0):
        """The next request that reaches this contact (answered 200), or None."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                data, addr = self.sock.recvfrom(65535)
            except socket.timeout:
                return None
            text = data.decode(errors="replace")
            if not text.startswith(method + " "):
                continue
            heads = [ln for ln in text.split("\r\n") if re.match(r"(?i)(via|from|to|call-id|cseq):", ln)]
            self.sock.sendto(("SIP/2.0 200 OK\r\n" + "\r\n".join(heads) + "\r\nContent-Length: 0\r\n\r\n").encode(),
                             addr)
            return text
        return None


def register_status(pw, domain, user="2001"):
    p = Phone(pw, domain, user)
    try:
        return status_of(p.register())
    finally:
        p.close()


def options_to(pw, ruri):
    b = branch()
    msg = (f"OPTIONS {ruri} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:$LPORT;branch={b};rport\r\nMax-Forwards: 70\r\n"
           f"From: <sip:probe@127.0.0.1>;tag=o{b[-6:]}\r\nTo: <{ruri}>\r\nCall-ID: opt-{b}@127.0.0.1\r\n"
           f"CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n")
    return status_of(pw.send_udp(msg, timeout=3))


def proxy_config(pw, domains, unauth=None):
    """The daemon's config with other [proxy] domains (and the unauthenticated ones among them)."""
    pw.proxy_extra["domains"] = domains
    pw.auth = {"unauthenticated_domains": unauth if unauth is not None else domains}
    return pw.config_toml()


def park_call(pw, domain, ext="103", user="2001"):
    return Sipp(os.path.join(PARK, "park_call.xml"), remote=pw.sip, calls=1, timeout=60,
                extra=["-key", "domain", domain, "-key", "user", user, "-key", "display", "Alice",
                       "-key", "dial", f"*68{ext}", "-key", "extra", "X-Test: 1", "-key", "codecs", "0 8",
                       "-key", "moh_port", str(free_port())]).start()


def parked(pw, domain):
    st, body = pw.admin("GET", f"/api/parked?domain={domain}")
    assert st == 200, (st, body)
    return body["parked"]


def case_reload_domains():
    with Parkway(BINARY, modules=MODULES, module_params=PARAMS, admin=True) as pw:
        # Not a local domain yet: the registrar leaves it alone, and the core is no open relay for it.
        before = register_status(pw, "tenant-a.example")
        assert before == 403, before

        pw.rewrite_config(proxy_config(pw, BASE + ["tenant-a.example"]))
        pw.reload()  # SIGHUP
        assert pw.wait_log("proxy.domains: added tenant-a.example; removed none"), pw.log()[-3000:]
        assert register_status(pw, "tenant-a.example") == 200

        # The admin API's reload says what changed.
        pw.rewrite_config(proxy_config(pw, BASE + ["tenant-b.example"]))
        st, body = pw.admin("POST", "/api/reload", {})
        assert st == 200, (st, body)
        assert body["domains"] == {"added": ["tenant-b.example"], "removed": ["tenant-a.example"]}, body
        assert register_status(pw, "tenant-b.example") == 200
        assert register_status(pw, "tenant-a.example") == before

        # A bad file changes nothing (tenant-c is not added) and the error names the setting.
        good = pw.config_toml()
        bad = good.replace('"tenant-b.example"]', '"tenant-b.example", "tenant-c.example"]', 1)
        bad = bad.replace("[auth]\n", '[auth]\nmd5_off_domains = ["nowhere.example"]\n')
        pw.rewrite_config(bad)
        st, body = pw.admin("POST", "/api/reload", {})
        assert st == 400 and "auth.md5_off_domains[0]" in body["error"] and "nothing changed" in body["error"], body
        assert register_status(pw, "tenant-c.example") == before
        assert register_status(pw, "tenant-b.example") == 200
        pw.reload()
        assert pw.wait_log("reload refused, nothing changed: config error:"), pw.log()[-3000:]
        assert register_status(pw, "tenant-c.example") == before


def case_remove_parked():
    with Parkway(BINARY, modules=MODULES, module_params=PARAMS, admin=True) as pw:
        pw.rewrite_config(proxy_config(pw, BASE + ["tenant-p.example"]))
        st, body = pw.admin("POST", "/api/reload", {})
        assert st == 200 and body["domains"]["added"] == ["tenant-p.example"], (st, body)
        party = park_call(pw, "tenant-p.example")
        try:
            assert wait_until(lambda: len(parked(pw, "tenant-p.example")) == 1, 15), parked(pw, "tenant-p.example")

            pw.rewrite_config(proxy_config(pw, BASE))
            st, body = pw.admin("POST", "/api/reload", {})
            assert st == 409, (st, body)
            assert body["error"] == ("reload refused, nothing changed: proxy.domains: cannot remove tenant-p.example: "
                                     "module callpark: domain tenant-p.example has 1 parked call"), body
            pw.reload()
            assert pw.wait_log("reload refused, nothing changed: proxy.domains: cannot remove tenant-p.example"), \
                pw.log()[-3000:]
            assert len(parked(pw, "tenant-p.example")) == 1
            assert register_status(pw, "tenant-p.example") == 200  # still served

            # Once the call is gone the same file is taken.
            call = parked(pw, "tenant-p.example")[0]
            st, body = pw.admin("DELETE", f"/api/parked/{call['id']}")
            assert st == 200, (st, body)
            assert wait_until(lambda: not parked(pw, "tenant-p.example"), 10)
            st, body = pw.admin("POST", "/api/reload", {})
            assert st == 200 and body["domains"]["removed"] == ["tenant-p.example"], (st, body)
            assert register_status(pw, "tenant-p.example") == 403
        finally:
            party.stop()


def case_provision_serves():
    # No trusted peers, tenant-t not in [proxy] nor [auth]: its users must authenticate.
    with Parkway(BINARY, modules=MODULES, module_params=PARAMS, admin=True) as pw:
        before = register_status(pw, "tenant-t.example")
        st, body = pw.admin("PUT", "/api/users/tenant-t.example/2001", {"password": "secret-2001"})
        assert st == 404, (st, body)  # not local yet

        st, body = pw.admin("PUT", "/api/domains/tenant-t.example", {"park_code": "*68"})
        assert st == 200, (st, body)
        assert pw.wait_log("[callpark] serves domain tenant-t.example"), pw.log()[-3000:]
        assert register_status(pw, "tenant-t.example") == 401  # served: challenged in its realm
        assert before == 403, before  # not local: the core relays nothing for a stranger

        st, body = pw.admin("PUT", "/api/users/tenant-t.example/2001", {"password": "secret-2001"})
        assert st == 200, (st, body)
        phone = Phone(pw, "tenant-t.example")
        try:
            assert phone.register_digest("secret-2001") == 200
            # Requests for the tenant's users are routed to their registered contacts.
            got = {}
            import threading
            t = threading.Thread(target=lambda: got.setdefault("req", phone.expect_request("OPTIONS", 5)))
            t.start()
            status = options_to(pw, "sip:2001@tenant-t.example")
            t.join()
            assert got.get("req") and status == 200, (status, got)
        finally:
            phone.close()

        # Still served after a restart (callpark declares what it has provisioned at start).
        pw.restart()
        assert register_status(pw, "tenant-t.example") == 401


def case_deprovision_parked():
    # A front proxy on loopback is trusted (docs/auth.md): its requests carry the caller's identity.
    with Parkway(BINARY, modules=MODULES, module_params=PARAMS, admin=True,
                 proxy={"trusted_peers": ["127.0.0.1"]}) as pw:
        st, body = pw.admin("PUT", "/api/domains/tenant-d.example", {})
        assert st == 200, (st, body)
        party = park_call(pw, "tenant-d.example")
        try:
            assert wait_until(lambda: len(parked(pw, "tenant-d.example")) == 1, 15), pw.log()[-3000:]
            st, body = pw.admin("DELETE", "/api/domains/tenant-d.example")
            assert st == 409, (st, body)
            assert body["error"].startswith("domain tenant-d.example has 1 parked call:"), body
            assert len(parked(pw, "tenant-d.example")) == 1
            assert register_status(pw, "tenant-d.example") == 200
            st, body = pw.admin("PUT", "/api/users/tenant-d.example/2001", {"password": "secret-2001"})
            assert st == 200, (st, body)  # local: it can have users

            call = parked(pw, "tenant-d.example")[0]
            st, body = pw.admin("DELETE", f"/api/parked/{call['id']}")
            assert st == 200, (st, body)
            assert wait_until(lambda: not parked(pw, "tenant-d.example"), 10)
            st, body = pw.admin("DELETE", "/api/domains/tenant-d.example")
            assert st == 200 and body == {"domain": "tenant-d.example", "deleted": True, "local": False}, (st, body)
            # Not local any more: no users can be given to it (a trusted peer's REGISTER would be relayed on).
            st, body = pw.admin("PUT", "/api/users/tenant-d.example/2001", {"password": "secret-2001"})
            assert st == 404 and "not local" in body["error"], (st, body)
            st, body = pw.admin("DELETE", "/api/domains/tenant-d.example")
            assert st == 404 and "not provisioned" in body["error"], (st, body)
        finally:
            party.stop()


CASES = {name[5:]: fn for name, fn in globals().items() if name.startswith("case_")}

if __name__ == "__main__":
    CASES[CASE]()
    print(f"{CASE}: ok")
