#!/usr/bin/env python3
"""Call-park end-to-end benchmark (not a test; prints figures).

    bench_callpark.py <parkway binary> [--rates 200,500,800] [--cycles 5000] [--subscribers 1000] [--pin]

1. Park + retrieve cycles per second through the real daemon with SIPp: parked parties dial *68<ext> at rate R
   (bench_park.xml, one extension per call from a CSV), retrievers dial *88<ext> at the same rate one second
   behind (bench_retrieve.xml: 200, ACK, BYE at once). A cycle = park INVITE/200/ACK, the bridge re-INVITE,
   the retriever's INVITE/200/ACK and the BYEs. Goal (issue 13): >= 1,500 cycles/s with < 0.1 % failed, <= 0.5 ms
   of daemon CPU per cycle at 500/s. Also prints the
   daemon's CPU time per cycle (load-independent: 1000 / that = cycles/s one core could carry), by thread, and the
   load generator's (both SIPp) with how many cycles/s the machine's CPUs could carry at those costs.
2. NOTIFY fan-out: 1,000 dialog subscriptions to one slot (*88103) from a Python UDP socket, then one park on 103;
   prints the time from sending the park INVITE to the kernel receive time of the last subscriber's NOTIFY
   (SO_TIMESTAMPNS). Goal: < 100 ms.
"""
import argparse
import os
import random
import re
import resource
import socket
import struct
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tests", "lib"))
from parkway_blackbox import Parkway, Sipp, scratch_dir  # noqa: E402

DOMAIN = "pbx.example.com"
# callpark's storage_thread (docs/callpark.md): "auto" (the default: on) unless --storage-thread says
STORAGE_THREAD = "auto"
# --pin: (the daemon's CPUs, everyone else's). The daemon starts on the first set; this script, and so every SIPp it
# starts afterwards, runs on the second: the load generator no longer takes CPU from the daemon it measures.
PIN = None
LAG = 1.0  # retrievers start this long after the parkers, so every retrieve finds its park committed


def moh_base(span):
    """An even first music-on-hold port with `span` ports above it, below the kernel's ephemeral range: SIPp's
    ports and every other free_port() come from that range, and a music port taking one of them made runs fail
    (a SIPp that could not bind ended at once while its parked calls played on)."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            low = int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    top = low - span - 2
    return random.randrange(10000, top, 2) if top > 10002 else 10000


def pin_split():
    """(daemon CPUs, load CPUs) for --pin: the first CPU this process may use for the daemon, the others for the load;
    None with fewer than two."""
    cpus = sorted(os.sched_getaffinity(0))
    return ({cpus[0]}, set(cpus[1:])) if len(cpus) >= 2 else None


def start_pinned(make):
    """make() starts a daemon; with PIN set, on PIN[0], and what this script starts after it on PIN[1]."""
    if PIN:
        os.sched_setaffinity(0, PIN[0])
    try:
        return make()
    finally:
        if PIN:
            os.sched_setaffinity(0, PIN[1])


def daemon(binary, workdir, callpark=None):
    moh = moh_base(4000)
    # Hundreds of calls are parked at once here: no cap on the domain (the default, 200, suits an office).
    provision = os.path.join(workdir, "provision.toml")
    with open(provision, "w") as f:
        f.write(f'[[domain]]\nname = "{DOMAIN}"\nmax_parked = 0\n')
    return start_pinned(lambda: Parkway(
        binary, modules=["registrar", "callpark", "router"], workdir=workdir, log_level="warn",
        # all load comes from 127.0.0.1: trusted, or the per-source rate limit would ban it
        proxy={"domains": [DOMAIN, "127.0.0.1"], "trusted_peers": ["127.0.0.1"]},
        module_params={"callpark": {"database": os.path.join(workdir, "park.db"), "moh_ip": "127.0.0.1",
                                    "moh_port_min": moh, "moh_port_max": moh + 4000, "park_info": False,
                                    "provision_file": provision, "storage_thread": STORAGE_THREAD,
                                    **(callpark or {})}}))


# --------------------------------------------------------------------------------------------- cycles/s

def cpu_seconds(pid):
    """utime + stime of a process, in seconds (/proc/<pid>/stat fields 14 and 15)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def thread_cpu_seconds(pid):
    """CPU seconds per thread of a process: {tid: seconds} (/proc/<pid>/task/<tid>/stat)."""
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:  # the thread ended meanwhile
            continue
        out[int(tid)] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return out


def cpu_split(pid, before, after, ok):
    """The figure line splitting the daemon's CPU per cycle: the SIP thread (the main thread, whose tid is the
    pid: SIP parsing, the park logic, SQLite commits) and every other thread (music on hold sender, admin)."""
    used = {tid: after[tid] - before.get(tid, 0.0) for tid in after}
    sip = used.get(pid, 0.0)
    other = sum(v for tid, v in used.items() if tid != pid)
    n = max(ok, 1)
    return (f"    CPU per cycle by thread: SIP thread {1000 * sip / n:.3f} ms, other threads (music on hold, admin) "
            f"{1000 * other / n:.3f} ms (load average {os.getloadavg()[0]:.1f})")


def children_cpu_seconds():
    """utime + stime of this script's reaped children (the SIPp runs once wait() returned)."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def box_budget(daemon_cpu, load_cpu, ok):
    """The figure line for the load generator's share: SIPp's CPU per cycle, and how many cycles/s this machine's
    CPUs could carry at most with the daemon and SIPp both on it at these costs (all CPUs busy, nothing else)."""
    n = max(ok, 1)
    both = 1000 * (daemon_cpu + load_cpu) / n
    cpus = len(os.sched_getaffinity(0) | (PIN[0] if PIN else set()))
    return (f"    load generator (both SIPp) CPU {1000 * load_cpu / n:.3f} ms per cycle; daemon + SIPp {both:.3f} ms: "
            f"{cpus} CPUs carry at most {1000 * cpus / max(both, 1e-9):.0f} cycles/s at these costs")


def cycles(binary, rate, count):
    work = scratch_dir("parkway-bench-")
    csv = os.path.join(work, "exts.csv")
    with open(csv, "w") as f:
        f.write("SEQUENTIAL\n")
        for i in range(count):
            f.write(f"{100000 + i};\n")
    with daemon(binary, work) as pw:
        # Music on hold goes to an open socket nobody reads (a phone's RTP port): the kernel drops what
        # overflows, as it would for a real phone; an unbound port would add an ICMP error per packet.
        sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sink.bind(("127.0.0.1", 0))
        keys = ["-key", "domain", DOMAIN, "-inf", csv, "-key", "moh_port", str(sink.getsockname()[1])]
        limit = max(100, rate * 4)
        parkers = Sipp(os.path.join(HERE, "bench_park.xml"), remote=pw.sip, calls=count, rate=rate, limit=limit,
                       timeout=count / rate + 60, extra=keys)
        cpu0 = cpu_seconds(pw.proc.pid)
        threads0 = thread_cpu_seconds(pw.proc.pid)
        load0 = children_cpu_seconds()
        t0 = time.monotonic()
        parkers.start()
        time.sleep(LAG)
        # made now, not with the parkers: a free port picked a second earlier was taken by the time SIPp bound it
        # in some runs ("Unable to bind main socket": no retrieve ran, and the whole run counted as failed)
        retrievers = Sipp(os.path.join(HERE, "bench_retrieve.xml"), remote=pw.sip, calls=count, rate=rate,
                          limit=limit, timeout=count / rate + 60, extra=keys)
        retrievers.start()
        r = retrievers.wait()
        t1 = time.monotonic()
        p = parkers.wait()
        cpu = cpu_seconds(pw.proc.pid) - cpu0
        threads1 = thread_cpu_seconds(pw.proc.pid)
        load = children_cpu_seconds() - load0  # the two SIPp, reaped by wait(); the daemon is not reaped yet
        sink.close()
        for who, res in (("parkers", p), ("retrievers", r)):
            if "Unable to bind" in res.errors:
                print(f"  WARNING: the {who}' SIPp could not bind its port: this run's figures are not the daemon's")
        if os.environ.get("BENCH_VERBOSE"):
            print(r.errors[-2000:], p.errors[-2000:])
        ok = min(r.successful, p.successful)
        failed = r.failed + p.failed
        elapsed = t1 - t0 - LAG
        print(f"  target {rate:5d}/s: {count} cycles, parks ok {p.successful} failed {p.failed}, retrieves ok "
              f"{r.successful} failed {r.failed}; {ok / elapsed:7.1f} cycles/s over {elapsed:.1f} s; parkway CPU "
              f"{cpu:.2f} s = {1000 * cpu / max(ok, 1):.2f} ms per cycle (load average {os.getloadavg()[0]:.1f})")
        print(cpu_split(pw.proc.pid, threads0, threads1, ok))
        print(box_budget(cpu, load, ok))
        return ok / elapsed, failed, count


# --------------------------------------------------------------------------------------------- NOTIFY fan-out

SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)


class Farm:
    """N dialog subscriptions from one UDP socket; answers every NOTIFY and records its kernel receive time.
    `watch` is what every subscription watches, or a function of the subscription's index (one slot each)."""

    def __init__(self, pw_port, n, watch="*88103", expires=600, rcvbuf=8 << 20):
        self.n = n
        self.target = ("127.0.0.1", pw_port)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.sock.settimeout(0.2)
        self.watch = watch if callable(watch) else (lambda i: watch)
        self.expires = expires
        self.ok = set()                       # subscriptions answered 2xx
        self.notifies = {}                    # sub index -> list of (kernel time, version, has dialog)
        self.lock = threading.Lock()
        self.stop = False
        self.thread = threading.Thread(target=self.loop, daemon=True)
        self.thread.start()

    def subscribe(self, i):
        watch = self.watch(i)
        msg = (f"SUBSCRIBE sip:{watch}@{DOMAIN} SIP/2.0\r\n"
               f"Via: SIP/2.0/UDP 127.0.0.1:{self.port};branch=z9hG4bK-s{i}-{random.randint(0, 1 << 30)};rport\r\n"
               f"Max-Forwards: 70\r\nFrom: <sip:w{i}@{DOMAIN}>;tag=ft{i}\r\nTo: <sip:{watch}@{DOMAIN}>\r\n"
               f"Call-ID: bench-sub-{i}@127.0.0.1\r\nCSeq: 1 SUBSCRIBE\r\n"
               f"Contact: <sip:w{i}@127.0.0.1:{self.port}>\r\nEvent: dialog\r\n"
               f"Accept: application/dialog-info+xml\r\nExpires: {self.expires}\r\nContent-Length: 0\r\n\r\n")
        self.sock.sendto(msg.encode(), self.target)

    def loop(self):
        while not self.stop:
            try:
                data, anc, _, _ = self.sock.recvmsg(65535, socket.CMSG_SPACE(16))
            except socket.timeout:
                continue
            except OSError:
                return
            kt = None
            for level, typ, cdata in anc:
                if level == socket.SOL_SOCKET and typ == SO_TIMESTAMPNS:
                    sec, nsec = struct.unpack("qq", cdata[:16])
                    kt = sec + nsec / 1e9
            if kt is None:
                kt = time.time()
            text = data.decode(errors="replace")
            head, _, body = text.partition("\r\n\r\n")
            m = re.search(r"^Call-ID:\s*bench-sub-(\d+)@", head, re.M | re.I)
            if text.startswith("SIP/2.0 "):
                if m and text[8] == "2":
                    with self.lock:
                        self.ok.add(int(m.group(1)))
                continue
            if not text.startswith("NOTIFY ") or not m:
                continue
            i = int(m.group(1))
            v = re.search(r'dialog-info[^>]* version="(\d+)"', body)
            with self.lock:
                self.notifies.setdefault(i, []).append((kt, int(v.group(1)) if v else -1, "<dialog " in body))
            # 200 OK: copy Via(s), From, To, Call-ID, CSeq
            lines = head.split("\r\n")
            keep = [ln for ln in lines[1:] if re.match(r"(Via|v|From|f|To|t|Call-ID|i|CSeq):", ln, re.I)]
            reply = "SIP/2.0 200 OK\r\n" + "\r\n".join(keep) + "\r\nContent-Length: 0\r\n\r\n"
            self.sock.sendto(reply.encode(), self.target)

    def close(self):
        self.stop = True
        self.thread.join(2)
        self.sock.close()


def subscribe_all(farm, n):
    """Subscribe 0..n-1, paced, then re-send what was lost (UDP) until every subscription has its initial NOTIFY
    (10 s at most). Returns how many have it."""
    for i in range(n):
        farm.subscribe(i)
        if i % 50 == 49:
            time.sleep(0.005)
    for _ in range(20):
        time.sleep(0.5)
        with farm.lock:
            missing = [i for i in range(n) if i not in farm.notifies]
        if not missing:
            break
        for i in missing:
            farm.subscribe(i)
    with farm.lock:
        return len(farm.notifies)


def park_once(pw_port, ext="103"):
    """Send INVITE *68<ext> from a raw socket; returns (wall time sent, wall time of the 200)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    sdp = ("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
           "m=audio 9 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n")
    inv = (f"INVITE sip:*68{ext}@{DOMAIN} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK-bpark;rport\r\n"
           f"Max-Forwards: 70\r\nFrom: <sip:2001@{DOMAIN}>;tag=bp1\r\nTo: <sip:*68{ext}@{DOMAIN}>\r\n"
           f"Call-ID: bench-park@127.0.0.1\r\nCSeq: 1 INVITE\r\nContact: <sip:2001@127.0.0.1:{port}>\r\n"
           f"Referred-By: <sip:1003@{DOMAIN}>\r\nContent-Type: application/sdp\r\nContent-Length: {len(sdp)}\r\n\r\n{sdp}")
    t_sent = time.time()
    s.sendto(inv.encode(), ("127.0.0.1", pw_port))
    s.settimeout(5)
    t_ok = None
    while True:
        data, _ = s.recvfrom(65535)
        text = data.decode(errors="replace")
        if text.startswith("SIP/2.0 1"):
            continue
        t_ok = time.time()
        break
    if text.startswith("SIP/2.0 200"):
        to = re.search(r"^To:.*$", text, re.M).group(0)
        contact = re.search(r"^Contact:\s*<([^>]+)>", text, re.M).group(1)
        ack = (f"ACK {contact} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK-back;rport\r\n"
               f"Max-Forwards: 70\r\nFrom: <sip:2001@{DOMAIN}>;tag=bp1\r\n{to}\r\nCall-ID: bench-park@127.0.0.1\r\n"
               f"CSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n")
        s.sendto(ack.encode(), ("127.0.0.1", pw_port))
    status = text.split(" ", 2)[1]
    return t_sent, t_ok, status, s


def fanout(binary, n):
    work = scratch_dir("parkway-bench-")
    # n subscriptions to one slot: lift the per-target and per-domain watcher caps (200 and 2,000 by default,
    # docs/callpark.md), or the subscriptions beyond them get 503 and the figure is for fewer subscribers.
    caps = {"max_watchers_per_target": n, "max_watchers_per_domain": max(2000, n), "max_watchers": max(10000, n)}
    with daemon(binary, work, caps) as pw:
        farm = Farm(pw.port, n)
        try:
            t0 = time.monotonic()
            have = subscribe_all(farm, n)
            print(f"  {have}/{n} subscriptions active (initial NOTIFY received) after {time.monotonic() - t0:.2f} s")
            if have < n:
                print(f"  WARNING: only {have} of {n} subscriptions are active; the figures below are for {have}")
            t_sent, t_ok, status, psock = park_once(pw.port)
            deadline = time.time() + 10
            while time.time() < deadline:
                with farm.lock:
                    done = sum(1 for v in farm.notifies.values() if any(d for _, _, d in v))
                if done >= have:
                    break
                time.sleep(0.01)
            with farm.lock:
                firsts = [min(t for t, _, d in v if d) for v in farm.notifies.values() if any(d for _, _, d in v)]
            psock.close()
            if not firsts:
                print(f"  park answered {status}; no subscriber got a NOTIFY showing the parked call")
                return None
            last = max(firsts) - t_sent
            first = min(firsts) - t_sent
            print(f"  park INVITE -> 200: {(t_ok - t_sent) * 1000:.1f} ms (status {status}); NOTIFYs with the parked "
                  f"call: {len(firsts)}/{have}, first after {first * 1000:.1f} ms, last after {last * 1000:.1f} ms")
            return last
        finally:
            farm.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("binary")
    ap.add_argument("--rates", default="200,500,800")
    ap.add_argument("--cycles", type=int, default=5000)
    ap.add_argument("--subscribers", type=int, default=1000)
    ap.add_argument("--skip-cycles", action="store_true")
    ap.add_argument("--skip-fanout", action="store_true")
    ap.add_argument("--storage-thread", choices=["auto", "on", "off"], default="auto",
                    help="callpark's storage_thread (auto = on)")
    ap.add_argument("--pin", action="store_true",
                    help="the daemon on the first CPU, SIPp and this script on the others (bench_overload.py --pin)")
    a = ap.parse_args()
    global STORAGE_THREAD, PIN
    STORAGE_THREAD = a.storage_thread
    if a.pin:
        PIN = pin_split()
        if not PIN:
            sys.exit("--pin needs at least two CPUs")
        print(f"pinned: parkway on CPU {sorted(PIN[0])}, SIPp and this script on {sorted(PIN[1])}")
    binary = os.path.abspath(a.binary)
    if not a.skip_cycles:
        print("park + retrieve cycles (SIPp, end to end):")
        best = 0.0
        for rate in [int(x) for x in a.rates.split(",")]:
            got, failed, count = cycles(binary, rate, a.cycles)
            if failed <= count / 1000:
                best = max(best, got)
        print(f"=> best with < 0.1 % failed: {best:.1f} park+retrieve cycles/s (goal >= 1500, issue 13)")
    if not a.skip_fanout:
        print(f"NOTIFY fan-out to {a.subscribers} subscribers of one slot:")
        last = fanout(binary, a.subscribers)
        if last is not None:
            print(f"=> park to last NOTIFY: {last * 1000:.1f} ms (goal < 100 ms)")


if __name__ == "__main__":
    main()
