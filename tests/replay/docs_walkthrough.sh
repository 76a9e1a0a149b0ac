#!/bin/bash
# The QA walkthrough at the top of docs/replay.md ("From a capture to a test, end to end"), run for real: a
# daemon on 127.0.0.1:5090, tshark, two SIPp parks on 103 and two retrieves, import, run (passes), the
# provisioning changed to occupied_policy = "reject" and SIGHUP, run again (fails with a diff). Each command is
# printed as run ("$ ..."), then its output; the docs' blocks are this output.
#   tests/replay/docs_walkthrough.sh [BUILD_DIR]     (from the repo root; needs tshark, sipp, ports 5090, 5101-5104)
# Every process it starts it stops by PID. The folder is /tmp/parkway-walkthrough (left for a look).
set -u
B=$(realpath ${1:-build}); REPO=$(pwd)
export PATH=$B/bin:$PATH
Q=/tmp/parkway-walkthrough; rm -rf $Q; mkdir -p $Q; cd $Q
cat > parkway.toml <<'TOML'
[proxy]
listen = ["udp:127.0.0.1:5090"]
domains = ["pbx.example.com"]
database = "parkway.db"

[auth]
unauthenticated_domains = ["pbx.example.com"]   # the test phones send no digest

[modules]
load = ["registrar", "callpark", "router"]

[module.callpark]
provision_file = "provision.toml"
TOML
cat > provision.toml <<'TOML'
[[domain]]
name = "pbx.example.com"
occupied_policy = "stack"    # a second park on a busy extension waits behind the first
TOML
run() { echo "\$ $*"; eval "$@"; }
parkway --config parkway.toml >> parkway.log 2>&1 < /dev/null & PW=$!
sleep 1.5
echo "\$ tshark -i lo -f \"udp port 5090\" -w park.pcapng"
tshark -i lo -f "udp port 5090" -w park.pcapng > tshark.out 2>&1 < /dev/null & TS=$!
until grep -q "Capturing on" tshark.out; do sleep 0.1; done; sleep 0.5; grep "Capturing on" tshark.out
cp -r $REPO/examples/sipp/park sipp; cd sipp
PARKED=""
for u in 1 2; do
  echo "\$ sipp 127.0.0.1:5090 -p 510$u -sf park_call.xml -m 1 -trace_logs -log_file park-200$u.log -key domain pbx.example.com -key user 200$u -key display 'Caller 200$u' -key dial '*68103' -key extra 'Referred-By: <sip:1003@pbx.example.com>' -key codecs '0 8' -key moh_port 520$u -nostdin &"
  sipp 127.0.0.1:5090 -p 510$u -sf park_call.xml -m 1 -trace_logs -log_file park-200$u.log -key domain pbx.example.com -key user 200$u -key display "Caller 200$u" -key dial '*68103' -key extra 'Referred-By: <sip:1003@pbx.example.com>' -key codecs '0 8' -key moh_port 520$u -nostdin > /dev/null 2>&1 < /dev/null & PARKED="$PARKED $!"
  sleep 1
done
for u in 3 4; do
  echo "\$ sipp 127.0.0.1:5090 -p 510$u -sf retrieve.xml -m 1 -trace_logs -log_file retrieve-101$((u-3)).log -key domain pbx.example.com -key user 101$((u-3)) -key display Bob -key dial '*88103' -key extra 'X-Test: 1' -key codecs '0 8' -set talk_ms 1000 -nostdin"
  sipp 127.0.0.1:5090 -p 510$u -sf retrieve.xml -m 1 -trace_logs -log_file retrieve-101$((u-3)).log -key domain pbx.example.com -key user 101$((u-3)) -key display Bob -key dial '*88103' -key extra 'X-Test: 1' -key codecs '0 8' -set talk_ms 1000 -nostdin > /dev/null 2>&1 < /dev/null
done
wait $PARKED; sleep 1
run "cat park-*.log retrieve-*.log"
cd $Q
echo "^C"; kill -INT $TS; wait $TS; grep "packets captured" tshark.out
run 'parkway-replay import park.pcapng -o park.json; echo "exit $?"'
run 'parkway-replay run park.json --server udp:127.0.0.1:5090; echo "exit $?"' 
run "sed -i 's/\"stack\"/\"reject\"/' provision.toml"
echo "\$ kill -HUP \$(pidof parkway)        # re-reads provision.toml"
kill -HUP $PW; sleep 1
run 'parkway-replay run park.json --server udp:127.0.0.1:5090; echo "exit $?"'
kill $PW; wait $PW
