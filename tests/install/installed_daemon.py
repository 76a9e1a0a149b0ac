#!/usr/bin/env python3
"""The installed daemon loads an out-of-tree module (docs/install.md; run by test_install.sh).

usage: installed_daemon.py PREFIX MODULE_SO [PKGCONFIG_MODULE_SO]

Starts PREFIX/bin/parkway (the installed copy, not the build tree's) on free loopback ports with a config that
loads MODULE_SO by path and registrar/router by name, which must come from PREFIX's module folder. A phone
registers (raw UDP), a request to it is forwarded, and the module's header must be in what the phone gets.
With a Type=notify unit, the daemon must send READY=1 and STOPPING=1 to $NOTIFY_SOCKET (sd_notify(3)).
The daemon is stopped by PID (SIGTERM) whatever happens.
"""
import os
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from parkway_blackbox import Parkway, send_udp, status_of  # noqa: E402

PREFIX, MODULE = sys.argv[1], sys.argv[2]
PC_MODULE = sys.argv[3] if len(sys.argv) > 3 else None
BINARY = os.path.join(PREFIX, "bin", "parkway")


def check_module_folder():
    """With no module_dir, the installed daemon documents (and so loads) the installed modules."""
    out = subprocess.run([BINARY, "--dump-config"], capture_output=True, text=True, check=True).stdout
    want = os.path.realpath(os.path.join(PREFIX, "lib", "parkway", "modules"))
    line = next((x for x in out.splitlines() if "modules found in" in x), "")
    assert f"modules found in {want})" in line, f"installed daemon looks for modules elsewhere: {line!r}"
    for name in ("registrar", "router", "callpark"):
        assert f"[module.{name}]" in out, f"installed module {name} not found by the installed daemon"
    print(f"ok: the installed daemon finds its modules in {want}")


def check_config_loads(module_so):
    cfg = os.path.join(os.path.dirname(module_so), "check.toml")
    with open(cfg, "w") as f:
        f.write(f'[proxy]\nlisten = ["udp:127.0.0.1:0"]\ndatabase = "check.db"\n'
                f'[modules]\nload = ["{module_so}", "registrar", "router"]\n[module.hello]\nvalue = "pc"\n')
    r = subprocess.run([BINARY, "--check-config", cfg], capture_output=True, text=True)
    assert r.returncode == 0 and "config OK" in r.stdout, (r.returncode, r.stdout, r.stderr)
    print(f"ok: --check-config loads {module_so}")


def request(method, uri, lport, call_id, extra=""):
    return (f"{method} {uri} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{lport};branch=z9hG4bK-{call_id};rport\r\n"
            f"Max-Forwards: 70\r\nFrom: <sip:6002@127.0.0.1>;tag={call_id}\r\nTo: <{uri}>\r\n"
            f"Call-ID: {call_id}@127.0.0.1\r\nCSeq: 1 {method}\r\n{extra}Content-Length: 0\r\n\r\n")


def notify_socket():
    """A stand-in for systemd's notification socket (sd_notify(3) writes datagrams to $NOTIFY_SOCKET)."""
    path = os.path.join(os.path.dirname(MODULE), "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(5)
    os.environ["NOTIFY_SOCKET"] = path
    return sock


def unit_type():
    with open(os.path.join(PREFIX, "lib", "systemd", "system", "parkway.service")) as f:
        return next(line.split("=", 1)[1].strip() for line in f if line.startswith("Type="))


def check_notify(sock, want):
    """Type=notify: READY=1 once the daemon is listening (its ready line is logged first)."""
    if unit_type() != "notify":
        print("note: built without libsystemd (unit Type=exec): no sd_notify to check")
        return
    msg = sock.recv(4096).decode()
    assert want in msg.split("\n"), f"expected {want} on NOTIFY_SOCKET, got {msg!r}"
    print(f"ok: sd_notify {want}")


def check_module_runs():
    sock = notify_socket()
    with Parkway(BINARY, modules=[MODULE, "registrar", "router"],
                 module_params={"hello": {"value": "out-of-tree"}}) as pw:
        assert pw.wait_log("hello: loaded"), "the out-of-tree module did not log its init"
        check_notify(sock, "READY=1")
        phone = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        phone.bind(("127.0.0.1", 0))
        phone.settimeout(5)
        pport = phone.getsockname()[1]
        try:
            reg = request("REGISTER", "sip:6001@127.0.0.1", pport, "reg1",
                          f"Contact: <sip:6001@127.0.0.1:{pport}>\r\nExpires: 300\r\n")
            reg = reg.replace("REGISTER sip:6001@127.0.0.1", "REGISTER sip:127.0.0.1", 1)
            phone.sendto(reg.encode(), ("127.0.0.1", pw.port))
            reply = phone.recv(65535).decode(errors="replace")
            assert status_of(reply) == 200, f"REGISTER not accepted: {reply[:200]}"
            # A MESSAGE from another socket, forwarded by the router to the phone's contact.
            send_udp(pw.port, request("MESSAGE", "sip:6001@127.0.0.1", "$LPORT", "msg1"), expect_reply=False)
            deadline = time.monotonic() + 5
            got = ""
            while time.monotonic() < deadline and not got.startswith("MESSAGE"):
                got = phone.recv(65535).decode(errors="replace")
            head = got.split("\r\n\r\n", 1)[0]
            assert got.startswith("MESSAGE"), f"the phone got no MESSAGE: {got[:200]}"
            assert "\r\nX-Hello: out-of-tree" in head, f"no X-Hello header from the module:\n{head}"
            print("ok: the installed daemon forwarded through the out-of-tree module (X-Hello: out-of-tree)")
        finally:
            phone.close()
        rc = pw.stop()
        assert rc == 0, f"parkway exited with {rc} on SIGTERM"
        check_notify(sock, "STOPPING=1")
    sock.close()


check_module_folder()
check_config_loads(MODULE)
if PC_MODULE:
    check_config_loads(PC_MODULE)
check_module_runs()
print("PASS")
