#!/usr/bin/env python3
"""Two Parkway nodes behind the Kamailio dispatcher front of examples/kamailio/dispatcher.cfg, black box:

    test_front.py <parkway binary> <kamailio binary> dispatch

PostgreSQL + two `parkway` nodes on it (tests/lib/parkway_cluster.py), Kamailio running the example config (its
#!define lines rewritten for free ports, the dispatcher list naming the two nodes). Phones talk to the front only.
  * 12 parks on 12 extensions through the front: all 200, and both nodes parked some (the front spreads them);
  * each is retrieved through the front: 200, and the parked party's dialog gets the retrieve's re-INVITE from
    the front's address (in-dialog requests cross the front by its Record-Route);
  * node A is stopped: parks and retrieves through the front still succeed, all on node B (the front times out on
    A once, marks it down and fails over with ds_next_dst; its OPTIONS probes keep it out).

Bounded (~10 s: one 2 s failover timeout), loopback only, every process it starts is stopped by its PID.
"""
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
from parkway_cluster import Cluster, Phones, wait_until  # noqa: E402

BINARY = os.path.abspath(sys.argv[1]) if len(sys.argv) > 1 else "parkway"
KAMAILIO = sys.argv[2] if len(sys.argv) > 2 else None


def fail(c, msg):
    raise AssertionError(msg + "\n" + c.logs())


def parks_logged(node) -> int:
    return sum(1 for line in node.log().splitlines() if "callpark: parked " in line)


def park_and_retrieve(c, ph, exts, label):
    parties = {}
    for ext in exts:
        cid = ph.invite(f"*68{ext}", f"party{ext}")
        st = ph.final(cid, 10)
        if st != 200:
            fail(c, f"{label}: park on {ext} through the front answered {st}")
        parties[ext] = cid
    for ext, party in parties.items():
        st = ph.retrieve(ext, f"retriever{ext}")
        if st != 200:
            fail(c, f"{label}: retrieve of {ext} through the front answered {st}")
        if not wait_until(lambda: ph.reinvites.get(party, 0) >= 1, 5):
            fail(c, f"{label}: the parked party of {ext} got no re-INVITE")
        if ph.sources.get(party) != c.front_addr:  # the node follows the route set the front Record-Routed
            fail(c, f"{label}: the re-INVITE of {ext}'s parked party came from {ph.sources.get(party)}, not through "
                    f"the front {c.front_addr}")


def case_dispatch():
    with Cluster(BINARY, nodes=2, front=True, kamailio=KAMAILIO) as c:
        a, b = c.nodes
        with Phones(c.front_addr) as ph:
            park_and_retrieve(c, ph, [str(500 + i) for i in range(12)], "both nodes up")
            na, nb = parks_logged(a), parks_logged(b)
            if na == 0 or nb == 0 or na + nb != 12:
                fail(c, f"the front did not spread the parks over both nodes: node A {na}, node B {nb}")
            print(f"both up: 12 parks + retrieves through the front, node A {na}, node B {nb}")

            a.stop()
            t0 = time.monotonic()
            park_and_retrieve(c, ph, [str(600 + i) for i in range(12)], "node A stopped")
            nb2 = parks_logged(b) - nb
            if nb2 != 12:
                fail(c, f"with node A stopped, node B parked {nb2} of 12")
            print(f"node A stopped: 12 parks + retrieves through the front, all on node B "
                  f"({time.monotonic() - t0:.1f} s, one failover timeout included)")


CASES = {name[5:]: fn for name, fn in list(globals().items()) if name.startswith("case_")}

if __name__ == "__main__":
    if len(sys.argv) < 4 or sys.argv[3] not in CASES:
        print("usage: test_front.py <parkway binary> <kamailio binary> <case>\ncases: " + " ".join(CASES))
        sys.exit(2)
    t = time.monotonic()
    CASES[sys.argv[3]]()
    print(f"{sys.argv[3]}: OK in {time.monotonic() - t:.1f} s")
