#!/usr/bin/env python3
"""Black-box tests of the operator plane against the real daemon with the call-park module:

    test_admin_blackbox.py <parkway binary> <parkctl binary> <case>

A call is parked with SIPp; `parkctl parked` lists it, /metrics shows it, a reload (API and SIGHUP) keeps it,
the event stream reports it, a retrieve empties the list and moves the totals. Every process started here is
stopped here.
"""
import json
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from parkway_blackbox import Parkway, Sipp, free_port, scenario, wait_until  # noqa: E402

BINARY, PARKCTL, CASE = sys.argv[1], sys.argv[2], sys.argv[3]
PARK = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "examples", "sipp", "park")
DOMAIN = "pbx.example.com"
MODULES = ["registrar", "callpark", "router"]
# The park engine keeps its own SQLite file (the core's database holds the registrar's tables). Relative to
# the daemon's working directory, which is its temp folder.
PARAMS = {"callpark": {"database": "park.db"}}


def parkctl(pw, *args, token=None, url=None, timeout=20):
    cmd = [PARKCTL, "--url", url or f"http://127.0.0.1:{pw.admin_port}",
           "--token", pw.admin_token if token is None else token, *args]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    return p.returncode, p.stdout, p.stderr


def metric(text, name, labels=None):
    """Value of one sample in Prometheus text (labels: dict that must all match), or None."""
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        m = re.match(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$', line)
        if not m or m.group(1) != name:
            continue
        got = dict(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"', m.group(3) or ""))
        if all(got.get(k) == v for k, v in (labels or {}).items()):
            return float(m.group(4))
    return None


def park_call(pw, ext="103", user="2001"):
    """The parked party (stays in the call until Parkway or the retriever ends it)."""
    return Sipp(os.path.join(PARK, "park_call.xml"), remote=pw.sip, calls=1, timeout=60,
                extra=["-key", "domain", DOMAIN, "-key", "user", user, "-key", "display", "Alice",
                       "-key", "dial", f"*68{ext}", "-key", "extra", "X-Test: 1", "-key", "codecs", "0 8",
                       "-key", "moh_port", str(free_port())]).start()


def subscriptions(pw):
    rc, out, err = parkctl(pw, "--json", "stats")
    assert rc == 0, (rc, out, err)
    return json.loads(out)["modules"]["callpark"]["subscriptions"]


def parked_list(pw):
    rc, out, err = parkctl(pw, "--json", "parked")
    assert rc == 0, (rc, out, err)
    return json.loads(out)["parked"]


def case_park_list_metrics_reload_retrieve():
    with Parkway(BINARY, modules=MODULES, module_params=PARAMS, admin=True) as pw:
        # The event stream, started before the park.
        events = subprocess.Popen([PARKCTL, "--url", f"http://127.0.0.1:{pw.admin_port}", "--token",
                                   pw.admin_token, "--json", "events", "--types", "parked", "--count", "1"],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            time.sleep(0.3)  # let the stream subscribe (an event before that would not be replayed)
            parked_party = park_call(pw)
            calls = wait_until(lambda: parked_list(pw), 15)
            assert len(calls) == 1, calls
            call = calls[0]
            assert call["domain"] == DOMAIN and call["extension"] == "103", call

            # The table a user sees.
            rc, out, err = parkctl(pw, "parked")
            assert rc == 0, (out, err)
            header, row = out.splitlines()[0], out.splitlines()[1]
            assert header.startswith("ID") and "EXTENSION" in header and "PARKED FOR" in header, out
            assert str(call["id"]) in row and "103" in row and DOMAIN in row, out

            rc, out, err = parkctl(pw, "parked", "get", str(call["id"]))
            assert rc == 0 and "extension:" in out and "103" in out, (out, err)

            # The event stream saw the park.
            out, err = events.communicate(timeout=10)
            assert events.returncode == 0, (out, err)
            ev = json.loads(out.splitlines()[0])
            assert ev["type"] == "parked" and ev["data"]["call"]["extension"] == "103", ev
        finally:
            if events.poll() is None:
                events.kill()
                events.wait()

        # Metrics after the park.
        rc, text, err = parkctl(pw, "metrics")
        assert rc == 0, err
        assert metric(text, "parkway_parked_calls", {"domain": DOMAIN}) == 1, text
        assert metric(text, "parkway_parks_total", {"domain": DOMAIN}) == 1, text
        assert metric(text, "parkway_build_info") == 1, text
        assert metric(text, "parkway_uptime_seconds") is not None, text

        # A BLF watcher on the slot (RFC 4235): it checks every NOTIFY version itself (+1, no gaps).
        watcher = Sipp(os.path.join(PARK, "blf_watch.xml"), remote=pw.sip, calls=1, timeout=40,
                       extra=["-key", "domain", DOMAIN, "-key", "user", "1020", "-key", "watch", "*88103",
                              "-key", "expires", "600"]).start()
        assert wait_until(lambda: subscriptions(pw) == 1, 10), parkctl(pw, "stats")

        # Reload through the API and with SIGHUP: the call stays parked, the watcher stays subscribed.
        rc, out, err = parkctl(pw, "reload")
        assert rc == 0 and out.strip() == "reloaded", (rc, out, err)
        rc, out, err = parkctl(pw, "rules", "reload")
        assert rc == 0, (rc, out, err)
        pw.reload()
        time.sleep(0.5)
        assert pw.alive()
        calls = parked_list(pw)
        assert len(calls) == 1 and calls[0]["id"] == call["id"], calls
        assert subscriptions(pw) == 1

        # Retrieve it: the list empties, the totals move, the duration is observed.
        retriever = Sipp(os.path.join(PARK, "retrieve.xml"), remote=pw.sip, calls=1, timeout=30,
                         variables={"talk_ms": 500},
                         extra=["-key", "domain", DOMAIN, "-key", "user", "1003", "-key", "display", "Bob",
                                "-key", "dial", "*88103", "-key", "extra", "X-Test: 1", "-key", "codecs", "0 8",
                                ]).run()
        assert retriever.successful == 1, retriever.output[-3000:] + retriever.errors[-2000:]
        assert wait_until(lambda: parked_list(pw) == [], 10)
        rc, text, _ = parkctl(pw, "metrics")
        assert metric(text, "parkway_retrieves_total", {"domain": DOMAIN}) == 1, text
        assert metric(text, "parkway_parked_calls", {"domain": DOMAIN}) == 0, text
        assert metric(text, "parkway_park_duration_seconds_count", {"domain": DOMAIN}) == 1, text
        assert metric(text, "parkway_park_duration_seconds_bucket", {"domain": DOMAIN, "le": "+Inf"}) == 1, text
        parked_party.stop() if parked_party.proc.poll() is None else parked_party.wait(5)
        # The watcher saw consistent versions across the reloads and the retrieve, then unsubscribed.
        watcher.wait().check(successful=1)

        rc, out, _ = parkctl(pw, "parked")
        assert rc == 0 and out.strip() == "no parked calls", out


def case_recall_and_hangup():
    """Force a recall, then hang up a parked call, through parkctl."""
    with Parkway(BINARY, modules=MODULES, module_params=PARAMS, admin=True) as pw:
        parked_party = park_call(pw)
        calls = wait_until(lambda: parked_list(pw), 15)
        assert len(calls) == 1, calls
        cid = str(calls[0]["id"])

        rc, out, err = parkctl(pw, "recall", cid)
        assert rc == 0 and out.strip() == f"recall started for parked call {cid}", (rc, out, err)
        assert wait_until(lambda: metric(parkctl(pw, "metrics")[1], "parkway_recalls_total", {"domain": DOMAIN}) == 1,
                        10), parkctl(pw, "metrics")[1]

        rc, out, err = parkctl(pw, "hangup", cid)
        assert rc == 0 and out.strip() == f"parked call {cid} hung up", (rc, out, err)
        assert wait_until(lambda: parked_list(pw) == [], 10)
        # The parked party got its BYE and finished its scenario.
        res = parked_party.wait(20)
        assert res.successful == 1, res.output[-3000:] + res.errors[-2000:]
        rc, out, err = parkctl(pw, "hangup", cid)
        assert rc == 1 and "404" in err, (rc, out, err)


def case_api_against_daemon():
    """Auth, endpoints, bad JSON and parkctl exit codes against the real daemon and modules."""
    with Parkway(BINARY, modules=MODULES, module_params=PARAMS, admin=True) as pw:
        st, body = pw.admin("GET", "/api/parked", token="wrong")
        assert st == 401 and "token" in body["error"], (st, body)
        st, body = pw.admin("GET", "/api/parked")
        assert st == 200 and body == {"parked": []}, (st, body)

        # Groups CRUD through parkctl.
        rc, out, err = parkctl(pw, "groups", "add", "sales", "1001", "1002", "1003", "--domain", DOMAIN)
        assert rc == 0, (rc, out, err)
        st, body = pw.admin("GET", f"/api/groups?domain={DOMAIN}")
        assert st == 200, body
        sales = [g for g in body["groups"] if g["name"] == "sales"]
        assert sales and sales[0]["members"] == ["1001", "1002", "1003"], body
        rc, out, err = parkctl(pw, "groups")
        assert rc == 0 and "sales" in out and "1001,1002,1003" in out, (out, err)
        rc, out, err = parkctl(pw, "groups", "del", "sales", "--domain", DOMAIN)
        assert rc == 0, (rc, out, err)
        st, body = pw.admin("GET", f"/api/groups?domain={DOMAIN}")
        assert not [g for g in body["groups"] if g["name"] == "sales"], body

        # Bad JSON: 400 that says where.
        import urllib.request
        req = urllib.request.Request(f"http://127.0.0.1:{pw.admin_port}/api/groups/{DOMAIN}/x",
                                     data=b'{"members": [1001, }', method="PUT")
        req.add_header("Authorization", f"Bearer {pw.admin_token}")
        try:
            urllib.request.urlopen(req, timeout=5)
            raise AssertionError("expected 400")
        except urllib.error.HTTPError as e:
            assert e.code == 400
            msg = json.loads(e.read().decode())["error"]
            assert "at byte 20" in msg, msg

        # Rules: load a file, list it, explain uses it; a broken file changes nothing and names the line.
        rules = os.path.join(pw.dir, "rules.tsv")
        with open(rules, "w") as f:
            f.write("# lot main\n1\t\t0\t10\texact\t700\t0\t\t\taction=park;lot=main\n")
        rc, out, err = parkctl(pw, "lots", "set", "main", "first=701", "last=720", "--domain", DOMAIN)
        assert rc == 0, (rc, out, err)
        rc, out, err = parkctl(pw, "rules", "load", rules, "--replace")
        assert rc == 0 and "rules loaded" in out, (rc, out, err)
        rc, out, err = parkctl(pw, "rules")
        assert rc == 0 and "action=park;lot=main" in out and out.startswith("ID"), (rc, out, err)
        rc, out, err = parkctl(pw, "--json", "explain", DOMAIN, "1003", "700")
        assert rc == 0, (rc, out, err)
        result = json.loads(out)["result"]
        assert result["action"] == "park" and result["lot"] == "main", out
        with open(rules, "w") as f:
            f.write("1\t\t0\t10\tregex\t^(7\t0\t\t\taction=park\n")
        rc, out, err = parkctl(pw, "rules", "load", rules)
        assert rc == 1 and "400" in err, (rc, out, err)
        rc, out, err = parkctl(pw, "--json", "rules")
        assert [r["match_exp"] for r in json.loads(out)["rules"]] == ["700"], out

        # Explain, stats, registrations, commands answer.
        rc, out, err = parkctl(pw, "--json", "explain", DOMAIN, "1003", "*68103")
        assert rc == 0, (rc, out, err)
        json.loads(out)
        for args in (["stats"], ["registrations"], ["commands"], ["rules"], ["lots"], ["domains"], ["health"]):
            rc, out, err = parkctl(pw, *args)
            assert rc == 0, (args, rc, out, err)
        rc, out, err = parkctl(pw, "parked", "get", "999999")
        assert rc == 1 and "404" in err, (rc, out, err)
        rc, out, err = parkctl(pw, "stats", token="nope")
        assert rc == 4 and "unauthorized" in err, (rc, out, err)
        url = f"http://127.0.0.1:{pw.admin_port}"
        pw.stop()
        rc, out, err = parkctl(pw, "parked", url=url)
        assert rc == 3 and f"parkway is not reachable at {url}" in err, (rc, out, err)


if __name__ == "__main__":
    globals()["case_" + CASE]()
    print(f"ok {CASE}")
