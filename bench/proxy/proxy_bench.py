#!/usr/bin/env python3
"""Proxy benchmark: SIPp caller -> proxy -> SIPp callee at rising call rates. For each proxy (parkway, and
Kamailio 5.6 when installed) prints the highest rate held for DURATION seconds with < 0.1 % failed calls, then
both figures and their ratio. Not a test: it prints figures.

    bench/proxy/proxy.sh [--duration 20] [--rates 100,200,...] [--parkway build/bin/parkway] [--no-kamailio]
"""
import argparse
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

DEFAULT_RATES = [100, 200, 300, 400, 500, 600, 800, 1000, 1200, 1500, 1800, 2200, 2600, 3000, 3500, 4000]
MAX_FAILED = 0.001  # 0.1 %


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


def run_rate(remote, rate, duration, callee, cpu_fn):
    calls = rate * duration
    cpu0 = cpu_fn()
    t0 = time.monotonic()
    res = Sipp(scenario("uac.xml"), remote=remote, calls=calls, rate=rate, timeout=duration + 40,
               limit=max(50, rate * 3), variables={"callee": callee}).run()
    wall = time.monotonic() - t0
    cpu = cpu_fn() - cpu0
    ok, failed = res.successful, res.failed
    unfinished = calls - ok - failed
    bad = failed + max(0, unfinished)
    ratio = bad / calls
    # Held = every call placed at the rate (the run took about `duration`) and < 0.1 % failed.
    held = ratio < MAX_FAILED and wall <= duration + 5
    per_call = 1e6 * cpu / max(1, ok)
    print(f"  {rate:5d} calls/s: {ok}/{calls} ok, {bad} failed ({100 * ratio:.3f} %), {wall:.1f} s, "
          f"proxy CPU {cpu:.1f} s = {per_call:.0f} us/call -> {'held' if held else 'NOT held'}", flush=True)
    return held, per_call


def ramp(name, remote, rates, duration, callee, cpu_fn):
    """(highest rate held, proxy CPU microseconds per call at that rate)."""
    print(f"{name}: ramping {rates[0]}..{rates[-1]} calls/s, {duration} s per step", flush=True)
    best, best_cost = 0, 0.0
    for rate in rates:
        held, cost = run_rate(remote, rate, duration, callee, cpu_fn)
        if not held:
            break
        best, best_cost = rate, cost
    return best, best_cost


def register(remote, user, port):
    Sipp(scenario("register.xml"), remote=remote, calls=1, timeout=10,
         variables={"user": user, "cport": port, "expires": 3600}).run().check(successful=1)


def bench_parkway(binary, rates, duration):
    # All load comes from 127.0.0.1: trusted, so the per-source rate limit (docs/limits.md) does not ban it.
    with Parkway(binary, log_level="warn", proxy={"trusted_peers": ["127.0.0.1"]}) as pw:
        uas = Sipp(scenario("uas.xml"), calls=10**9, timeout=100000, extra=["-max_recv_loops", "100000"]).start()
        try:
            register(pw.sip, "2001", uas.port)
            return ramp("parkway", pw.sip, rates, duration, "2001",
                        lambda: cpu_seconds(pid=pw.proc.pid))
        finally:
            uas.stop()


def bench_kamailio(kamailio, rates, duration, children):
    work = tempfile.mkdtemp(prefix="parkway-bench-kam-")
    port = free_port()
    mpath = next((p for p in ["/usr/lib/x86_64-linux-gnu/kamailio/modules/", "/usr/lib/kamailio/modules/",
                              "/usr/local/lib64/kamailio/modules/"] if os.path.isdir(p)), "")
    with open(os.path.join(HERE, "kamailio.cfg")) as f:
        cfg = f.read().replace("@PORT@", str(port)).replace("@CHILDREN@", str(children)).replace("@MPATH@", mpath).replace("@DEBUG@", os.environ.get("KAMAILIO_DEBUG", "1"))
    cfg_path = os.path.join(work, "kamailio.cfg")
    with open(cfg_path, "w") as f:
        f.write(cfg)
    log = open(os.path.join(work, "kamailio.log"), "w")
    # -DD: stay in the foreground (children still forked); -E: log to stderr; -Y: runtime dir for ctl/pid.
    proc = subprocess.Popen([kamailio, "-f", cfg_path, "-DD", "-E", "-Y", work, "-m", "256", "-M", "16",
                             "-P", os.path.join(work, "kamailio.pid")], stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        end = time.monotonic() + 10
        while time.monotonic() < end and proc.poll() is None and options_ping(port, 0.3) is None:
            time.sleep(0.1)
        if proc.poll() is not None:
            log.flush()
            print(f"kamailio did not start:\n{open(os.path.join(work, 'kamailio.log')).read()[-3000:]}")
            return None
        uas = Sipp(scenario("uas.xml"), calls=10**9, timeout=100000, extra=["-max_recv_loops", "100000"]).start()
        try:
            register(f"127.0.0.1:{port}", "2001", uas.port)
            return ramp(f"kamailio ({children} children)", f"127.0.0.1:{port}", rates, duration, "2001",
                        lambda: cpu_seconds(pgrp=proc.pid))
        finally:
            uas.stop()
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


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--parkway", default=os.path.join(REPO, "build", "bin", "parkway"))
    ap.add_argument("--duration", type=int, default=20, help="seconds per rate step")
    ap.add_argument("--rates", default=",".join(map(str, DEFAULT_RATES)))
    ap.add_argument("--no-kamailio", action="store_true")
    ap.add_argument("--kamailio-children", type=int, default=os.cpu_count() or 2)
    a = ap.parse_args()
    rates = [int(r) for r in a.rates.split(",")]
    if not os.path.exists(a.parkway):
        sys.exit(f"{a.parkway} not found: build first (cmake --build build)")
    if not shutil.which("sipp"):
        sys.exit("sipp not found: scripts/setup.sh installs sip-tester")
    load = os.getloadavg()[0]
    print(f"machine: {os.cpu_count()} cores, load average {load:.1f} at start; SIPp uac.xml "
          f"(INVITE/180/200/ACK, 200 ms, BYE) over UDP on loopback; SIPp shares the cores with the proxy")
    pk, pk_cost = bench_parkway(a.parkway, rates, a.duration)
    km = "absent"
    kamailio = shutil.which("kamailio") or ("/usr/sbin/kamailio" if os.path.exists("/usr/sbin/kamailio") else None)
    if kamailio and not a.no_kamailio:
        km = bench_kamailio(kamailio, rates, a.duration, a.kamailio_children)
    print()
    print(f"RESULT parkway : {pk} calls/s held for {a.duration} s with < 0.1 % failed "
          f"({pk_cost:.0f} us of proxy CPU per call at that rate)")
    if km is None:
        print("RESULT kamailio: failed to start (see above)")
    elif km != "absent":
        k, k_cost = km
        print(f"RESULT kamailio: {k} calls/s held for {a.duration} s with < 0.1 % failed "
              f"({k_cost:.0f} us of proxy CPU per call; {a.kamailio_children} children, tm+rr+usrloc in memory)")
        print(f"RESULT ratio parkway/kamailio: {pk / k:.2f}" if k else "RESULT ratio: n/a (kamailio held no rate)")
    elif not a.no_kamailio:
        print("RESULT kamailio: not installed, skipped")
    print(f"load average at end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
