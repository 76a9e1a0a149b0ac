#!/usr/bin/env python3
"""Re-record the park flows of the test suite against the real daemon and re-import them as replay fixtures
(docs/replay.md "The replay suite"):

    record_suite.py [--parkway BIN] [--replay BIN] [--recorder] [--import-only] [--no-import] [FLOW...]

Each flow is a case of tests/sipp-park/test_park.py (the SIPp scenarios of examples/sipp/park), run as is, but
against a daemon started from the flow's config in tests/replay/fixtures/ (the config the replay uses too) while
tshark captures the daemon's SIP port on loopback into tests/replay/traces/FLOW.pcapng. The case's own checks
still run: a flow that misbehaves is not recorded. Then `parkway-replay import` writes
tests/replay/fixtures/FLOW.json and the manifest tests/replay/fixtures/suite.json gets the trace, the daemon's
address in it and the config. --recorder records with the daemon's own `[proxy] sip_trace` (FLOW.pcap, real
transport and addresses, docs/replay.md "Recording") instead of tshark. --import-only re-imports every trace of the manifest (real-client traces
included) without recording anything: run it after the importer changed.

Every process started here is stopped by its PID (test_park's roles, the daemon, tshark). python3 stdlib only.
"""
import argparse
import os
import shutil
import signal
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "suite"))
import replay_lib  # noqa: E402
from replay_lib import Capture  # noqa: E402

# flow -> (test_park case, daemon config in fixtures/, what it shows)
FLOWS = {
    "park_invite_retrieve": ("retrieve_identity", "park.toml",
                             "park by INVITE *68106 (Referred-By: the parker), retrieve with *88106: the retriever "
                             "is shown the parked party"),
    "retrieve_nothing": ("retrieve_nothing", "park.toml", "*88999 and bare *88 with nothing parked: 404"),
    "refer_passthrough": ("refer_passthrough", "park.toml",
                          "park by blind transfer, passthrough: the REFER reaches the transferee, whose INVITE "
                          "*68103 is parked; the parker sees sipfrag 100 then 200; retrieve"),
    "refer_takeover": ("refer_takeover", "takeover.toml",
                       "park by blind transfer, takeover: 202 + NOTIFY 100, INVITE/Replaces to the transferee, "
                       "final sipfrag 200; retrieve"),
    "group_park": ("group_park", "group.toml",
                   "*58 hunts group sales from its first member, skipping occupied ones; all occupied: 486; "
                   "park-info NOTIFY to a member; retrieves"),
    "replaces_pickup": ("replaces_pickup", "park.toml",
                        "BLF watcher learns the parked dialog, INVITE 108 with Replaces picks it up; a Replaces "
                        "naming no dialog fails"),
    "blf": ("blf", "park.toml",
            "dialog-info watcher of *88103: full idle state, park (early), retrieve (terminated), refresh, "
            "unsubscribe"),
    "recall_parker": ("recall_parker", "recall.toml",
                      "nobody retrieves: after 2 s the parker's phone is rung (Alert-Info, recall display), "
                      "answers and gets the parked party"),
    "occupied_stack": ("occupied_stack", "park.toml",
                       "two parks on 111 stack; *88111 retrieves the oldest first, then the second"),
    "hangup_parked": ("hangup_parked", "park.toml",
                      "the parked party hangs up while parked: the BLF watcher sees it end, *88130 then gets 404"),
}

CURRENT = {}  # the flow being recorded: name, config, trace, binary


def load_test_park(binary):
    """tests/sipp-park/test_park.py as a module (it reads the daemon binary from argv at import)."""
    sys.path.insert(0, os.path.join(HERE, "..", "sipp-park"))
    saved = sys.argv
    sys.argv = [saved[0], binary]
    try:
        import test_park
    finally:
        sys.argv = saved
    return test_park


def config_lines(text):
    return sorted(l.strip() for l in text.splitlines() if l.strip() and not l.strip().startswith("#"))


def make_suite_class(test_park):
    class RecordSuite(test_park.Suite):
        """test_park's Suite with the daemon from the flow's fixture config, captured by tshark. A case that asks
        for settings its flow's config does not have is an error naming both."""

        def __init__(self, params=None, provision=None, admin=False):
            name, config = CURRENT["name"], CURRENT["config"]
            with open(os.path.join(replay_lib.FIXTURES, config)) as f:
                text = f.read()
            for k, v in (params or {}).items():
                want = f"{k} = {replay_toml(v)}"
                if want not in text:
                    raise SystemExit(f"flow {name}: the case sets {want}, fixtures/{config} does not")
            if provision is not None:
                prov = next((l.split("=", 1)[1].strip().strip('"').replace("@FIXTURES@", replay_lib.FIXTURES)
                             for l in text.splitlines() if l.startswith("provision_file")), None)
                with open(prov or os.devnull) as f:
                    have = config_lines(f.read())
                if have != config_lines(provision.replace("@DOMAIN@", test_park.DOMAIN)):
                    raise SystemExit(f"flow {name}: the case's provisioning differs from {prov or config}")
            if admin:
                raise SystemExit(f"flow {name}: cases with the admin API are not recorded")
            self.dir = replay_lib.tmpdir(f"parkway-record-{name}-")
            self.roles = []
            self.pw = replay_lib.daemon(CURRENT["binary"], config, workdir=self.dir, start=False,
                                        sip_trace=CURRENT["trace"] if CURRENT["recorder"] else None)
            self.capture = None if CURRENT["recorder"] else Capture(self.pw.port, CURRENT["trace"]).start()
            CURRENT["server"] = f"127.0.0.1:{self.pw.port}"
            try:
                self.pw.start()
            except Exception:
                if self.capture:
                    self.capture.stop()
                raise

        def close(self):
            for r in self.roles:
                r.close()
            time.sleep(0.3)
            self.pw.stop()
            if self.capture:
                self.capture.stop()
            self.pw.close()
            if os.environ.get("PARKWAY_KEEP_TMP") != "1":
                shutil.rmtree(self.dir, ignore_errors=True)

    return RecordSuite


def replay_toml(v):
    return f'"{v}"' if isinstance(v, str) else str(v).lower() if isinstance(v, bool) else str(v)


def record(name, test_park, binary, recorder=False):
    case, config, about = FLOWS[name]
    trace = os.path.join(replay_lib.TRACES, name + (".pcap" if recorder else ".pcapng"))
    CURRENT.clear()
    CURRENT.update(name=name, config=config, trace=trace, binary=binary, recorder=recorder)
    print(f"record: {name} (test_park case {case}, {config})", flush=True)
    try:
        test_park.CASES[case]()
    except AssertionError as e:
        print(f"FAIL {name}: the flow misbehaved, not recorded:\n{e}", flush=True)
        if os.path.exists(trace):
            os.unlink(trace)
        return False
    replay_lib.record_entry(name, trace, CURRENT["server"], config, about,
                            source=f"tests/sipp-park/test_park.py {case}",
                            recorded_by="parkway [proxy] sip_trace" if recorder else "tshark")
    print(f"record: {name}: {os.path.getsize(trace)} bytes in {os.path.relpath(trace, replay_lib.REPO)}", flush=True)
    return True


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--parkway")
    ap.add_argument("--replay")
    ap.add_argument("--import-only", action="store_true", help="re-import the manifest's traces, record nothing")
    ap.add_argument("--no-import", action="store_true", help="record only")
    ap.add_argument("--recorder", action="store_true",
                    help="record with the daemon's own [proxy] sip_trace (FLOW.pcap) instead of tshark")
    ap.add_argument("flows", nargs="*", help=f"flows (default: all): {' '.join(FLOWS)}")
    args = ap.parse_args()
    manifest_names = list(replay_lib.load_manifest()["fixtures"])
    names = args.flows or (manifest_names if args.import_only else list(FLOWS))
    failed = []
    if not args.import_only:
        binary = replay_lib.find_binary(args.parkway, "parkway")
        test_park = load_test_park(binary)
        test_park.Suite = make_suite_class(test_park)
        for n in names:
            if n not in FLOWS:
                raise SystemExit(f"unknown flow {n}; known: {' '.join(FLOWS)}")
        failed = [n for n in names if not record(n, test_park, binary, args.recorder)]
    manifest = replay_lib.load_manifest()
    replay = None if args.no_import else replay_lib.find_binary(args.replay, "parkway-replay")
    for n in ([] if args.no_import else names):
        if n in failed:
            continue
        if n not in manifest["fixtures"]:
            raise SystemExit(f"{n} is not in {replay_lib.MANIFEST}")
        print(f"import: {replay_lib.import_trace(replay, n, manifest['fixtures'][n])}", flush=True)
    if failed:
        raise SystemExit(f"not recorded: {' '.join(failed)}")


if __name__ == "__main__":
    def _terminate(*_):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        sys.exit(143)

    signal.signal(signal.SIGTERM, _terminate)
    main()
