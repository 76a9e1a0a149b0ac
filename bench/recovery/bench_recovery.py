#!/usr/bin/env python3
"""Recovery of a large parked set after kill -9 (not a test; prints figures).

    bench_recovery.py <parkway binary> [--calls 10000] [--watchers 2000] [--rate 500]

1. Parks N calls through the real daemon with SIPp (bench_hold.xml: the parked parties stay up and answer
   re-INVITEs), one extension each, and adds W dialog subscriptions (RFC 4235 BLF) to the first W parked
   extensions from one Python UDP socket, each answered 200 with its initial NOTIFY.
2. kill -9 of the daemon, then it is started again (same config and database) while a thread sends OPTIONS in a
   tight loop. Prints: exec -> first SIP request answered; exec -> the daemon's "restore complete" log line (every
   call restored, recall timers armed, music streams added); exec -> the last watcher's NOTIFY carrying the next
   version (kernel receive time); music streams and parked calls from GET /api/stats; os.getloadavg().
Goals (issue 13): first answer < 1 s, everything restored < 3 s.
"""
import argparse
import os
import re
import socket
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tests", "lib"))
sys.path.insert(0, os.path.join(HERE, "..", "callpark"))
from bench_callpark import Farm, subscribe_all  # noqa: E402
from parkway_blackbox import Parkway, Sipp, scratch_dir  # noqa: E402

DOMAIN = "pbx.example.com"
FIRST_EXT = 100000
STORAGE_THREAD = "auto"  # --storage-thread


def load():
    return "load average %.1f %.1f %.1f" % os.getloadavg()


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def daemon(binary, workdir, calls, watchers, prelatch_ms):
    # A music port per parked call, with room to spare; below the usual ephemeral range.
    moh = 20000
    provision = os.path.join(workdir, "provision.toml")
    with open(provision, "w") as f:
        # No cap on parked calls; recalls far away (they are re-armed, not fired, during the benchmark).
        f.write(f'[[domain]]\nname = "{DOMAIN}"\nmax_parked = 0\nrecall_time = 3600\nmax_park_time = 7200\n')
    return Parkway(binary, modules=["registrar", "callpark", "router"], workdir=workdir, log_level="info",
                   admin=True, ready_timeout=60,
                   proxy={"domains": [DOMAIN, "127.0.0.1"], "trusted_peers": ["127.0.0.1"]},
                   module_params={"callpark": {"database": os.path.join(workdir, "park.db"), "moh_ip": "127.0.0.1",
                                               "moh_port_min": moh, "moh_port_max": moh + 2 * calls + 2000,
                                               "moh_prelatch_ms": prelatch_ms, "park_info": False,
                                               "max_watchers": watchers + 1000,
                                               "max_watchers_per_domain": watchers + 1000,
                                               "provision_file": provision, "storage_thread": STORAGE_THREAD}})


class Watchers(Farm):
    """W dialog subscriptions (one per parked extension) from one UDP socket (bench_callpark's Farm); answers every
    NOTIFY 200 and records (kernel receive time, version) per subscription."""

    def __init__(self, pw_port, n):
        super().__init__(pw_port, n, watch=lambda i: f"*88{FIRST_EXT + i}", expires=1800, rcvbuf=16 << 20)

    def last_versions(self):
        with self.lock:
            return {i: max(v for _, v, _ in lst) for i, lst in self.notifies.items()}

    def after(self, t0, versions):
        """Per subscription: kernel time of the first NOTIFY after t0 with a version above versions[i]."""
        out = {}
        with self.lock:
            for i, lst in self.notifies.items():
                times = [t for t, v, _ in lst if t >= t0 and v > versions.get(i, -1)]
                if times:
                    out[i] = min(times)
        return out


class Pinger:
    """OPTIONS sip:127.0.0.1 every 2 ms from one socket until the first answer; records its time."""

    def __init__(self, port):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.002)
        self.port = port
        self.answered = None
        self.status = None
        self.thread = threading.Thread(target=self.loop, daemon=True)

    def loop(self):
        me = self.sock.getsockname()[1]
        n = 0
        deadline = time.time() + 60
        while self.answered is None and time.time() < deadline:
            n += 1
            msg = (f"OPTIONS sip:127.0.0.1:{self.port} SIP/2.0\r\n"
                   f"Via: SIP/2.0/UDP 127.0.0.1:{me};branch=z9hG4bK-ping{n};rport\r\nMax-Forwards: 70\r\n"
                   f"From: <sip:ping@127.0.0.1>;tag=p{n}\r\nTo: <sip:127.0.0.1>\r\nCall-ID: ping-{n}@127.0.0.1\r\n"
                   f"CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n")
            try:
                self.sock.sendto(msg.encode(), ("127.0.0.1", self.port))
                data = self.sock.recv(65535)
            except (socket.timeout, ConnectionRefusedError):
                continue
            if data.startswith(b"SIP/2.0 "):
                self.answered = time.time()
                self.status = data[8:11].decode()
        self.sock.close()


def park_all(pw, n, rate, work, media_dir):
    csv = os.path.join(work, "exts.csv")
    with open(csv, "w") as f:
        f.write("SEQUENTIAL\n")
        for i in range(n):
            f.write(f"{FIRST_EXT + i};\n")
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind(("127.0.0.1", 0))
    keys = ["-key", "domain", DOMAIN, "-inf", csv, "-key", "moh_port", str(sink.getsockname()[1]),
            "-key", "media_dir", media_dir]
    sipp = Sipp(os.path.join(HERE, "bench_hold.xml"), remote=pw.sip, calls=n, rate=rate, limit=n + 10,
                timeout=n / rate + 900, extra=keys)
    sipp.start()
    t0 = time.monotonic()
    while time.monotonic() - t0 < n / rate + 120:
        log = pw._log_since_start()  # (the admin API lists every call: too heavy to poll while filling)
        parked = log.count("callpark: parked sip:") - log.count("callpark: parked party of call")
        if parked >= n or sipp.proc.poll() is not None:
            break
        time.sleep(0.5)
    print(f"  parked {parked}/{n} calls in {time.monotonic() - t0:.1f} s ({load()})")
    return sipp, sink, parked


def subscribe_watchers(pw, w):
    farm = Watchers(pw.port, w)
    have = subscribe_all(farm, w)
    print(f"  {have}/{w} subscriptions active (initial NOTIFY received)")
    return farm


def restore_line(pw):
    """Wall time at which the daemon logged that the restore is complete (polled), with the line."""
    log = pw._log_since_start()
    m = re.search(r"^.*callpark: restore complete.*$", log, re.M)
    if m:
        return m.group(0)
    return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("binary")
    ap.add_argument("--calls", type=int, default=10000)
    ap.add_argument("--storage-thread", choices=["auto", "on", "off"], default="auto",
                    help="call park's storage_thread (docs/callpark.md); auto is the default")
    ap.add_argument("--watchers", type=int, default=2000)
    ap.add_argument("--rate", type=int, default=300, help="parks per second while filling")
    ap.add_argument("--quiet-media", action="store_true",
                    help="the parked parties offer a=inactive: every music stream (its socket) is set up and restored "
                         "but sends nothing, which isolates the restore from the music sender's own load (10,000 "
                         "streams = 500,000 packets/s)")
    a = ap.parse_args()
    global STORAGE_THREAD
    STORAGE_THREAD = a.storage_thread
    binary = os.path.abspath(a.binary)
    work = scratch_dir("parkway-bench-recovery-")
    n, w = a.calls, min(a.watchers, a.calls)
    print(f"recovery of {n} parked calls with {w} BLF subscriptions after kill -9, music "
          f"{'set up, not sending (--quiet-media)' if a.quiet_media else 'sending'} ({load()}):")
    media_dir = "inactive" if a.quiet_media else "sendrecv"
    # Music flows to every parked party (its SDP names the host it signals from: no pre-latch bound) unless
    # --quiet-media.
    pw = daemon(binary, work, n, w, 5000)
    sipp = farm = sink = None
    try:
        sipp, sink, parked = park_all(pw, n, a.rate, work, media_dir)
        farm = subscribe_watchers(pw, w)
        versions = farm.last_versions()
        time.sleep(1)  # the stored NOTIFY versions are written in batches
        pw.kill9()
        pinger = Pinger(pw.port)
        pinger.thread.start()
        t_exec = time.time()
        pw.start()
        t_ready = time.time()
        pinger.thread.join(10)
        line = None
        deadline = time.time() + 120
        while time.time() < deadline:
            line = restore_line(pw)
            if line:
                break
            time.sleep(0.005)
        t_restored = time.time() if line else None
        while time.time() < deadline:
            if len(farm.after(t_exec, versions)) >= len(versions):
                break
            time.sleep(0.01)
        got = farm.after(t_exec, versions)
        cpu = cpu_seconds(pw.proc.pid)
        st, j = pw.admin("GET", "/api/stats")
        cp = j["modules"]["callpark"] if st == 200 else {}
        first = (pinger.answered - t_exec) if pinger.answered else None
        print(f"  exec -> 'ready' log line: {t_ready - t_exec:.3f} s")
        print(f"  exec -> first SIP request answered (OPTIONS, {pinger.status}): "
              + (f"{first:.3f} s" if first is not None else "never") + " (goal < 1 s)")
        print(f"  exec -> restore complete (calls, recall timers, music): "
              + (f"{t_restored - t_exec:.3f} s" if t_restored else "not seen") + f"  [{line or ''}]")
        last = max(got.values()) - t_exec if got else None
        print(f"  exec -> last watcher NOTIFY with the next version: {len(got)}/{len(versions)} watchers, "
              + (f"{last:.3f} s" if last is not None else "none"))
        done = max(x for x in (t_restored and t_restored - t_exec, last) if x is not None) if (t_restored or last) \
            else None
        print(f"  after restart: parked {cp.get('parked')} (of {parked}), music streams {cp.get('moh_streams')}, "
              f"subscriptions {cp.get('subscriptions')}; parkway CPU since exec {cpu:.2f} s ({load()})")
        ok = done is not None and len(got) == len(versions) and cp.get("parked") == parked
        print(f"=> first answer {first if first is None else round(first, 3)} s (goal < 1 s), everything restored "
              f"{done if done is None else round(done, 3)} s (goal < 3 s){'' if ok else ' INCOMPLETE'}")
    finally:
        if farm:
            farm.close()
        if sipp:
            sipp.proc.kill()
            sipp.proc.wait()
        if sink:
            sink.close()
        pw.close()


if __name__ == "__main__":
    main()
