#!/usr/bin/env python3
"""Music on hold at scale (not a test; prints figures).

    bench/moh/bench_moh.py <parkway binary> [--calls 10000] [--streams-per-port 16] [--baseline | --no-baseline]
                           [--window 10] [--sockets 8] [--no-floor]

Parks N calls through the real daemon with real SIP (a Python UDP client: INVITE *68<slot> with an SDP offer,
200, ACK), each SDP naming one of the receiver's sockets (bench_moh_receiver, built beside the parkway binary:
recvmmsg, kernel receive timestamps, streams told apart by SSRC). Once all N streams play it measures, over a
steady window: per-stream inter-packet jitter |gap - 20 ms| (p50/p99/max), packets/s, loss, the daemon's CPU as %
of one core (utime+stime from /proc/PID/stat over the window, minus its idle baseline measured before the first
park) and the receiver's own CPU (it shares the machine), with os.getloadavg().
Goal: 10,000 parked calls with music at <= 50 % of one core and p99 jitter <= 5 ms.

Then the kernel floor: bench_moh_floor (built beside the receiver) sends the same packets for the same number of
streams, K per socket, with nothing but sendmmsg, measured the same way (--no-floor skips it); its CPU per packet
is what the kernel's UDP path costs here, the least any sender through sockets pays.

The run is repeated with moh_streams_per_port = 1 (one socket per call, the design before shared ports) when
the open-file limit allows (--baseline, the default if it fits; --no-baseline to skip) and prints the CPU ratio.
"""
import argparse
import math
import os
import random
import re
import resource
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tests", "lib"))
from parkway_blackbox import Parkway, scratch_dir  # noqa: E402

DOMAIN = "pbx.example.com"
SLOT0 = 100000


def cpu_seconds(pid):
    """utime + stime of a process, in seconds (/proc/<pid>/stat fields 14 and 15)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_percent(pid, secs):
    c0, t0 = cpu_seconds(pid), time.monotonic()
    time.sleep(secs)
    return 100.0 * (cpu_seconds(pid) - c0) / (time.monotonic() - t0)


def free_even_range(count):
    """`count` consecutive even ports (and the odd ones between) free on 127.0.0.1 now: the first such range from a
    random start, skipping past any port in use."""
    base = random.randrange(10000, 20000) & ~1
    while base + 2 * count < 65535:
        held, busy = [], None
        for p in range(base, base + 2 * count, 2):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            held.append(s)
            try:
                s.bind(("127.0.0.1", p))
            except OSError:
                busy = p
                break
        for s in held:
            s.close()
        if busy is None:
            return base
        base = busy + 2
    raise RuntimeError(f"no {count} free even UDP ports")


class Receiver:
    def __init__(self, binary, sockets):
        self.proc = subprocess.Popen([binary, "--sockets", str(sockets)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, bufsize=1)
        self.ports = [int(p) for p in self.proc.stdout.readline().split()[1:]]

    def ask(self, cmd):
        self.proc.stdin.write(cmd + "\n")
        self.proc.stdin.flush()
        return self.proc.stdout.readline().strip()

    def streams(self):
        return int(self.ask("count").split()[1])

    def measure(self, secs):
        f = self.ask(f"measure {secs}").split()[1:]
        return {f[i]: float(f[i + 1]) for i in range(0, len(f), 2)}

    def close(self):
        try:
            self.ask("quit")
        except (BrokenPipeError, OSError):
            pass
        self.proc.wait(10)


def park_all(pw_port, n, media_ports, window=200, timeout=120):
    """Park n calls (INVITE/200/ACK, `window` outstanding); returns how many got a 200."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    s.bind(("127.0.0.1", 0))
    me = s.getsockname()[1]
    target = ("127.0.0.1", pw_port)
    s.settimeout(0.05)
    pending, sent_at, done, failed, nxt = set(), {}, set(), 0, 0
    deadline = time.monotonic() + timeout

    def invite(i):
        mp = media_ports[i % len(media_ports)]
        sdp = (f"v=0\r\no=- {i} 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
               f"m=audio {mp} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n")
        msg = (f"INVITE sip:*68{SLOT0 + i}@{DOMAIN} SIP/2.0\r\n"
               f"Via: SIP/2.0/UDP 127.0.0.1:{me};branch=z9hG4bK-m{i};rport\r\nMax-Forwards: 70\r\n"
               f"From: <sip:p{i}@{DOMAIN}>;tag=f{i}\r\nTo: <sip:*68{SLOT0 + i}@{DOMAIN}>\r\n"
               f"Call-ID: moh-bench-{i}@127.0.0.1\r\nCSeq: 1 INVITE\r\nContact: <sip:p{i}@127.0.0.1:{me}>\r\n"
               f"Content-Type: application/sdp\r\nContent-Length: {len(sdp)}\r\n\r\n{sdp}")
        s.sendto(msg.encode(), target)
        sent_at[i] = time.monotonic()

    while (nxt < n or pending) and time.monotonic() < deadline:
        while nxt < n and len(pending) < window:
            invite(nxt)
            pending.add(nxt)
            nxt += 1
        try:
            data, _ = s.recvfrom(65535)
        except socket.timeout:
            now = time.monotonic()
            for i in [i for i in pending if now - sent_at[i] > 2.0]:
                invite(i)  # retransmit (RFC 3261 §17.1.1.2, coarsely)
            continue
        text = data.decode(errors="replace")
        m = re.search(r"^Call-ID:\s*moh-bench-(\d+)@", text, re.M | re.I)
        if not m:
            continue
        i = int(m.group(1))
        if text.startswith("SIP/2.0 200"):
            to = re.search(r"^To:[^\r\n]*", text, re.M).group(0)
            contact = re.search(r"^Contact:\s*<([^>]+)>", text, re.M).group(1)
            ack = (f"ACK {contact} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{me};branch=z9hG4bK-a{i};rport\r\n"
                   f"Max-Forwards: 70\r\nFrom: <sip:p{i}@{DOMAIN}>;tag=f{i}\r\n{to}\r\n"
                   f"Call-ID: moh-bench-{i}@127.0.0.1\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n")
            s.sendto(ack.encode(), target)  # also for a retransmitted 200
            if i in pending:
                pending.discard(i)
                done.add(i)
        elif re.match(r"SIP/2.0 [3-6]", text) and i in pending:
            pending.discard(i)
            failed += 1
            if failed <= 3:
                print("  park refused:", text.split("\r\n", 1)[0], file=sys.stderr)
    return s, len(done)


def run(binary, receiver_bin, calls, per_port, window, sockets):
    work = scratch_dir("parkway-bench-moh-")
    ports = math.ceil(calls / per_port)  # calls from one source spread over the range first: K per port at N
    base = free_even_range(ports)
    provision = os.path.join(work, "provision.toml")
    with open(provision, "w") as f:
        f.write(f'[[domain]]\nname = "{DOMAIN}"\nmax_parked = 0\n')
    rx = Receiver(receiver_bin, sockets)
    pw = Parkway(binary, modules=["registrar", "callpark", "router"], workdir=work, log_level="warn",
                 proxy={"domains": [DOMAIN, "127.0.0.1"], "trusted_peers": ["127.0.0.1"]},
                 module_params={"callpark": {"database": os.path.join(work, "park.db"), "moh_ip": "127.0.0.1",
                                             "moh_port_min": base, "moh_port_max": base + 2 * (ports - 1),
                                             "moh_streams_per_port": per_port, "park_info": False,
                                             # no recall while the bench runs (nobody would answer it)
                                             "recall_time": "1h",
                                             "provision_file": provision}})
    sip = None
    try:
        idle = cpu_percent(pw.proc.pid, 2.0)
        t0 = time.monotonic()
        sip, parked = park_all(pw.port, calls, rx.ports)
        park_secs = time.monotonic() - t0
        deadline = time.monotonic() + 30
        while rx.streams() < parked and time.monotonic() < deadline:
            time.sleep(0.5)
        time.sleep(2.0)  # settle: every stream past its first packets
        c0, w0 = cpu_seconds(pw.proc.pid), time.monotonic()
        r = rx.measure(window)
        cpu = 100.0 * (cpu_seconds(pw.proc.pid) - c0) / (time.monotonic() - w0) - idle
        fds = len(os.listdir(f"/proc/{pw.proc.pid}/fd"))
        la = os.getloadavg()
        print(f"  moh streams_per_port {per_port:3d}: {parked}/{calls} parked in {park_secs:.1f} s, "
              f"{int(r['streams'])} streams heard; jitter p50 {r['jitter_p50_ms']:.2f} ms p99 "
              f"{r['jitter_p99_ms']:.2f} ms max {r['jitter_max_ms']:.1f} ms{'+' if r['jitter_max_ms'] >= 1000 else ''}; {r['packets_per_s']:.0f} packets/s "
              f"(expected {50 * parked}); loss {r['loss_pct']:.3f} %; parkway CPU {cpu:.1f} % of one core "
              f"(idle {idle:.1f} % subtracted) = {10000 * cpu / max(r['packets_per_s'], 1):.2f} us per packet, "
              f"{fds} descriptors; receiver CPU {r['receiver_cpu_pct']:.1f} %; "
              f"load average {la[0]:.1f} {la[1]:.1f} {la[2]:.1f}")
        return cpu, r, 10000 * cpu / max(r["packets_per_s"], 1)
    finally:
        pw.stop(20)
        rx.close()
        if sip:
            sip.close()


def floor(floor_bin, receiver_bin, calls, per_port, window, sockets):
    """The same packets from bench_moh_floor (sendmmsg only: no SIP, no player), measured as the daemon is. Returns
    its CPU in us per packet: what the kernel's UDP path costs on this machine, the floor of any socket sender."""
    rx = Receiver(receiver_bin, sockets)
    tx = subprocess.Popen([floor_bin, "--streams", str(calls), "--per-port", str(per_port), "--to",
                           ",".join(map(str, rx.ports))], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        tx.stdout.readline()  # "sockets N": bound, sending
        deadline = time.monotonic() + 30
        while rx.streams() < calls and time.monotonic() < deadline:
            time.sleep(0.5)
        time.sleep(2.0)
        c0, w0 = cpu_seconds(tx.pid), time.monotonic()
        r = rx.measure(window)
        cpu = 100.0 * (cpu_seconds(tx.pid) - c0) / (time.monotonic() - w0)
        us = 10000 * cpu / max(r["packets_per_s"], 1)
        la = os.getloadavg()
        print(f"  kernel floor (bench_moh_floor: the same {calls} streams, {per_port} per socket, sendmmsg only): "
              f"{r['packets_per_s']:.0f} packets/s (expected {50 * calls}); jitter p99 {r['jitter_p99_ms']:.2f} ms; "
              f"sender CPU {cpu:.1f} % of one core = {us:.2f} us per packet; receiver CPU "
              f"{r['receiver_cpu_pct']:.1f} %; load average {la[0]:.1f} {la[1]:.1f} {la[2]:.1f}")
        return us
    finally:
        tx.stdin.close()
        tx.wait(10)
        rx.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("binary")
    ap.add_argument("--calls", type=int, default=10000)
    ap.add_argument("--streams-per-port", type=int, default=16)
    ap.add_argument("--window", type=float, default=10.0, help="measuring window, seconds")
    ap.add_argument("--sockets", type=int, default=8, help="receiver sockets")
    ap.add_argument("--baseline", dest="baseline", action="store_true", default=None,
                    help="also run with moh_streams_per_port 1 (default: when the open-file limit allows)")
    ap.add_argument("--no-baseline", dest="baseline", action="store_false")
    ap.add_argument("--no-floor", action="store_true", help="skip the kernel floor (bench_moh_floor)")
    a = ap.parse_args()
    a.binary = os.path.abspath(a.binary)
    receiver_bin = os.path.join(os.path.dirname(os.path.abspath(a.binary)), "bench_moh_receiver")
    if not os.path.exists(receiver_bin):
        sys.exit(f"{receiver_bin} not found: build the bench_moh_receiver target")
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    baseline = a.baseline
    fits = (hard == resource.RLIM_INFINITY or hard > a.calls + 1024) and a.calls <= 25000
    if baseline is None:
        baseline = fits
    print(f"music on hold: {a.calls} parked calls, {a.window:.0f} s window, {os.cpu_count()} CPUs "
          f"(load average {os.getloadavg()[0]:.1f})")
    cpu, r, us = run(a.binary, receiver_bin, a.calls, a.streams_per_port, a.window, a.sockets)
    ok = cpu <= 50.0 and r["jitter_p99_ms"] <= 5.0 and r["packets_per_s"] >= 0.99 * 50 * a.calls
    print(f"  goal (all {a.calls} playing, <= 50 % of one core, p99 jitter <= 5 ms): {'met' if ok else 'NOT met'}")
    floor_bin = os.path.join(os.path.dirname(receiver_bin), "bench_moh_floor")
    if not a.no_floor and os.path.exists(floor_bin):
        fl = floor(floor_bin, receiver_bin, a.calls, a.streams_per_port, a.window, a.sockets)
        goal_us = 1e6 * 0.5 / (50 * a.calls)
        print(f"  parkway per packet / kernel floor = {us:.2f} / {fl:.2f} us = {us / max(fl, 0.01):.2f}x; the goal's "
              f"50 % of one core for {a.calls} streams is {goal_us:.2f} us per packet"
              + (": below what the bare sender alone pays on this machine" if fl > goal_us else ""))
    elif not a.no_floor:
        print(f"  (no kernel floor: {floor_bin} not built)")
    if baseline and a.streams_per_port != 1:
        n = a.calls
        while True:  # one socket per call needs n consecutive free even ports: fewer calls when they are not free
            try:
                cpu1, r1, us1 = run(a.binary, receiver_bin, n, 1, a.window, a.sockets)
                break
            except RuntimeError as e:
                if n <= 500 or "free even UDP ports" not in str(e):
                    raise
                n //= 2
                print(f"  ({e}: baseline with {n} calls)")
        print(f"  ratio: parkway CPU per packet, one port per call ({n} calls) / shared ports ({a.calls} calls) = "
              f"{us1:.2f} / {us:.2f} us = {us1 / max(us, 0.01):.2f}x; p99 jitter {r1['jitter_p99_ms']:.2f} -> "
              f"{r['jitter_p99_ms']:.2f} ms (load average {os.getloadavg()[0]:.1f})")
    elif baseline is False and not fits:
        print(f"  (no streams_per_port 1 baseline: the open-file hard limit {hard} is below {a.calls} sockets)")


if __name__ == "__main__":
    main()
