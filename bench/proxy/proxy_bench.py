#!/usr/bin/env python3
"""Proxy benchmark: SIPp caller -> proxy -> SIPp callee, parkway and Kamailio (Debian's kamailio, when installed)
at the same offered call rates in one run. The caller behaves like a phone: it learns the Record-Route set from
the 200 OK and sends the ACK and the BYE with it as Route headers (RFC 3261 §12.1.2, §12.2.1.1), so both proxies
see every in-dialog request. For each rate and each proxy it prints offered rate, calls ok/failed, failed %, the
proxy's CPU per call (all its processes and threads, from /proc), the ratios parkway/kamailio, and the load
average. Not a test: it prints figures.

    bench/proxy/proxy.sh [--duration 15] [--rates 300,600,1000] [--parkway build/bin/parkway] [--no-kamailio]
"""
import argparse
import contextlib
import glob
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "tests", "lib"))
from parkway_blackbox import Parkway, Sipp, free_port, options_ping, scenario  # noqa: E402

DEFAULT_RATES = [300, 600, 1000]
GOAL_CPU_RATIO = 0.5  # issue 13: parkway's CPU per call at most half of Kamailio's, at equal offered load
UAC = os.path.join(HERE, "uac.xml")  # the caller (examples/sipp/proxy/uac.xml, tolerant of a late 180)

TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid=None, pgrp=None):
    """CPU time (user+system, all threads) of one process, or of every process in a process group (Kamailio's
    workers): the proxy's cost per call, which contention on the machine does not change much."""
    total = 0.0
    for d in ([str(pid)] if pid else os.listdir("/proc")):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if pid or int(fields[2]) == pgrp:  # fields after "(comm)": state ppid pgrp ... utime(11) stime(12)
            total += (int(fields[11]) + int(fields[12])) / TICK
    return total


def load():
    return "load %.1f %.1f %.1f" % os.getloadavg()


class Target:
    """One proxy under test: its SIP address and how to read its CPU time."""

    def __init__(self, name, remote, cpu_fn):
        self.name, self.remote, self.cpu_fn = name, remote, cpu_fn


def run_rate(target, rate, duration):
    """One step: `rate` calls/s for `duration` s through `target`. Returns a dict of the figures."""
    calls = rate * duration
    cpu0 = target.cpu_fn()
    t0 = time.monotonic()
    res = Sipp(UAC, remote=target.remote, calls=calls, rate=rate, timeout=duration + 40,
               limit=max(50, rate * 3), variables={"callee": "2001"}).run()
    wall = time.monotonic() - t0
    cpu = target.cpu_fn() - cpu0
    ok = res.successful
    failed = calls - ok  # SIPp's failed calls and any call not finished when it stopped
    r = {"name": target.name, "rate": rate, "calls": calls, "ok": ok, "failed": failed,
         "failed_pct": 100.0 * failed / calls, "cpu_ms": 1e3 * cpu / max(1, ok), "wall": wall}
    print(f"  {target.name:8s} offered {rate:5d} calls/s: {ok}/{calls} ok, {failed} failed "
          f"({r['failed_pct']:.3f} %), {wall:.1f} s, CPU {cpu:.2f} s = {r['cpu_ms']:.3f} ms/call; {load()}",
          flush=True)
    if failed and res.errors.strip():
        print("    SIPp's first errors: " + " | ".join(res.errors.strip().splitlines()[:3])[:400], flush=True)
    return r


def register(remote, port):
    Sipp(scenario("register.xml"), remote=remote, calls=1, timeout=10,
         variables={"user": "2001", "cport": port, "expires": 3600}).run().check(successful=1)


def check_route_set(target):
    """One call with SIPp's message trace: the ACK and the BYE must carry the Route the 200 OK's Record-Route
    gave (the proxy's own address), else the benchmark would not measure the in-dialog path of a real phone."""
    tmp = tempfile.mkdtemp(prefix="parkway-bench-rr-")
    try:
        trace = os.path.join(tmp, "messages.log")
        Sipp(UAC, remote=target.remote, calls=1, timeout=15, variables={"callee": "2001"},
             extra=["-trace_msg", "-message_file", trace]).run().check(successful=1)
        sent = [m for m in open(trace).read().split("----------------------------------------------- ")
                if "message sent" in m]
        host = target.remote.split(":")[0]
        for method in ("ACK", "BYE"):
            msg = next((m for m in sent if f"\n{method} " in m or m.split("\n", 3)[-1].startswith(method)), "")
            routes = [ln for ln in msg.splitlines() if ln.lower().startswith("route:")]
            if not routes or host not in routes[0] or "lr" not in routes[0]:
                sys.exit(f"{target.name}: the caller's {method} has no Route to the proxy ({routes}): "
                         f"did the 200 OK carry Record-Route?")
        print(f"  {target.name}: ACK and BYE sent with {routes[0].strip()} (Record-Route set followed)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def callee_behind(remote):
    uas = Sipp(scenario("uas.xml"), calls=10**9, timeout=100000, extra=["-max_recv_loops", "100000"]).start()
    try:
        register(remote, uas.port)
        yield
    finally:
        uas.stop()


@contextlib.contextmanager
def parkway(binary):
    # All load comes from 127.0.0.1: trusted, so the per-source rate limit (docs/limits.md) does not ban it.
    with Parkway(binary, log_level="warn", proxy={"trusted_peers": ["127.0.0.1"]}) as pw:
        with callee_behind(pw.sip):
            yield Target("parkway", pw.sip, lambda: cpu_seconds(pid=pw.proc.pid))


def module_path():
    found = glob.glob("/usr/lib/*/kamailio/modules/") + ["/usr/lib/kamailio/modules/",
                                                         "/usr/local/lib64/kamailio/modules/"]
    return next((p for p in found if os.path.isdir(p)), "")


@contextlib.contextmanager
def kamailio(binary, children):
    work = tempfile.mkdtemp(prefix="parkway-bench-kam-")
    port = free_port()
    with open(os.path.join(HERE, "kamailio.cfg")) as f:
        cfg = (f.read().replace("@PORT@", str(port)).replace("@CHILDREN@", str(children))
               .replace("@MPATH@", module_path()).replace("@DEBUG@", os.environ.get("KAMAILIO_DEBUG", "1")))
    cfg_path = os.path.join(work, "kamailio.cfg")
    with open(cfg_path, "w") as f:
        f.write(cfg)
    log_path = os.path.join(work, "kamailio.log")
    log = open(log_path, "w")
    # -DD: stay in the foreground (children still forked); -E: log to stderr; -Y: runtime dir for ctl/pid.
    # Its own session: every Kamailio process is in the process group led by proc.pid (summed for CPU).
    proc = subprocess.Popen([binary, "-f", cfg_path, "-DD", "-E", "-Y", work, "-m", "256", "-M", "16",
                             "-P", os.path.join(work, "kamailio.pid")], stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        end = time.monotonic() + 10
        while time.monotonic() < end and proc.poll() is None and options_ping(port, 0.3) is None:
            time.sleep(0.1)
        if proc.poll() is not None:
            log.flush()
            sys.exit(f"kamailio did not start:\n{open(log_path).read()[-3000:]}")
        remote = f"127.0.0.1:{port}"
        with callee_behind(remote):
            yield Target("kamailio", remote, lambda: cpu_seconds(pgrp=proc.pid))
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)  # the process group this script created for kamailio
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        log.close()
        if os.environ.get("PARKWAY_KEEP_TMP") != "1":
            shutil.rmtree(work, ignore_errors=True)


def compare(pk, km):
    """The RESULT line of one rate: both figures, the ratios and whether the issue 13 goal is met."""
    cpu_ratio = pk["cpu_ms"] / km["cpu_ms"] if km["cpu_ms"] else float("inf")
    failed_ok = pk["failed_pct"] <= km["failed_pct"]
    met = failed_ok and cpu_ratio <= GOAL_CPU_RATIO
    fail_ratio = (f"{pk['failed_pct'] / km['failed_pct']:.2f}" if km["failed_pct"]
                  else ("1.00" if not pk["failed_pct"] else "inf"))
    print(f"RESULT offered {pk['rate']} calls/s: failed parkway {pk['failed_pct']:.3f} % / kamailio "
          f"{km['failed_pct']:.3f} % (ratio {fail_ratio}); CPU parkway {pk['cpu_ms']:.3f} / kamailio "
          f"{km['cpu_ms']:.3f} ms/call = {cpu_ratio:.2f}; goal (failed <= kamailio's, CPU <= {GOAL_CPU_RATIO}x) "
          f"{'met' if met else 'NOT met'}; {load()}", flush=True)
    return met


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--parkway", default=os.path.join(REPO, "build", "bin", "parkway"))
    ap.add_argument("--duration", type=int, default=15, help="seconds per rate step and proxy")
    ap.add_argument("--rates", default=",".join(map(str, DEFAULT_RATES)), help="offered call rates (calls/s)")
    ap.add_argument("--no-kamailio", action="store_true")
    ap.add_argument("--kamailio-children", type=int, default=os.cpu_count() or 2,
                    help="Kamailio UDP worker processes (default: one per core)")
    a = ap.parse_args()
    rates = [int(r) for r in a.rates.split(",")]
    a.parkway = os.path.abspath(a.parkway)  # the daemon runs in its own work directory
    if not os.path.exists(a.parkway):
        sys.exit(f"{a.parkway} not found: build first (scripts/build.sh)")
    if not shutil.which("sipp"):
        sys.exit("sipp not found: scripts/setup.sh installs sip-tester")
    kam = shutil.which("kamailio") or ("/usr/sbin/kamailio" if os.path.exists("/usr/sbin/kamailio") else None)
    if a.no_kamailio:
        kam = None
    elif not kam:
        print("kamailio not installed (Debian: apt-get install kamailio): parkway alone, no ratios")
    print(f"machine: {os.cpu_count()} cores, {load()} at start; SIPp uac.xml (INVITE/180/200/ACK, 200 ms, BYE; "
          f"ACK and BYE via the Record-Route set) over UDP on loopback, {a.duration} s per step; SIPp shares the "
          f"cores with the proxies; kamailio: {a.kamailio_children} children, tm+rr+usrloc in memory")
    with contextlib.ExitStack() as stack:
        targets = [stack.enter_context(parkway(a.parkway))]
        if kam:
            targets.append(stack.enter_context(kamailio(kam, a.kamailio_children)))
        for t in targets:
            check_route_set(t)
        met = []
        for i, rate in enumerate(rates):
            # Alternate who goes first, so a change of machine load mid-run does not always favour one.
            order = targets if i % 2 == 0 else targets[::-1]
            step = {t.name: run_rate(t, rate, a.duration) for t in order}
            if kam:
                met.append(compare(step["parkway"], step["kamailio"]))
    if kam:
        print(f"RESULT goal met at {sum(met)} of {len(met)} offered rates")
    print(f"{load()} at end")


if __name__ == "__main__":
    main()
