#!/usr/bin/env bash
# Installs every Debian 12 package Parkway needs to build, run and test. Idempotent: installs only what is
# missing. Uses sudo when not root.
set -euo pipefail

PACKAGES=(
  # build tools
  build-essential g++ cmake ninja-build make pkg-config
  # libraries
  libsofia-sip-ua-dev libevent-dev libsqlite3-dev libfmt-dev libtomlplusplus-dev nlohmann-json3-dev libcli11-dev
  libre2-dev libpq-dev libc-ares-dev libutfcpp-dev libssl-dev libcurl4-openssl-dev
  libspandsp-dev # G.722 music on hold (docs/callpark.md)
  libsystemd-dev # sd_notify for the Type=notify unit (docs/install.md); optional at build
  # packaging (docs/install.md): cpack -G DEB runs dpkg-shlibdeps (dpkg-dev) and file; systemd-analyze checks the unit
  dpkg-dev file systemd
  catch2
  # tests and tools
  sip-tester python3 curl sqlite3 openssl sipvicious baresip-core
  postgresql # the engine suite on PostgreSQL (tests/engine/pg_fixture.sh runs initdb + pg_ctl; docs/cluster.md)
  kamailio # tests/interop/test_kamailio.py: Parkway behind a real Kamailio 5.6 (docs/carrier.md)
  # parkway-replay (docs/replay.md): libpcap reads captures; tshark records real clients (baresip, linphone)
  libpcap-dev tshark sngrep linphone-cli
  # the operator console's browser test (tests/console; docs/console.md): Debian's Chromium, driven by
  # playwright-core from npm (node + npm: below, only when no node/npm is installed)
  chromium
  # fuzzing (scripts/fuzz.sh): clang 14 with libFuzzer and the sanitizer runtimes; libxml2 checks XML bodies
  clang-14 libclang-rt-14-dev libxml2-dev
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

# node and npm (the console's browser test installs playwright-core with npm ci): Debian's nodejs + npm, unless a
# node with its npm is installed already (e.g. NodeSource's nodejs, which carries npm and conflicts with Debian's).
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  for p in nodejs npm; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
fi

if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#PACKAGES[@]} packages already installed"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  # sudo drops the environment: pass DEBIAN_FRONTEND through it (tshark's debconf question must not block)
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo DEBIAN_FRONTEND=noninteractive"; else
    echo "setup: need root (or sudo) to install: ${missing[*]}" >&2; exit 1
  fi
fi
echo "setup: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
