#!/usr/bin/env python3
"""Shared pieces of the replay suite (docs/replay.md "The replay suite"), python3 stdlib only:

- the suite's daemon configs (tests/replay/fixtures/*.toml, placeholders @PORT@ @DIR@ @MOH_MIN@ @MOH_MAX@
  @FIXTURES@) rendered for a fresh daemon on free loopback ports (tests/lib/parkway_blackbox.Parkway);
- a tshark capture of everything to and from the daemon's SIP port (loopback, UDP and TCP);
- the manifest tests/replay/fixtures/suite.json: per fixture the trace it was imported from, the server address
  in that trace, the daemon config it needs, and how to run it;
- `parkway-replay import` of a trace into its fixture.

Used by tests/replay/record_suite.py, tests/replay/capture_real_clients.py and tests/replay/suite/run_fixture.py.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPLAY = os.path.dirname(HERE)  # tests/replay
REPO = os.path.dirname(os.path.dirname(REPLAY))
FIXTURES = os.path.join(REPLAY, "fixtures")
TRACES = os.path.join(REPLAY, "traces")
MANIFEST = os.path.join(FIXTURES, "suite.json")
sys.path.insert(0, os.path.join(REPO, "tests", "lib"))
from parkway_blackbox import Parkway, free_port  # noqa: E402


# --------------------------------------------------------------------------------------------- configs

def render_config(name: str, port: int, workdir: str, moh_min: int) -> str:
    """The text of fixtures/NAME with its placeholders filled (a bad name is an error naming the file)."""
    path = os.path.join(FIXTURES, name)
    if not os.path.isfile(path):
        raise SystemExit(f"replay suite: no daemon config {path}")
    with open(path) as f:
        text = f.read()
    values = {"@PORT@": str(port), "@DIR@": workdir, "@MOH_MIN@": str(moh_min),
              "@MOH_MAX@": str(min(moh_min + 200, 65534)), "@FIXTURES@": FIXTURES}
    for key, value in values.items():
        text = text.replace(key, value)
    return text


def daemon(binary: str, config: str, workdir: str | None = None, start: bool = True,
           callpark: dict | None = None, sip_trace: str | None = None) -> Parkway:
    """A parkway daemon with fixtures/CONFIG on a free loopback port, in its own folder (stopped by PID by
    Parkway.close()). start=False: configured, not started (start a capture first, then pw.start()).
    callpark: more [module.callpark] settings, appended (that section ends every suite config).
    sip_trace: a pcap file the daemon records its SIP traffic into ([proxy] sip_trace, docs/replay.md)."""
    pw = Parkway(os.path.abspath(binary), workdir=workdir, start=False,
                 log_level=os.environ.get("PARKWAY_LOG_LEVEL", "info"))
    moh_min = free_port() // 2 * 2
    text = render_config(config, pw.port, pw.dir, moh_min)
    if sip_trace:
        os.makedirs(os.path.dirname(os.path.abspath(sip_trace)), exist_ok=True)
        text = text.replace("[proxy]\n", f"[proxy]\nsip_trace = {json.dumps('pcap:' + os.path.abspath(sip_trace))}\n", 1)
    for k, v in (callpark or {}).items():
        text += f"{k} = {json.dumps(v)}\n"
    pw.rewrite_config(text)
    if start:
        pw.start()
    return pw


# --------------------------------------------------------------------------------------------- capture

class Capture:
    """tshark on loopback with a capture filter on one port (SIP over UDP and TCP to/from the daemon), written
    to a pcapng file. Started before the daemon, stopped (SIGINT, by PID) after it."""

    def __init__(self, port: int, path: str, tshark: str = "tshark"):
        self.port, self.path = port, path
        self.err_path = path + ".tshark.log"
        self.cmd = [tshark, "-i", "lo", "-f", f"port {port}", "-w", path, "-q"]
        self.proc = None

    def start(self, timeout: float = 10.0):
        os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        if os.path.exists(self.path):
            os.unlink(self.path)
        self._err = open(self.err_path, "w")
        self.proc = subprocess.Popen(self.cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=self._err)
        end = time.monotonic() + timeout
        while time.monotonic() < end:  # tshark says "Capturing on 'Loopback: lo'" once packets are taken
            if self.proc.poll() is not None:
                break
            with open(self.err_path, errors="replace") as f:
                if "Capturing on" in f.read():
                    time.sleep(0.2)
                    return self
            time.sleep(0.05)
        self.stop()
        with open(self.err_path, errors="replace") as f:
            raise RuntimeError(f"tshark did not start capturing ({' '.join(self.cmd)}):\n{f.read()}")

    def stop(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            time.sleep(0.3)  # the last datagrams reach the capture
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._err.close()
        self.proc = None
        if os.path.exists(self.err_path):
            os.unlink(self.err_path)
        if os.path.exists(self.path):
            os.chmod(self.path, 0o644)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


# --------------------------------------------------------------------------------------------- manifest

def load_manifest() -> dict:
    try:
        with open(MANIFEST) as f:
            return json.load(f)
    except FileNotFoundError:
        return {"fixtures": {}}


def save_manifest(m: dict):
    m["fixtures"] = dict(sorted(m["fixtures"].items()))
    with open(MANIFEST, "w") as f:
        json.dump(m, f, indent=2, ensure_ascii=False)
        f.write("\n")


def record_entry(name: str, trace: str, server: str, config: str, about: str, **run):
    """Add or replace one fixture's manifest entry (trace path relative to tests/replay)."""
    m = load_manifest()
    entry = {"about": about, "trace": os.path.relpath(trace, REPLAY), "server": server, "config": config}
    entry.update(run)
    m["fixtures"][name] = entry
    save_manifest(m)


# --------------------------------------------------------------------------------------------- import

def import_trace(replay: str, name: str, entry: dict) -> str:
    """`parkway-replay import` of the entry's trace into fixtures/NAME.json (never edited by hand)."""
    trace = os.path.join(REPLAY, entry["trace"])
    out = os.path.join(FIXTURES, name + ".json")
    cmd = [replay, "import", trace, "-o", out, "--server", entry["server"], "--name", name]
    cmd += entry.get("import_args", [])
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=60)
    if r.returncode != 0:
        raise RuntimeError(f"import of {trace} failed ({r.returncode}): {' '.join(cmd)}\n{r.stdout}")
    return out


def find_binary(arg: str | None, name: str) -> str:
    """A binary from the command line, else build/bin/NAME of this checkout, else PATH."""
    for c in (arg, os.path.join(REPO, "build", "bin", name), shutil.which(name)):
        if c and os.path.exists(c):
            return os.path.abspath(c)
    raise SystemExit(f"no {name} binary (give its path, or build it into build/bin)")


def tmpdir(prefix: str) -> str:
    return tempfile.mkdtemp(prefix=prefix)
