#!/usr/bin/env python3
"""Park + retrieve throughput with 1 and 2 Parkway nodes on one PostgreSQL database (not a test; prints figures).

    bench_cluster.py <parkway binary> [--rates 100,200,300] [--cycles 1500] [--front] [--kamailio PATH]

PostgreSQL from initdb in a temp dir (tests/lib/parkway_cluster.py, durability off, the nodes on its unix socket),
then for each set-up, at each rate: SIPp parkers dial *68<ext> (one extension per call), SIPp retrievers dial
*88<ext> at the same rate one second behind (bench/callpark's bench_park.xml / bench_retrieve.xml and its
building blocks). A cycle = park INVITE/200/ACK, the bridge re-INVITE, the retrieve INVITE/200/ACK and the BYEs.

  1 node           all load to one node
  2 nodes direct   two nodes on the same database, the load split between them (half the rate each, disjoint
                   extensions): what the nodes can do without a front
  2 nodes front    (--front) the whole load to Kamailio running examples/kamailio/dispatcher.cfg in front of
                   the two nodes (it costs CPU of its own on the same box)

Per rate: `R/s offered: ok/failed parks and retrieves, X cycles/s, CPU per cycle: node(s) A + B ms, postgres P ms`
(each process's CPU time over the run divided by all the cycles of the run). Per set-up: the best rate with < 0.1 % failed. Last: the ratio of the 2-node best to the 1-node best.
On a 2-core box everything (SIPp, the nodes, PostgreSQL, Kamailio) shares two cores: the figures depend on what
else runs (the load average is printed with each line).
"""
import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "tests", "lib"))
sys.path.insert(0, os.path.join(REPO, "bench", "callpark"))
from bench_callpark import DOMAIN, LAG, cpu_seconds, moh_base  # noqa: E402
from parkway_blackbox import Sipp  # noqa: E402
from parkway_cluster import KamailioFront, PostgresServer, kamailio_binary, node  # noqa: E402

SCENARIOS = os.path.join(REPO, "bench", "callpark")


def start_nodes(binary, pg, n, work):
    """n nodes on pg's database, each with its own folder and music-on-hold range, no domain cap."""
    provision = os.path.join(work, "provision.toml")
    with open(provision, "w") as f:
        f.write(f'[[domain]]\nname = "{DOMAIN}"\nmax_parked = 0\n')
    base = moh_base(4000 * n + 4)
    nodes = []
    for i in range(n):
        wd = os.path.join(work, f"node{i}")
        os.makedirs(wd)
        moh = base + i * 4002
        nodes.append(node(binary, pg.socket_url, workdir=wd, name=f"n{i}", log_level="warn",
                          callpark={"moh_port_min": moh, "moh_port_max": moh + 4000, "provision_file": provision}))
    return nodes


def postgres_cpu(pg):
    """CPU seconds of the postmaster and its children (the server processes)."""
    pids = [pg.pid()]
    out = subprocess.run(["pgrep", "-P", str(pg.pid())], capture_output=True, text=True).stdout.split()
    pids += [int(p) for p in out]
    total = 0.0
    for p in pids:
        try:
            total += cpu_seconds(p)
        except OSError:
            pass
    return total


def run(targets, nodes, pg, rate, count, work, tag):
    """One load run: for each (remote, share) in targets, SIPp parkers + retrievers at rate*share on their own
    extensions. Returns (cycles/s, failed, offered)."""
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # music goes to an open socket nobody reads
    sink.bind(("127.0.0.1", 0))
    pairs = []
    for k, (remote, share) in enumerate(targets):
        n = int(count * share)
        csv = os.path.join(work, f"exts-{tag}-{rate}-{k}.csv")
        with open(csv, "w") as f:
            f.write("SEQUENTIAL\n")
            for i in range(n):
                f.write(f"{100000 + k * 100000 + i};\n")
        keys = ["-key", "domain", DOMAIN, "-inf", csv, "-key", "moh_port", str(sink.getsockname()[1])]
        r = max(1.0, rate * share)
        limit = max(100, int(r * 4))
        pairs.append((Sipp(os.path.join(SCENARIOS, "bench_park.xml"), remote=remote, calls=n, rate=r, limit=limit,
                           timeout=n / r + 60, extra=keys),
                      Sipp(os.path.join(SCENARIOS, "bench_retrieve.xml"), remote=remote, calls=n, rate=r,
                           limit=limit, timeout=n / r + 60, extra=keys)))
    cpu0 = [cpu_seconds(x.proc.pid) for x in nodes]
    pg0 = postgres_cpu(pg)
    t0 = time.monotonic()
    for p, _ in pairs:
        p.start()
    time.sleep(LAG)
    for _, r in pairs:
        r.start()
    rres = [r.wait() for _, r in pairs]
    t1 = time.monotonic()
    pres = [p.wait() for p, _ in pairs]
    sink.close()
    cpu = [cpu_seconds(x.proc.pid) - c for x, c in zip(nodes, cpu0)]
    pgcpu = postgres_cpu(pg) - pg0
    ok = sum(min(r.successful, p.successful) for r, p in zip(rres, pres))
    failed = sum(r.failed + p.failed for r, p in zip(rres, pres))
    elapsed = t1 - t0 - LAG
    n_total = sum(int(count * s) for _, s in targets)
    nodes_ms = " + ".join(f"{1000 * c / max(ok, 1):.2f}" for c in cpu)
    print(f"  {rate:5d}/s offered: {n_total} cycles, parks ok {sum(p.successful for p in pres)} failed "
          f"{sum(p.failed for p in pres)}, retrieves ok {sum(r.successful for r in rres)} failed "
          f"{sum(r.failed for r in rres)}; {ok / elapsed:7.1f} cycles/s over {elapsed:.1f} s; CPU per cycle: "
          f"node(s) {nodes_ms} ms, postgres {1000 * pgcpu / max(ok, 1):.2f} ms "
          f"(load average {os.getloadavg()[0]:.1f})", flush=True)
    return ok / elapsed, failed, n_total


def setup(binary, name, n_nodes, front, rates, count, kamailio):
    """Fresh PostgreSQL and nodes for one set-up; every rate; the best clean cycles/s."""
    print(f"{name}:", flush=True)
    work = tempfile.mkdtemp(prefix="parkway-bench-cluster-")
    pg = PostgresServer()
    nodes, kam = [], None
    best = peak = 0.0
    try:
        nodes = start_nodes(binary, pg, n_nodes, work)
        if front:
            kam = KamailioFront(kamailio, [x.sip for x in nodes], work, ping_interval=5)
            targets = [(f"{kam.ip}:{kam.port}", 1.0)]
        else:
            targets = [(x.sip, 1.0 / n_nodes) for x in nodes]
        for rate in rates:
            cps, failed, total = run(targets, nodes, pg, rate, count, work, name.replace(" ", ""))
            peak = max(peak, cps)
            if failed <= total * 0.001:
                best = max(best, cps)
            else:
                break  # past capacity: higher rates only fail more
            time.sleep(1)  # let the last BYEs and the music streams end
    finally:
        if kam:
            kam.close()
        for x in nodes:
            x.close()
        pg.close()
        shutil.rmtree(work, ignore_errors=True)
    print(f"  => best with < 0.1 % failed: {best:.1f} cycles/s (most completed, failures or not: {peak:.1f}/s)",
          flush=True)
    return best, peak


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("binary")
    ap.add_argument("--rates", default="100,200,300")
    ap.add_argument("--cycles", type=int, default=1500)
    ap.add_argument("--front", action="store_true", help="also run 2 nodes behind the Kamailio dispatcher front")
    ap.add_argument("--kamailio", default=None)
    a = ap.parse_args()
    binary = os.path.abspath(a.binary)
    rates = [int(r) for r in a.rates.split(",") if r]
    kamailio = a.kamailio or kamailio_binary()
    if a.front and not kamailio:
        sys.exit("--front: kamailio not found")
    def ratio(x, y):
        return f"{x / y:.2f}" if y else "n/a (lower the first rate)"

    one, one_peak = setup(binary, "1 node", 1, False, rates, a.cycles, kamailio)
    two, two_peak = setup(binary, "2 nodes direct", 2, False, rates, a.cycles, kamailio)
    line = (f"clean (< 0.1 % failed): 1 node {one:.1f}, 2 nodes direct {two:.1f} cycles/s: ratio {ratio(two, one)}")
    peaks = f"completed: 1 node {one_peak:.1f}, 2 nodes direct {two_peak:.1f} cycles/s: ratio {ratio(two_peak, one_peak)}"
    if a.front:
        fr, fr_peak = setup(binary, "2 nodes front", 2, True, rates, a.cycles, kamailio)
        line += f"; 2 nodes behind the front {fr:.1f} cycles/s: ratio {ratio(fr, one)}"
        peaks += f"; behind the front {fr_peak:.1f}: ratio {ratio(fr_peak, one_peak)}"
    print(line)
    print(peaks)


if __name__ == "__main__":
    main()
