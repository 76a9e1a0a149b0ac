#!/usr/bin/env python3
"""Overload benchmark: goodput at twice the capacity, with and without the overload gate (not a test).

    bench_overload.py <parkway binary> [--rates 200,300,400,500,600,800] [--cycles 1500] [--seconds 15]
                      [--capacity C] [--pin]

1. Clean capacity: park + retrieve cycles per second with < 0.1 % failed, as bench_callpark.py measures it (its
   cycles() at each of --rates in turn, up to the first rate that fails; --capacity skips this and takes C).
2. Twice that rate offered for --seconds, once with the gate ([proxy] overload_queue_ms = 200, the default) and
   once without (overload_queue_ms = 0). The SIPp roles take a 503 as a final answer (ACK, no retry, counted as
   refused); a parked party whose retriever was refused hangs up after 6 s. Printed for each: offered and
   successful cycles/s (goodput), goodput / capacity (goal >= 0.90 with the gate), the 503s the daemon sent,
   what is left half-set-up once SIPp is done (parked calls, dialogs, transactions; goal 0) and the daemon's
   RSS before / peak / after (memory bounded). The figures move with the machine's load: os.getloadavg() is
   printed with them; the ratio is what counts.
With --pin the daemon runs on the first CPU and SIPp (and this script) on the others, in every run: on a small box
the load generator's CPU, which doubles with the offer, then no longer comes out of the daemon's.
"""
import argparse
import os
import re
import socket
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "..", "tests", "lib"))
import bench_callpark  # noqa: E402
from bench_callpark import DOMAIN, LAG, cpu_seconds, cycles, moh_base  # noqa: E402
from parkway_blackbox import Parkway, Sipp, scratch_dir  # noqa: E402

GIVE_UP_S = 6  # bench_overload_park.xml: a parked party with no retriever hangs up after this


def daemon(binary, workdir, queue_ms):
    moh = moh_base(8000)
    provision = os.path.join(workdir, "provision.toml")
    with open(provision, "w") as f:
        f.write(f'[[domain]]\nname = "{DOMAIN}"\nmax_parked = 0\n')
    return bench_callpark.start_pinned(lambda: Parkway(
        binary, modules=["registrar", "callpark", "router"], workdir=workdir, log_level="warn", admin=True,
        proxy={"domains": [DOMAIN, "127.0.0.1"], "trusted_peers": ["127.0.0.1"], "overload_queue_ms": queue_ms},
        module_params={"callpark": {"database": os.path.join(workdir, "park.db"), "moh_ip": "127.0.0.1",
                                    "moh_port_min": moh, "moh_port_max": moh + 8000, "park_info": False,
                                    "provision_file": provision, "storage_thread": bench_callpark.STORAGE_THREAD}}))


def status_kb(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def admin(pw, path):
    """The admin API's answer, or (None, None) when the daemon does not answer in 30 s (without the gate it can be
    that far behind): the figure is then printed as -1, and the run goes on."""
    try:
        return pw.admin("GET", path, timeout=30)
    except OSError:
        return None, None


def metric(pw, name):
    _, text = admin(pw, "/metrics")
    if not isinstance(text, str):
        return -1.0
    m = re.search(rf"^{name}(?:{{[^}}]*}})? ([0-9.e+-]+)$", text, re.M)
    return float(m.group(1)) if m else 0.0


def parked_count(pw):
    status, body = admin(pw, "/api/parked")
    return len(body.get("parked", [])) if status == 200 and isinstance(body, dict) else -1


def overloaded(binary, rate, seconds, queue_ms, capacity):
    """Offer `rate` cycles/s for `seconds`; returns the printed figures as a dict."""
    count = int(rate * seconds)
    work = scratch_dir("parkway-bench-ovl-")
    csv = os.path.join(work, "exts.csv")
    with open(csv, "w") as f:
        f.write("SEQUENTIAL\n")
        for i in range(count):
            f.write(f"{100000 + i};\n")
    with daemon(binary, work, queue_ms) as pw:
        sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # where the music goes (never read)
        sink.bind(("127.0.0.1", 0))
        keys = ["-key", "domain", DOMAIN, "-inf", csv, "-key", "moh_port", str(sink.getsockname()[1])]
        limit = max(100, rate * 8)
        timeout = seconds + LAG + GIVE_UP_S + 40
        parkers = Sipp(os.path.join(HERE, "bench_overload_park.xml"), remote=pw.sip, calls=count, rate=rate,
                       limit=limit, timeout=timeout, extra=keys)
        pid = pw.proc.pid
        rss0 = status_kb(pid, "VmRSS")
        cpu0 = cpu_seconds(pid)
        t0 = time.monotonic()
        parkers.start()
        time.sleep(LAG)
        # made now, not with the parkers: a free port picked a second earlier was taken by the time SIPp bound it
        # in some runs ("Unable to bind main socket": no retrieve ran, and the whole run counted as failed)
        retrievers = Sipp(os.path.join(HERE, "bench_overload_retrieve.xml"), remote=pw.sip, calls=count,
                          rate=rate, limit=limit, timeout=timeout, extra=keys)
        retrievers.start()
        r = retrievers.wait()
        t1 = time.monotonic()
        p = parkers.wait()
        cpu = cpu_seconds(pid) - cpu0
        time.sleep(2)  # the last answers and hang-ups settle
        sent503 = metric(pw, "parkway_overload_refusals_total")
        busy503 = metric(pw, 'parkway_limit_refusals_total')
        first = metric(pw, "parkway_overload_priority_total")
        left = {"parked": parked_count(pw), "dialogs": metric(pw, "parkway_dialogs"),
                "transactions": metric(pw, "parkway_sip_transactions")}
        rss_peak, rss1 = status_kb(pid, "VmHWM"), status_kb(pid, "VmRSS")
        sink.close()
        for who, res in (("parkers", p), ("retrievers", r)):
            if "Unable to bind" in res.errors:
                print(f"  WARNING: the {who}' SIPp could not bind its port: this run's figures are not the daemon's")
        if os.environ.get("BENCH_VERBOSE"):
            print(r.errors[-2000:], p.errors[-2000:])
    elapsed = t1 - t0 - LAG
    good = r.successful / max(elapsed, 1e-9)
    label = f"gate on (overload_queue_ms={queue_ms})" if queue_ms else "gate off (overload_queue_ms=0)"
    print(f"  {label}: offered {count / seconds:.1f} cycles/s for {seconds} s; retrieves ok {r.successful} failed "
          f"{r.failed}, parks ok {p.successful} failed {p.failed}; goodput {good:.1f} cycles/s over {elapsed:.1f} s "
          f"= {good / capacity:.2f} x capacity; 503s sent {sent503:.0f} (other limits {busy503:.0f}), retrieves "
          f"admitted ahead {first:.0f}; left after the "
          f"run: parked {left['parked']}, dialogs {left['dialogs']:.0f}, transactions {left['transactions']:.0f}; "
          f"RSS {rss0} kB before, {rss_peak} kB peak, {rss1} kB after; parkway CPU {cpu:.2f} s "
          f"(load average {os.getloadavg()[0]:.1f})")
    return {"goodput": good, "ratio": good / capacity, "left": left}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("binary")
    ap.add_argument("--rates", default="200,300,400,500,600,800", help="rates tried for the clean capacity")
    ap.add_argument("--cycles", type=int, default=1500, help="fewest cycles per capacity run")
    ap.add_argument("--capacity-seconds", type=float, default=8,
                    help="each capacity run offers at least this long: a short burst fits in the socket buffers and "
                         "the SIP thread's backlog, and would count as capacity what the daemon cannot sustain")
    ap.add_argument("--seconds", type=int, default=15, help="how long twice the capacity is offered")
    ap.add_argument("--capacity", type=float, default=0, help="skip the capacity runs and take this")
    ap.add_argument("--storage-thread", choices=["auto", "on", "off"], default="auto",
                    help="callpark's storage_thread (auto = on)")
    ap.add_argument("--pin", action="store_true",
                    help="the daemon on the first CPU, SIPp and this script on the others, in every run: the load "
                         "generator's CPU then never comes out of the daemon's, and the ratio measures the gate")
    a = ap.parse_args()
    bench_callpark.STORAGE_THREAD = a.storage_thread
    if a.pin:
        bench_callpark.PIN = bench_callpark.pin_split()
        if not bench_callpark.PIN:
            sys.exit("--pin needs at least two CPUs")
        print(f"pinned: parkway on CPU {sorted(bench_callpark.PIN[0])}, SIPp and this script on "
              f"{sorted(bench_callpark.PIN[1])}")
    binary = os.path.abspath(a.binary)
    capacity = a.capacity
    if not capacity:
        print("clean capacity (park + retrieve cycles, < 0.1 % failed):")
        for rate in [int(x) for x in a.rates.split(",")]:
            got, failed, count = cycles(binary, rate, max(a.cycles, int(rate * a.capacity_seconds)))
            if failed > count / 1000:
                break  # past the capacity: higher rates fail too (and wait for SIPp's timeouts)
            capacity = max(capacity, got)
    if not capacity:
        print("=> no rate ran clean: no capacity to double")
        return
    offered = int(round(2 * capacity))
    print(f"=> capacity {capacity:.1f} cycles/s; offering {offered} cycles/s (load average "
          f"{os.getloadavg()[0]:.1f})")
    on = overloaded(binary, offered, a.seconds, 200, capacity)
    off = overloaded(binary, offered, a.seconds, 0, capacity)
    left_on = sum(max(v, 0) for v in on["left"].values())
    print(f"=> at 2x capacity: goodput/capacity {on['ratio']:.2f} with the gate (goal >= 0.90), {off['ratio']:.2f} "
          f"without; half-set-up after the run with the gate: {left_on:.0f} (goal 0); load average "
          f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
