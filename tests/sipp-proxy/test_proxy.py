#!/usr/bin/env python3
"""SIPp black-box tests of parkway as a registrar + stateful proxy. One case per ctest test:

    test_proxy.py <parkway binary> <case>

Every case starts its own daemon on free loopback ports (tests run in parallel) and stops everything it starts.
"""
import os
import re
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from parkway_blackbox import Parkway, Sipp, free_port, scenario, send_udp, status_of  # noqa: E402

BINARY = sys.argv[1]


def register(pw, user, cport, expires=600, brief=False):
    return Sipp(scenario("register_brief.xml" if brief else "register.xml"), remote=pw.sip, calls=1, timeout=10,
                variables={"user": user, "cport": cport, "expires": expires}).run()


def case_register():
    with Parkway(BINARY) as pw:
        register(pw, "1001", free_port()).check(successful=1)
        # RFC 3261 §10.3: too brief an interval -> 423 with Min-Expires.
        register(pw, "1001", free_port(), expires=30, brief=True).check(successful=1)
        # Never-registered user: the router answers 404 (480 is for a known user without a live contact).
        invite = ("INVITE sip:7777@127.0.0.1 SIP/2.0\nVia: SIP/2.0/UDP 127.0.0.1:$LPORT;branch=z9hG4bKnf1;rport\n"
                  "Max-Forwards: 70\nFrom: <sip:a@127.0.0.1>;tag=1\nTo: <sip:7777@127.0.0.1>\nCall-ID: nf1@x\n"
                  "CSeq: 1 INVITE\nContact: <sip:a@127.0.0.1:$LPORT>\nContent-Length: 0\n\n")
        assert status_of(send_udp(pw.port, invite)) == 404


def case_calls200():
    with Parkway(BINARY) as pw:
        uas = Sipp(scenario("uas.xml"), calls=200, timeout=60).start()
        register(pw, "2001", uas.port).check(successful=1)
        uac = Sipp(scenario("uac.xml"), remote=pw.sip, calls=200, rate=50, timeout=60,
                   variables={"callee": "2001"}).run()
        uac.check(successful=200, failed=0)
        uas.wait().check(successful=200, failed=0)


def case_cancel():
    with Parkway(BINARY) as pw:
        uas = Sipp(scenario("uas_ring_cancel.xml"), calls=1, timeout=20).start()
        register(pw, "2002", uas.port).check(successful=1)
        Sipp(scenario("uac_cancel.xml"), remote=pw.sip, calls=1, timeout=20,
             variables={"callee": "2002"}).run().check(successful=1)
        uas.wait().check(successful=1)


def case_fork():
    """Two phones on one AOR: the proxy forks in parallel; one answers, the other gets CANCEL (RFC 3261 §16.7)."""
    with Parkway(BINARY) as pw:
        answers = Sipp(scenario("uas.xml"), calls=1, timeout=20).start()
        rings = Sipp(scenario("uas_ring_cancel.xml"), calls=1, timeout=20).start()
        register(pw, "3001", answers.port).check(successful=1)
        register(pw, "3001", rings.port).check(successful=1)
        Sipp(scenario("uac.xml"), remote=pw.sip, calls=1, timeout=20,
             variables={"callee": "3001"}).run().check(successful=1)
        answers.wait().check(successful=1)
        rings.wait().check(successful=1)


def case_malformed():
    """Malformed requests get 400 (when they can be answered) and the daemon keeps serving."""
    with Parkway(BINARY) as pw:
        bad_cseq = ("INVITE sip:1@127.0.0.1 SIP/2.0\nVia: SIP/2.0/UDP 127.0.0.1:$LPORT;branch=z9hG4bKbad1;rport\n"
                    "Max-Forwards: 70\nFrom: <sip:a@127.0.0.1>;tag=1\nTo: <sip:1@127.0.0.1>\nCall-ID: bad1@x\n"
                    "CSeq: notanumber INVITE\nContent-Length: 0\n\n")
        reply = send_udp(pw.port, bad_cseq)
        assert status_of(reply) == 400, f"bad CSeq: {reply!r}"
        no_from = ("OPTIONS sip:1@127.0.0.1 SIP/2.0\nVia: SIP/2.0/UDP 127.0.0.1:$LPORT;branch=z9hG4bKbad2;rport\n"
                   "Max-Forwards: 70\nTo: <sip:1@127.0.0.1>\nCall-ID: bad2@x\nCSeq: 1 OPTIONS\nContent-Length: 0\n\n")
        reply = send_udp(pw.port, no_from)
        assert status_of(reply) == 400, f"missing From: {reply!r}"
        # Garbage that cannot be answered: nothing comes back, nothing breaks.
        send_udp(pw.port, b"\x00\xffnot sip at all\r\n\r\n", expect_reply=False)
        send_udp(pw.port, "INVITE\n\n", expect_reply=False)
        assert pw.alive(), "daemon died on malformed input"
        assert pw.options() == 200
        register(pw, "1001", free_port()).check(successful=1)


def case_unknown_method():
    """An extension method the proxy does not know is forwarded like any request (RFC 3261 §16)."""
    with Parkway(BINARY) as pw:
        uas = Sipp(scenario("uas_foo.xml"), calls=1, timeout=20).start()
        register(pw, "4001", uas.port).check(successful=1)
        Sipp(scenario("uac_foo.xml"), remote=pw.sip, calls=1, timeout=20,
             variables={"callee": "4001"}).run().check(successful=1)
        uas.wait().check(successful=1)


def case_tcp_call():
    """The caller uses the TCP listener, the callee UDP."""
    with Parkway(BINARY) as pw:
        uas = Sipp(scenario("uas.xml"), calls=5, timeout=30).start()
        register(pw, "2003", uas.port).check(successful=1)
        Sipp(scenario("uac.xml"), remote=pw.sip, calls=5, rate=10, timeout=30, transport="t1",
             variables={"callee": "2003"}).run().check(successful=5)
        uas.wait().check(successful=5)


def case_restart():
    """Registrations survive a clean restart and a crash (SQLite); SIGTERM exits 0; SIGHUP reloads."""
    with Parkway(BINARY) as pw:
        uas = Sipp(scenario("uas.xml"), calls=2, timeout=60).start()
        register(pw, "5001", uas.port).check(successful=1)
        pw.reload()
        assert pw.wait_log("SIGHUP: reloading"), pw.log()
        assert pw.options() == 200
        assert pw.stop() == 0, pw.log()
        assert "SIGTERM: shutting down" in pw.log()
        pw.start()
        Sipp(scenario("uac.xml"), remote=pw.sip, calls=1, timeout=20,
             variables={"callee": "5001"}).run().check(successful=1)
        pw.kill9()
        pw.start()
        Sipp(scenario("uac.xml"), remote=pw.sip, calls=1, timeout=20,
             variables={"callee": "5001"}).run().check(successful=1)
        uas.wait().check(successful=2)


def case_hello_module():
    """The example module is loaded from the config and adds its header to forwarded requests."""
    import tempfile
    with Parkway(BINARY, modules=["hello", "registrar", "router"], module_params={"hello": {"value": "bb-test"}}) as pw:
        msg_file = os.path.join(tempfile.mkdtemp(prefix="parkway-hello-"), "uas_messages.log")
        uas = Sipp(scenario("uas_foo.xml"), calls=1, timeout=20, extra=["-trace_msg", "-message_file", msg_file]).start()
        register(pw, "6001", uas.port).check(successful=1)
        Sipp(scenario("uac_foo.xml"), remote=pw.sip, calls=1, timeout=20,
             variables={"callee": "6001"}).run().check(successful=1)
        uas.wait().check(successful=1)
        with open(msg_file, errors="replace") as f:
            msgs = f.read()
        import shutil
        shutil.rmtree(os.path.dirname(msg_file), ignore_errors=True)
        # The header must be in the header section of the request the callee got (not after the blank line).
        start = msgs.find("FOO sip:")
        assert start >= 0, "the callee got no FOO request"
        head = re.split(r"\r?\n\r?\n", msgs[start:], maxsplit=1)[0]
        assert re.search(r"^X-Hello: bb-test\r?$", head, re.M), "X-Hello header not in the callee's request headers"


def case_admin_registrations():
    """registrations.list through the admin API shows what SIP phones registered; bad arguments get 400."""
    with Parkway(BINARY, admin=True) as pw:
        port = free_port()
        register(pw, "9001", port, expires=300).check(successful=1)
        status, body = pw.admin("POST", "/api/modules/registrar/registrations.list", {"aor": "sip:9001@127.0.0.1"})
        assert status == 200, (status, body)
        contact = body["registrations"][0]["contacts"][0]
        assert contact["uri"] == f"sip:9001@127.0.0.1:{port}" and 290 <= contact["expires"] <= 300, body
        status, body = pw.admin("POST", "/api/modules/registrar/registrations.list", {"aor": 5})
        assert status == 400, (status, body)
        status, _ = pw.admin("POST", "/api/modules/registrar/registrations.list", {}, token="wrong")
        assert status == 401


def case_startup_errors():
    """A module that cannot start, or a bad config, stops the daemon at once with a message that names it."""
    import subprocess
    import tempfile
    d = tempfile.mkdtemp(prefix="parkway-sf-")
    cfg = os.path.join(d, "p.toml")
    with open(cfg, "w") as f:
        f.write('[proxy]\nlisten = ["udp:127.0.0.1:0"]\ndatabase = "/nonexistent-dir/x.db"\n'
                '[modules]\nload = ["registrar", "router"]\n')
    r = subprocess.run([BINARY, "--config", cfg], capture_output=True, text=True, timeout=20)
    assert r.returncode != 0, r
    # the core opens it first (SIP users, docs/auth.md), then the registrar: either names the file
    assert "database" in r.stderr and "/nonexistent-dir/x.db" in r.stderr, r.stderr
    with open(cfg, "w") as f:
        f.write('[proxy]\nlisten = ["udp:127.0.0.1:0"]\nt1_ms = "x"\n')
    r = subprocess.run([BINARY, "--config", cfg], capture_output=True, text=True, timeout=20)
    assert r.returncode == 2 and f"{cfg}:3:9: proxy.t1_ms" in r.stderr, r.stderr
    import shutil
    shutil.rmtree(d, ignore_errors=True)


def raw_register(pw, user, contact_port, call_id, cseq=1, expires=600, domain="127.0.0.1"):
    msg = (f"REGISTER sip:{domain} SIP/2.0\nVia: SIP/2.0/UDP 127.0.0.1:$LPORT;branch=z9hG4bK{call_id}{cseq};rport\n"
           f"Max-Forwards: 70\nFrom: <sip:{user}@{domain}>;tag=t{cseq}\nTo: <sip:{user}@{domain}>\n"
           f"Call-ID: {call_id}\nCSeq: {cseq} REGISTER\nContact: <sip:{user}@127.0.0.1:{contact_port}>\n"
           f"Expires: {expires}\nContent-Length: 0\n\n")
    return pw.send_udp(msg)


def case_registrar_caps():
    """Many names from one stranger: beyond max_aors each new AOR gets 503 + Retry-After and nothing is stored;
    a known AOR still refreshes; beyond max_contacts an AOR gets 503 Too Many Registered Contacts."""
    with Parkway(BINARY, admin=True, module_params={"registrar": {"max_aors": 3, "max_contacts": 2}}) as pw:
        for i in range(3):
            assert status_of(raw_register(pw, f"70{i}", 6000 + i, f"reg{i}")) == 200
        for i in range(3, 40):
            reply = raw_register(pw, f"70{i}", 6000 + i, f"reg{i}")
            assert status_of(reply) == 503, reply
            assert re.search(r"^Retry-After: 60\r?$", reply, re.M), reply
        assert status_of(raw_register(pw, "700", 6000, "reg0", cseq=2)) == 200  # a refresh: never refused
        assert status_of(raw_register(pw, "701", 6101, "reg1b")) == 200     # a second contact: fine
        reply = raw_register(pw, "701", 6102, "reg1c")                       # a third: over max_contacts
        assert status_of(reply) == 503 and "Too Many Registered Contacts" in reply, reply
        status, body = pw.admin("POST", "/api/modules/registrar/registrations.list", {})
        assert status == 200, (status, body)
        assert sorted(r["aor"] for r in body["registrations"]) == [f"sip:70{i}@127.0.0.1" for i in range(3)], body
        status, text = pw.admin("GET", "/metrics")
        text = text if isinstance(text, str) else str(text)
        assert 'parkway_registrar_refused_total{reason="max_aors"} 37' in text, text[-3000:]
        assert "parkway_registrar_aors 3" in text, text[-3000:]


def case_moh_fd_limit():
    """A music-on-hold range that cannot fit the open-file limit stops the daemon at start with a message that
    names the settings (instead of EMFILE once parks come in)."""
    import resource
    import subprocess
    import tempfile
    d = tempfile.mkdtemp(prefix="parkway-fd-")
    cfg = os.path.join(d, "p.toml")
    with open(cfg, "w") as f:
        f.write(f'[proxy]\nlisten = ["udp:127.0.0.1:{free_port()}"]\ndatabase = "{d}/p.db"\n'
                'tcp_max_connections = 64\n'
                '[modules]\nload = ["registrar", "callpark", "router"]\n'
                '[module.callpark]\nmoh_port_min = 40000\nmoh_port_max = 41998\n')

    def low_limit():
        resource.setrlimit(resource.RLIMIT_NOFILE, (512, 512))

    r = subprocess.run([BINARY, "--config", cfg], capture_output=True, text=True, timeout=20, preexec_fn=low_limit)
    assert r.returncode != 0, r
    assert "moh_port_min/moh_port_max 40000..41998" in r.stderr and "open-file limit 512" in r.stderr, r.stderr
    import shutil
    shutil.rmtree(d, ignore_errors=True)


CASES = {name[5:]: fn for name, fn in globals().items() if name.startswith("case_")}

if __name__ == "__main__":
    case = sys.argv[2]
    CASES[case]()
    print(f"{case}: OK")
