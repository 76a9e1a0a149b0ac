#!/usr/bin/env python3
"""One test of the replay suite (docs/replay.md "The replay suite"): a fresh daemon, one fixture replayed.

    run_fixture.py PARKWAY PARKWAY_REPLAY JUNIT_DIR fixture NAME
    run_fixture.py PARKWAY PARKWAY_REPLAY JUNIT_DIR negative NAME
    run_fixture.py --list fixture|negative          (what CMake registers)

`fixture NAME`: starts a daemon with the config tests/replay/fixtures/suite.json names for NAME (free loopback
ports, its own folder), runs `parkway-replay run fixtures/NAME.json --server udp:127.0.0.1:PORT --junit
JUNIT_DIR/NAME.xml`, wants exit 0, stops the daemon by its PID.

`negative NAME` (NEGATIVE below): replays a fixture against a daemon configured differently from the one it was
recorded with, wants exit 1 and a diff on stdout that names the step that changed and what came instead. The
step is found in the fixture by what it is (e.g. "the answer to the second INVITE *68111"), so a re-recorded
fixture keeps the test meaningful.

A failure prints the replay's output and the daemon's log tail. python3 stdlib only.
"""
import json
import os
import re
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import replay_lib  # noqa: E402

# Extra `run` options per fixture (none needed so far: the suite's daemons use short timers instead).
RUN_OPTIONS = {}
STEP_TIMEOUT = "8"  # seconds to wait for one expected message (the slowest is a 2 s recall + ringing)


def load_fixture(name):
    path = os.path.join(replay_lib.FIXTURES, name + ".json")
    if not os.path.isfile(path):
        raise SystemExit(f"no fixture {path} (re-import: tests/replay/record_suite.py --import-only)")
    with open(path) as f:
        return path, json.load(f)


def start_line(step):
    return (step.get("message") or [""])[0]


def sends(fx, prefix):
    return [s for s in fx["steps"] if "send" in s and start_line(s).startswith(prefix)]


def first_expect_after(fx, step, participant, prefix):
    """The first expect step for participant after `step` (trace order) whose start line begins with prefix."""
    for s in fx["steps"]:
        if s["step"] > step["step"] and s.get("expect") == participant and start_line(s).startswith(prefix):
            return s
    raise SystemExit(f"fixture {fx.get('name')}: no expect '{prefix}...' for {participant} after step "
                     f"{step['step']}")


def second_park_answer(fx):
    """occupied_stack: the 200 the second INVITE *68111 got (the stack); with occupied_policy=reject: 486."""
    parks = sends(fx, "INVITE sip:*68111")
    if len(parks) < 2:
        raise SystemExit(f"fixture {fx.get('name')}: fewer than two INVITE *68111 sends")
    return first_expect_after(fx, parks[1], parks[1]["send"], "SIP/2.0 200"), "486"


def recall_invite(fx):
    """recall_parker: the recall INVITE the daemon sends the parker's phone after recall_time (2 s in
    recall.toml); with park.toml's default 300 s it never comes in time."""
    park = sends(fx, "INVITE sip:*68120")[0]
    regs = sends(fx, "REGISTER")
    if not regs:
        raise SystemExit(f"fixture {fx.get('name')}: no REGISTER of the parker's phone")
    return first_expect_after(fx, park, regs[0]["send"], "INVITE "), None


def blf_parked_notify(fx):
    """blf: the NOTIFY that shows the parked call as <state>early</state> (blf_state = "early", the default);
    with blf_state = "confirmed" the watcher's lamp is solid instead of flashing."""
    for s in fx["steps"]:
        if "expect" in s and start_line(s).startswith("NOTIFY ") and any("<state>early</state>" in l
                                                                          for l in s["message"]):
            return s, "confirmed"
    raise SystemExit(f"fixture {fx.get('name')}: no NOTIFY with <state>early</state>")


# name -> (fixture, config to run it against, [module.callpark] settings added, function finding the step
# that must change and what must come instead (None: nothing comes))
NEGATIVE = {
    "occupied_reject": ("occupied_stack", "reject.toml", {}, second_park_answer),
    "recall_never": ("recall_parker", "park.toml", {}, recall_invite),
    "blf_confirmed": ("blf", "park.toml", {"blf_state": "confirmed"}, blf_parked_notify),
}


def run(binary, replay, junit_dir, fixture, config, junit_name, extra=(), callpark=None):
    """(exit code, output, daemon log) of one replay against a fresh daemon with fixtures/CONFIG."""
    pw = replay_lib.daemon(binary, config, callpark=callpark)
    try:
        junit = os.path.join(junit_dir, junit_name + ".xml")
        os.makedirs(junit_dir, exist_ok=True)
        cmd = [replay, "run", fixture, "--server", f"udp:127.0.0.1:{pw.port}", "--junit", junit,
               "--timeout", STEP_TIMEOUT, *extra]
        print("$ " + " ".join(cmd), flush=True)
        t0 = time.monotonic()
        try:
            r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=90)
            rc, out = r.returncode, r.stdout
        except subprocess.TimeoutExpired as e:  # (subprocess.run kills the child it started)
            rc, out = None, (e.stdout or b"").decode(errors="replace") + "\n[killed after 90 s]"
        print(out, flush=True)
        print(f"exit {rc} after {time.monotonic() - t0:.1f} s", flush=True)
        return rc, out, pw.log()
    finally:
        pw.close()


def diff_block(out, step_id):
    """The lines of the replay's output about step_id: from the first line naming "step N" to the next line
    that names another step (or 12 lines at most); None when no line names it."""
    lines = out.splitlines()
    this, other = re.compile(rf"\bstep {step_id}\b"), re.compile(r"\bstep \d+\b")
    for i, line in enumerate(lines):
        if this.search(line):
            block = [line]
            for nxt in lines[i + 1:i + 12]:
                if other.search(nxt) and not this.search(nxt):
                    break
                block.append(nxt)
            return "\n".join(block)
    return None


def fail(msg, log):
    print(f"FAIL: {msg}\n---- parkway log (tail):\n{log[-5000:]}", flush=True)
    sys.exit(1)


def test_fixture(binary, replay, junit_dir, name):
    manifest = replay_lib.load_manifest()["fixtures"]
    if name not in manifest:
        raise SystemExit(f"{name} is not in {replay_lib.MANIFEST}")
    path, _ = load_fixture(name)
    rc, out, log = run(binary, replay, junit_dir, path, manifest[name]["config"], name, RUN_OPTIONS.get(name, ()))
    if rc != 0:
        fail(f"replay of {name} against {manifest[name]['config']} exited {rc}, want 0 (behaved as in the trace)",
             log)
    print(f"{name}: OK")


def test_negative(binary, replay, junit_dir, name):
    if name not in NEGATIVE:
        raise SystemExit(f"unknown negative test {name}; known: {' '.join(NEGATIVE)}")
    fixture, config, callpark, find = NEGATIVE[name]
    path, fx = load_fixture(fixture)
    step, came = find(fx)
    rc, out, log = run(binary, replay, junit_dir, path, config, "negative-" + name, callpark=callpark)
    against = config + "".join(f" + {k} = {v}" for k, v in callpark.items())
    if rc != 1:
        fail(f"replay of {fixture} against {against} exited {rc}, want 1 (a difference)", log)
    # The diff names the step (formatDifferences: "step N (participant, ...)") ...
    block = diff_block(out, step["step"])
    if block is None:
        fail(f"the diff does not name step {step['step']} ({start_line(step)} to {step['expect']}):\n{out}", log)
    # ... and what came instead (a status code), or that nothing came.
    if came is not None and came not in block:
        fail(f"the diff of step {step['step']} does not say {came} came:\n{block}", log)
    if came is None and not re.search(r"(?i)nothing came|timed out|did not come|never came",
                                      block):
        fail(f"the diff of step {step['step']} does not say the message never came:\n{block}", log)
    print(f"negative {name}: exit 1, the diff names step {step['step']} ({start_line(step)})"
          + (f" and the {came} that came" if came else " and that it never came") + ": OK")


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--list":
        fixtures = replay_lib.load_manifest()["fixtures"]
        names = [n for n, e in fixtures.items() if "not_in_suite" not in e] if sys.argv[2] == "fixture" else NEGATIVE
        print(";".join(names))
        return
    if len(sys.argv) != 6 or sys.argv[4] not in ("fixture", "negative"):
        raise SystemExit(__doc__)
    binary, replay, junit_dir, kind, name = sys.argv[1:]
    binary, replay = os.path.abspath(binary), os.path.abspath(replay)
    (test_fixture if kind == "fixture" else test_negative)(binary, replay, junit_dir, name)


if __name__ == "__main__":
    main()
