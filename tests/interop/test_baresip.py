#!/usr/bin/env python3
"""Interop: three real baresip 1.0 phones park and retrieve a call through Parkway (passthrough REFER mode).

    test_baresip.py <parkway binary> [baresip binary]

A (1001) calls B (1002, a 1700 Hz sine), B blind-transfers A to *68103 (the phone "Park" key: a REFER that
Parkway relays to A, whose INVITE *68103 is parked with music on hold), C (1003, a 2300 Hz sine) dials *88103 and
gets A back. A is an echo phone (aubridge: what it plays is what it sends), so a tone that comes back to its
sender has crossed both RTP directions. Every phone registers to Parkway's registrar, runs with its own config
folder, is driven over ctrl_tcp (netstring JSON) and records audio with the sndfile filter (see Phone.dec_files
for why A's recording is its encode side).

Checks: B hears its tone back through A and A hears it; the REFER parks A (listed on 103, parker 1002; B's call
ends on the final NOTIFY); A hears Parkway's music (energy at the music's notes, no phone tone); C's retrieve is
answered and nothing is parked; A hears C's tone and C hears it back (RTP both ways), the music stopped; C's
hang-up ends A's call.

Bounded (every wait has a timeout; a run takes ~8 s) and loopback only; every process started here is stopped by
its PID. PARKWAY_KEEP_TMP=1 keeps the folders (configs, logs with baresip's SIP trace, WAVs);
PARKWAY_LOG_LEVEL=debug makes the daemon verbose. INTEROP_* variables below break the scenario on purpose.
python3 stdlib only.
"""
import array
import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
from parkway_blackbox import Parkway, free_port, wait_until  # noqa: E402

BINARY = os.path.abspath(sys.argv[1]) if len(sys.argv) > 1 else "parkway"
BARESIP = sys.argv[2] if len(sys.argv) > 2 else (shutil.which("baresip") or "/usr/bin/baresip")


def _module_path():
    """baresip's module folder: $BARESIP_MODULE_PATH, else where Debian (or a local build) puts them."""
    if os.environ.get("BARESIP_MODULE_PATH"):
        return os.environ["BARESIP_MODULE_PATH"]
    for d in ("/usr/lib/baresip/modules", "/usr/lib/x86_64-linux-gnu/baresip/modules",
              "/usr/local/lib/baresip/modules"):
        if os.path.exists(os.path.join(d, "ctrl_tcp.so")):
            return d
    return "/usr/lib/baresip/modules"


MODULE_PATH = _module_path()
NEEDED_MODULES = ("account", "menu", "ctrl_tcp", "g711", "ausine", "aubridge", "sndfile")
DOMAIN = "pbx.example.com"
# Knobs to break the scenario on purpose (and to try the other REFER mode); the defaults are the test.
PARK_CODE = os.environ.get("INTEROP_PARK_CODE", "*68")       # what B transfers A to: PARK_CODE + PARK_EXT
PARK_EXT = os.environ.get("INTEROP_PARK_EXT", "103")        # where B parks A
RETRIEVE_EXT = os.environ.get("INTEROP_RETRIEVE_EXT", "103")  # where C looks for it
REFER_MODE = os.environ.get("INTEROP_REFER_MODE", "passthrough")
# park_retrieve (default): passthrough park by blind transfer, music, retrieve, RTP both ways.
# takeover_failed: takeover mode towards a transferee without Replaces (baresip 1.0 answers 420): the original
# call must stay up, audio both ways, and the transferee's own BYE must end it at the parker.
SCENARIO = sys.argv[3] if len(sys.argv) > 3 else "park_retrieve"
if SCENARIO == "takeover_failed":
    REFER_MODE = "takeover"
KEEP = os.environ.get("PARKWAY_KEEP_TMP") == "1"
FREQ = {"B": 1700, "C": 2300}  # apart, and above the built-in music's notes (<= 988 Hz); A is an echo phone
# Parkway's built-in music on hold (module/callpark/wire/moh.cc): notes of four chords, each with its octave.
MOH_NOTES = (174.61, 196.00, 220.00, 246.94, 261.63, 293.66, 329.63, 392.00, 493.88)
MOH_FREQS = sorted(set(MOH_NOTES) | {2 * f for f in MOH_NOTES})
T0 = time.monotonic()


def log(msg):
    print(f"[{time.monotonic() - T0:6.2f}s] {msg}", flush=True)


def free_sip_port():
    """A port free on UDP+TCP whose next port is free on TCP too: baresip listens for SIP/TLS on port + 1."""
    for _ in range(100):
        p = free_port()
        t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            t.bind(("127.0.0.1", p + 1))
            return p
        except OSError:
            continue
        finally:
            t.close()
    raise RuntimeError("no free SIP port pair")


# --------------------------------------------------------------------------------------------- audio checks

def read_wav(path):
    """(rate, samples) of a 16-bit mono WAV that may still be written to (libsndfile fixes the sizes on close,
    so every byte after the data chunk header is taken)."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        return 8000, array.array("h")
    pos, rate = 12, 8000
    while pos + 8 <= len(data):
        cid, size = data[pos:pos + 4], int.from_bytes(data[pos + 4:pos + 8], "little")
        if cid == b"fmt ":
            rate = int.from_bytes(data[pos + 12:pos + 16], "little")
            channels = int.from_bytes(data[pos + 10:pos + 12], "little")
            assert channels == 1, f"{path}: {channels} channels"
        if cid == b"data":
            raw = data[pos + 8:]
            raw = raw[:len(raw) // 2 * 2]
            samples = array.array("h")
            samples.frombytes(raw)
            if sys.byteorder != "little":
                samples.byteswap()
            return rate, samples
        pos += 8 + size + (size & 1)
    return rate, array.array("h")


def rms(x):
    return math.sqrt(sum(v * v for v in x) / len(x)) if len(x) else 0.0


def tone_share(x, freq, rate):
    """Share (0..1) of the energy of x in a narrow band at freq (Goertzel; a pure sine at freq gives ~1)."""
    n = len(x)
    energy = sum(v * v for v in x)
    if n == 0 or energy == 0:
        return 0.0
    k = round(n * freq / rate)
    coeff = 2 * math.cos(2 * math.pi * k / n)
    s1 = s2 = 0.0
    for v in x:
        s0 = v + coeff * s1 - s2
        s2, s1 = s1, s0
    power = s1 * s1 + s2 * s2 - coeff * s1 * s2
    return min(1.0, 2 * power / (n * energy))


def describe_audio(x, rate):
    """Median over 100 ms windows of RMS and of each phone's tone share: robust against a glitch or two."""
    win = rate // 10
    wins = [x[i:i + win] for i in range(0, len(x) - win + 1, win)]
    if not wins:
        return {"seconds": 0.0, "rms": 0.0, **{f: 0.0 for f in FREQ}, "moh": 0.0}

    def median(vals):
        vals = sorted(vals)
        return vals[len(vals) // 2]

    out = {"seconds": round(len(x) / rate, 2), "rms": round(median([rms(w) for w in wins]))}
    for name, f in FREQ.items():
        out[name] = round(median([tone_share(w, f, rate) for w in wins]), 3)
    # Share of the energy at the music's notes (~0.9 for Parkway's built-in music, ~0 for a phone's tone).
    out["moh"] = round(median([min(1.0, sum(tone_share(w, f, rate) for f in MOH_FREQS)) for w in wins]), 3)
    return out


# --------------------------------------------------------------------------------------------- a baresip phone

class Phone:
    """One baresip process with its own config folder, registered to Parkway, driven over ctrl_tcp."""

    def __init__(self, name, user, pw, root, echo=False):
        self.name, self.user, self.echo = name, user, echo
        self.dir = os.path.join(root, f"baresip-{name}")
        self.rec = os.path.join(self.dir, "rec")
        os.makedirs(self.rec)
        self.sip_port = free_sip_port()
        self.ctrl_port = free_port()
        rtp = free_port() // 2 * 2
        self.log_path = os.path.join(self.dir, "baresip.log")
        with open(os.path.join(self.dir, "config"), "w") as f:
            f.write(f"""# generated by tests/interop/test_baresip.py
poll_method		epoll
net_interface		127.0.0.1
sip_listen		127.0.0.1:{self.sip_port}
call_local_timeout	30
call_max_calls		4
{self.audio_config()}audio_alert		none,none
rtp_ports		{rtp}-{rtp + 40}
rtcp_mux		no
module_path		{MODULE_PATH}
module			g711.so
{"module			aubridge.so" if echo else "module			ausine.so"}
module			sndfile.so
snd_path		{self.rec}
module_tmp		account.so
module_app		menu.so
module_app		ctrl_tcp.so
ctrl_tcp_listen		127.0.0.1:{self.ctrl_port}
""")
        with open(os.path.join(self.dir, "accounts"), "w") as f:
            f.write(f'<sip:{user}@{DOMAIN}>;outbound="sip:127.0.0.1:{pw.port};transport=udp";regint=600;'
                    f"answermode=auto;audio_codecs=PCMU,PCMA\n")
        self.proc = None
        self.sock = None
        self.events = []
        self.responses = {}
        self.cond = threading.Condition()
        self.tokens = 0
        self.reader = None

    def audio_config(self):
        if self.echo:
            # What it hears is what it sends back, and the sndfile *encode* file records it (see heard()).
            # (no ringback: menu would play it on the same aubridge device and its end would stop the bridge)
            return ("audio_source\t\taubridge,echo1\naudio_player\t\taubridge,echo1\n"
                    "ringback_disabled\tyes\n")
        # No player module is loaded at all: with one loaded, a player name it does not know fails the call.
        return (f"audio_source\t\tausine,{FREQ[self.name]}\nausrc_srate\t\t48000\nausrc_channels\t\t2\n"
                "audio_player\t\tnone,none\n")

    # -- lifecycle
    def start(self):
        self._log = open(self.log_path, "w")
        # -s: SIP trace into the log (printed when the test fails)
        self.proc = subprocess.Popen([BARESIP, "-f", self.dir, "-s"], stdin=subprocess.DEVNULL, stdout=self._log,
                                     stderr=subprocess.STDOUT)  # same process group: a group kill reaches it
        return self

    def connect(self, timeout=5.0):
        def try_connect():
            if self.proc.poll() is not None:
                raise AssertionError(f"baresip {self.name} exited ({self.proc.returncode})\n{self.log_tail()}")
            try:
                return socket.create_connection(("127.0.0.1", self.ctrl_port), timeout=1)
            except OSError:
                return None
        self.sock = wait_until(try_connect, timeout)
        if not self.sock:
            raise AssertionError(f"baresip {self.name}: ctrl_tcp not listening on {self.ctrl_port}\n{self.log_tail()}")
        self.sock.settimeout(None)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        buf = b""
        while True:
            try:
                chunk = self.sock.recv(65536)
            except OSError:
                return
            if not chunk:
                return
            buf += chunk
            while True:  # netstrings: <len>:<json>,
                colon = buf.find(b":")
                if colon < 0:
                    break
                n = int(buf[:colon])
                if len(buf) < colon + 1 + n + 1:
                    break
                msg = json.loads(buf[colon + 1:colon + 1 + n])
                buf = buf[colon + 1 + n + 1:]
                with self.cond:
                    if msg.get("event"):
                        msg["_t"] = round(time.monotonic() - T0, 2)
                        self.events.append(msg)
                    elif msg.get("response"):
                        self.responses[msg.get("token")] = msg
                    self.cond.notify_all()

    def stop(self):
        """SIGTERM (baresip hangs up and unregisters), then SIGKILL; by PID only."""
        if self.sock:
            try:
                self.sock.close()
            except OSError:
                pass
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(3)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if getattr(self, "_log", None):
            self._log.close()
            self._log = None

    def registered(self):
        """baresip printed its REGISTER's 200 ('1001@pbx.example.com: {0/UDP/v4} 200 OK () [1 binding]')."""
        with open(self.log_path, errors="replace") as f:
            return any(line.startswith(f"{self.user}@{DOMAIN}:") and " 200 OK " in line for line in f)

    # -- ctrl_tcp
    def command(self, cmd, params="", timeout=5.0):
        self.tokens += 1
        token = f"{self.name}{self.tokens}"
        body = json.dumps({"command": cmd, "params": params, "token": token}).encode()
        self.sock.sendall(str(len(body)).encode() + b":" + body + b",")
        with self.cond:
            ok = self.cond.wait_for(lambda: token in self.responses, timeout)
        if not ok:
            raise AssertionError(f"baresip {self.name}: no response to '{cmd} {params}' within {timeout} s")
        resp = self.responses[token]
        if not resp.get("ok"):
            raise AssertionError(f"baresip {self.name}: '{cmd} {params}' failed: {resp}")
        return resp

    def wait_event(self, etype, timeout, pred=lambda e: True, after=0):
        """The first event of type etype (a type or a tuple of types; index >= after) for which pred holds, or
        None."""
        types = (etype,) if isinstance(etype, str) else tuple(etype)

        def find():
            for e in self.events[after:]:
                if e.get("type") in types and pred(e):
                    return e
            return None
        with self.cond:
            self.cond.wait_for(lambda: find() is not None, timeout)
            return find()

    def mark(self):
        with self.cond:
            return len(self.events)

    # -- recordings
    def dec_files(self):
        """What this phone heard, oldest first: sndfile's *-dec.wav files in rec/ (decode filter, after the codec).
        An echo phone's *-enc.wav instead: baresip 1.0 drops the decode filters of a stream that is not sendrecv
        (audio_decoder_set resets them and aufilt_setup does not rebuild them while the encode side has filters),
        which a parked call is (our hold answer is a=sendonly); the echo phone's source is its player's output
        (aubridge), so its encode file is exactly what it played, through jitter buffer, decoder and player."""
        suffix = "-enc.wav" if self.echo else "-dec.wav"
        names = [n for n in os.listdir(self.rec) if n.endswith(suffix)]
        return sorted((os.path.join(self.rec, n) for n in names), key=os.path.getmtime)

    def heard(self, seconds, start=0):
        """(rate, last `seconds` of the newest -dec.wav, but nothing before sample index start)."""
        files = self.dec_files()
        if not files:
            return 8000, array.array("h"), None
        rate, x = read_wav(files[-1])
        return rate, x[max(start, len(x) - int(seconds * rate)):], files[-1]

    def hears(self, seconds):
        rate, x, _ = self.heard(seconds)
        return describe_audio(x, rate)

    def archive_recordings(self, sub):
        """Move the current recordings aside (an open file keeps being written where it moved), so the next call's
        files start fresh even when sndfile names them with the same second."""
        dest = os.path.join(self.rec, sub)
        os.makedirs(dest)
        for n in os.listdir(self.rec):
            if n.endswith(".wav"):
                os.rename(os.path.join(self.rec, n), os.path.join(dest, n))

    # -- diagnostics
    def log_tail(self, n=5000):
        try:
            with open(self.log_path, errors="replace") as f:
                text = f.read()
        except FileNotFoundError:
            return ""
        text = "\n".join(line for line in text.replace("\r", "\n").splitlines() if "audio=" not in line[:40])
        return f"--- baresip {self.name} ({self.user}) log tail:\n{text[-n:]}"

    def describe(self):
        ev = [f"{e['_t']}s {e.get('type')} {e.get('peeruri', '')} {e.get('param', '')}" for e in self.events
              if e.get("type") not in ("CALL_RTCP",)]
        return f"--- baresip {self.name} events:\n" + "\n".join(ev[-30:]) + "\n" + self.log_tail()


# --------------------------------------------------------------------------------------------- the scenario

class Failure(AssertionError):
    pass


def takeover_failed(a, b, a_id, b_id, expect, parked):
    """Takeover mode, transferee without Replaces: A answers our INVITE with Replaces 420, B gets the failure in
    the final sipfrag NOTIFY. Never a half-dead call: either A and B keep talking (and A's own BYE, in its CSeq
    space, ends the call at B, RFC 3261 §12.2.2), or the transferor gives up and its BYE reaches A. baresip 1.0
    as transferor does the latter. Before our NOTIFYs carried A's Contact, B's BYE went to Parkway (481) and A
    stayed in a call with nobody."""
    ma, mb = a.mark(), b.mark()
    b.command("transfer", f"sip:{PARK_CODE}{PARK_EXT}@{DOMAIN}")
    failed = b.wait_event("TRANSFER_FAILED", 8, after=mb)
    expect(failed and "420" in failed.get("param", ""), f"B got no failed-transfer NOTIFY with 420: {failed}")
    time.sleep(1.0)
    expect(not parked(), f"a failed takeover left a parked call: {parked()}")
    mine_a, mine_b = (lambda e: e.get("id") == a_id), (lambda e: e.get("id") == b_id)  # (not Parkway's INVITE)
    if a.wait_event("CALL_CLOSED", 2, mine_a, after=ma):
        # (baresip 1.0 reports no CALL_CLOSED for a call it hangs up itself: A's end is the evidence)
        log("failed takeover: B gave up and its BYE ended A's call: PASS")
        return
    hb, ha = b.hears(1.0), a.hears(1.0)
    log(f"after the failed takeover: B hears {hb}, A hears {ha}")
    expect(ha["B"] > 0.5 and hb["B"] > 0.5, f"no audio after the failed takeover: A {ha}, B {hb}")
    a.command("hangup")
    expect(b.wait_event("CALL_CLOSED", 5, mine_b, after=mb), "A's BYE after the failed takeover did not end B's call")
    log("failed takeover: the call stayed up, A's BYE ended it at B: PASS")


def main():
    if not os.path.exists(BINARY):
        raise SystemExit(f"no parkway binary at {BINARY}")
    missing = [m for m in NEEDED_MODULES if not os.path.exists(os.path.join(MODULE_PATH, m + ".so"))]
    if missing:
        raise SystemExit(f"baresip modules missing in {MODULE_PATH}: {missing} (install baresip-core, or set "
                         "BARESIP_MODULE_PATH)")
    root = tempfile.mkdtemp(prefix="parkway-interop-")
    moh_min = free_port() // 2 * 2
    pw = None
    phones = []

    def fail(msg):
        details = "\n".join(p.describe() for p in phones)
        raise Failure(f"FAIL: {msg}\n{details}")

    def expect(cond, msg):
        if not cond:
            fail(msg)

    def parked():
        status, body = pw.admin("GET", f"/api/parked?domain={DOMAIN}")
        expect(status == 200, f"GET /api/parked answered {status}: {body}")
        return body.get("parked", [])

    ok = False
    try:
        os.makedirs(os.path.join(root, "parkway"))
        pw = Parkway(BINARY, modules=["registrar", "callpark", "router"], admin=True,
                     module_params={"callpark": {"refer_mode": REFER_MODE, "moh_ip": "127.0.0.1",
                                                 "moh_port_min": moh_min,
                                                 "moh_port_max": min(moh_min + 40, 65534)}},
                     proxy={"domains": [DOMAIN, "127.0.0.1"]}, workdir=os.path.join(root, "parkway"),
                     log_level=os.environ.get("PARKWAY_LOG_LEVEL", "info"))
        log(f"parkway up on {pw.sip} (admin {pw.admin_port}), folder {root}")

        a, b, c = Phone("A", "1001", pw, root, echo=True), Phone("B", "1002", pw, root), Phone("C", "1003", pw, root)
        phones += [a, b, c]
        for p in phones:
            p.start()
        for p in phones:
            p.connect()
        for p in phones:  # (REGISTER_OK may come before ctrl_tcp is connected: read the phone's log)
            expect(wait_until(p.registered, 8), f"{p.name} ({p.user}) did not register to Parkway")
        regs = pw.admin("GET", "/api/registrations")
        log(f"A, B, C registered; registrar: {json.dumps(regs[1])[:600]}")

        # 1. A calls B (B answers on its own). A is an echo phone: B hears its own tone come back through A.
        a.command("dial", f"sip:1002@{DOMAIN}")
        a_call = a.wait_event("CALL_ESTABLISHED", 10)
        expect(a_call, "A's call to 1002 was not established")
        b_call = b.wait_event("CALL_ESTABLISHED", 5)
        expect(b_call, "B never saw the call from A established")
        time.sleep(1.5)
        hb, ha = b.hears(1.0), a.hears(1.0)
        log(f"A<->B talking: B hears {hb}, A hears {ha}")
        expect(ha["B"] > 0.5, f"A does not hear B's {FREQ['B']} Hz tone: {ha}")
        expect(hb["B"] > 0.5, f"B does not hear its {FREQ['B']} Hz tone back from the echo phone A: {hb}")
        a.archive_recordings("call-with-B")

        if SCENARIO == "takeover_failed":
            takeover_failed(a, b, a_call.get("id"), b_call.get("id"), expect, parked)
            ok = True
            return 0
        # 2. B parks A by blind transfer to *68<ext>: REFER relayed to A, A's INVITE *68<ext> parked.
        ma, mb = a.mark(), b.mark()
        b.command("transfer", f"sip:{PARK_CODE}{PARK_EXT}@{DOMAIN}")
        park_call = a.wait_event(("CALL_ESTABLISHED", "CALL_CLOSED"), 10,
                                 lambda e: f"{PARK_CODE}{PARK_EXT}" in e.get("peeruri", ""), after=ma)
        if not park_call or park_call["type"] != "CALL_ESTABLISHED":
            fail(f"A's INVITE to {PARK_CODE}{PARK_EXT} (after B's REFER) was not answered 200"
                 + (f" (call closed: {park_call.get('param')})" if park_call else " within 10 s"))
        log(f"A's call to {PARK_CODE}{PARK_EXT} established (call {park_call.get('id')})")
        calls = wait_until(lambda: [c for c in parked() if str(c.get("extension")) == PARK_EXT], 5)
        expect(calls, f"Parkway lists no call parked on {PARK_EXT}: {parked()}")
        expect(len(calls) == 1 and len(parked()) == 1, f"want exactly one parked call: {parked()}")
        log(f"parked: {json.dumps(calls[0])[:300]}")
        expect(b.wait_event("CALL_CLOSED", 8, after=mb), "B's call with A did not end after the transfer "
               "(no final NOTIFY sipfrag 200 reached B?)")
        expect(a.wait_event("CALL_CLOSED", 5, lambda e: e.get("id") != park_call.get("id"), after=ma),
               "A's first call (with B) did not end after the transfer")
        log("B's call with A ended after the transfer")
        # aubridge devices are per name and the closed call's player stopped the shared device: give the park call
        # a fresh one (ctrl commands act on the current call).
        a.command("auplay", "aubridge,echo2")
        a.command("ausrc", "aubridge,echo2")

        # 3. Music on hold reaches A: at least 2 s of what A plays after the switch, judged from 0.5 s on.
        rate, x, moh_file = a.heard(0)
        mark0 = len(read_wav(moh_file)[1]) if moh_file else 0
        if not wait_until(lambda: len(a.heard(10, start=mark0)[1]) >= int(2.5 * rate), 6):
            stat = a.command("audio_debug").get("data", "")
            fail(f"A played {len(a.heard(10, start=mark0)[1]) / rate:.2f} s on the park call in 6 s "
                 f"(want 2.5 s of music); A's audio_debug:\n{stat}")
        rate, x, f = a.heard(2.0, start=mark0 + rate // 2)
        hm = describe_audio(x, rate)
        log(f"A while parked hears {hm}")
        expect(f == moh_file, f"A's recording changed files while parked ({moh_file} -> {f})")
        expect(hm["rms"] > 500, f"A hears silence while parked (no music on hold): {hm}")
        expect(max(hm[n] for n in FREQ) < 0.3, f"A hears a phone's tone while parked, not music: {hm}")
        expect(hm["moh"] > 0.5, f"what A hears while parked is not Parkway's music (energy off its notes): {hm}")

        # 4. C retrieves with *88<ext>: Parkway re-INVITEs A with C's offer, bridges; RTP flows A <-> C directly.
        mark1 = len(read_wav(moh_file)[1])
        mc, ma = c.mark(), a.mark()
        c.command("dial", f"sip:*88{RETRIEVE_EXT}@{DOMAIN}")
        got = c.wait_event(("CALL_ESTABLISHED", "CALL_CLOSED"), 10, after=mc)
        if not got or got["type"] != "CALL_ESTABLISHED":
            fail(f"C's retrieve *88{RETRIEVE_EXT} was not established"
                 + (f" (call closed: {got.get('param')})" if got else " within 10 s"))
        log("C's retrieve established")
        expect(wait_until(lambda: not parked(), 5), f"still parked after the retrieve: {parked()}")
        time.sleep(2.5)
        hc = c.hears(1.5)
        rate, x, f = a.heard(1.5, start=mark1)
        ha = describe_audio(x, rate)
        log(f"after retrieve: C hears {hc}; A hears {ha}")
        expect(f == moh_file, f"A started a new recording after the retrieve ({f}): a new stream?")
        expect(ha["C"] > 0.5, f"A does not hear C's {FREQ['C']} Hz tone after the retrieve (RTP C->A): {ha}")
        expect(hc["C"] > 0.5, f"C does not hear its {FREQ['C']} Hz tone back through A after the retrieve "
               f"(RTP A->C): {hc}")
        expect(ha["moh"] < 0.2, f"A still hears music on hold after the retrieve: {ha}")

        # 5. C hangs up: Parkway relays the BYE to A.
        c.command("hangup")
        expect(a.wait_event("CALL_CLOSED", 5, lambda e: e.get("id") == park_call.get("id"), after=ma),
               "C's hang-up did not end A's call")
        expect(not parked(), f"parked calls at the end: {parked()}")
        log("C hung up, A's call ended, nothing parked: PASS")
        ok = True
    except Exception as e:  # noqa: BLE001 -- report everything, then clean up
        print(str(e) if isinstance(e, Failure) else f"FAIL: {type(e).__name__}: {e}", flush=True)
        if not isinstance(e, Failure):
            print("\n".join(p.describe() for p in phones), flush=True)
        if pw is not None:
            print(f"---- parkway log ({pw.log_path}):\n{pw.log()[-8000:]}", flush=True)
    finally:
        for p in phones:
            p.stop()
        if pw is not None:
            pw.close()
        if KEEP or not ok:
            print(f"kept {root}" if KEEP else f"(set PARKWAY_KEEP_TMP=1 to keep {root})")
        if not KEEP:
            shutil.rmtree(root, ignore_errors=True)
        log(f"done ({'PASS' if ok else 'FAIL'})")
    return 0 if ok else 1


if __name__ == "__main__":
    # ctest's TIMEOUT (or a CI cancel) sends SIGTERM: leave through main()'s finally, which stops every process.
    def _terminate(*_):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second SIGTERM must not cut the clean-up short
        sys.exit(143)

    signal.signal(signal.SIGTERM, _terminate)
    sys.exit(main())
