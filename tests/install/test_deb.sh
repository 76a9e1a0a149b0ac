#!/usr/bin/env bash
# The Debian package test (docs/install.md): build the .deb with cpack from an already built tree, install it
# with apt-get (dependencies resolve from the package's Depends), check what it installed (config check, unit,
# modules, a start of the packaged daemon), then purge it and check nothing of it is left.
# It installs a system package: run as root in a throwaway machine (scripts/test.sh decides when).
# usage: test_deb.sh [BUILD_DIR]   (default build)
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD=$(cd "${1:-${BUILD_DIR:-build}}" && pwd)
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo -n"; fi
export DEBIAN_FRONTEND=noninteractive
TMP=$(mktemp -d "${TMPDIR:-/tmp}/parkway-deb-XXXXXX")
PID=""
INSTALLED=0
cleanup() {
  if [ -n "$PID" ] && kill -0 "$PID" 2>/dev/null; then kill "$PID"; wait "$PID" || true; fi
  if [ "$INSTALLED" = 1 ]; then $SUDO apt-get purge -y -q parkway >/dev/null 2>&1 || true; fi
  rm -rf "$TMP"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
step() { echo "---- $*"; }

if dpkg-query -W -f='${Status}' parkway 2>/dev/null | grep -q "install ok installed"; then
  fail "a parkway package is already installed on this machine; not touching it (apt-get purge parkway first)"
fi

step "cpack -G DEB"
(cd "$BUILD" && cpack -G DEB -B "$TMP/pkg" >"$TMP/cpack.log" 2>&1) || { cat "$TMP/cpack.log"; fail "cpack"; }
DEB=$(ls "$TMP"/pkg/parkway_*.deb)
dpkg-deb -f "$DEB" Depends | grep -q "libsofia-sip-ua0" || fail "Depends (dpkg-shlibdeps) lacks libsofia-sip-ua0"
dpkg-deb -e "$DEB" "$TMP/control"
grep -qx "/etc/parkway/parkway.toml" "$TMP/control/conffiles" || fail "parkway.toml is not a conffile"

step "apt-get install $DEB"
chmod 755 "$TMP" "$TMP/pkg" # apt's sandbox user reads the .deb
INSTALLED=1
$SUDO apt-get install -y -q --no-install-recommends "$DEB" >"$TMP/apt.log" 2>&1 || { cat "$TMP/apt.log"; fail "install"; }
dpkg -L parkway >"$TMP/files"
if command -v deb-systemd-helper >/dev/null 2>&1; then # postinst enables the unit, as debhelper would
  [ -L /etc/systemd/system/multi-user.target.wants/parkway.service ] || fail "parkway.service not enabled"
fi

step "parkway --check-config /etc/parkway/parkway.toml"
out=$(/usr/bin/parkway --check-config /etc/parkway/parkway.toml) || fail "check-config: $out"
echo "$out" | grep -q "config OK" || fail "check-config: $out"
for m in registrar router callpark; do
  [ -f /usr/lib/parkway/modules/$m.so ] || fail "module $m not installed"
done
dump=$(/usr/bin/parkway --dump-config)
grep -q "modules found in /usr/lib/parkway/modules)" <<<"$dump" ||
  fail "the packaged daemon does not look in /usr/lib/parkway/modules"
UNIT=/lib/systemd/system/parkway.service
[ -f "$UNIT" ] || fail "no $UNIT"
grep -qx "ExecStart=/usr/bin/parkway --config /etc/parkway/parkway.toml" "$UNIT" || fail "unit ExecStart"
grep -qx "StateDirectory=parkway" "$UNIT" || fail "unit StateDirectory"
if command -v systemd-analyze >/dev/null 2>&1; then
  systemd-analyze verify "$UNIT" || fail "systemd-analyze verify $UNIT"
  echo "ok: systemd-analyze verify"
else
  echo "note: systemd-analyze not installed; unit not verified"
fi
grep -q "/var/lib/parkway/parkway.db" /etc/parkway/parkway.toml || fail "packaged config keeps its database elsewhere"

step "the packaged examples build against the packaged SDK and engine (find_package(Parkway) in /usr)"
for ex in hello-module engine-embed; do
  { cmake -S /usr/share/parkway/examples/$ex -B "$TMP/build-$ex" && cmake --build "$TMP/build-$ex"; } \
    >"$TMP/$ex.log" 2>&1 || { cat "$TMP/$ex.log"; fail "out-of-tree build of /usr/share/parkway/examples/$ex"; }
done
"$TMP/build-engine-embed/engine_embed" | grep -E "retrieved call [0-9]+ parked on 103; 0 calls left"

step "the packaged daemon starts with the packaged config (loopback, free ports, temp state)"
cp /etc/parkway/* "$TMP/"
sed -i -e 's#:5060"#:0"#g' -e "s#/var/lib/parkway#$TMP#g" "$TMP/parkway.toml"
/usr/bin/parkway --config "$TMP/parkway.toml" >"$TMP/daemon.log" 2>&1 &
PID=$!
for _ in $(seq 100); do
  grep -q "ready: listening on" "$TMP/daemon.log" && break
  kill -0 "$PID" 2>/dev/null || break
  sleep 0.1
done
grep -q "ready: listening on" "$TMP/daemon.log" || { cat "$TMP/daemon.log"; fail "packaged daemon did not start"; }
kill "$PID"
rc=0; wait "$PID" || rc=$?
PID=""
[ "$rc" = 0 ] || { cat "$TMP/daemon.log"; fail "packaged daemon exited $rc on SIGTERM"; }
echo "ok: started and stopped"

step "apt-get purge parkway"
$SUDO apt-get purge -y -q parkway >"$TMP/purge.log" 2>&1 || { cat "$TMP/purge.log"; fail "purge"; }
INSTALLED=0
if dpkg-query -W -f='${Status}' parkway 2>/dev/null | grep -q "installed"; then fail "still installed after purge"; fi
left=""
while read -r f; do
  case "$f" in /usr/* | /etc/parkway* | /lib/systemd/system/parkway*) ;; *) continue ;; esac
  [ -d "$f" ] && continue # shared folders (/usr/lib, ...) stay
  [ -e "$f" ] && left="$left $f"
done <"$TMP/files"
[ -d /usr/lib/parkway ] && left="$left /usr/lib/parkway"
[ -d /usr/include/parkway ] && left="$left /usr/include/parkway"
[ -d /usr/share/parkway ] && left="$left /usr/share/parkway"
[ -e /etc/parkway ] && left="$left /etc/parkway"
# deb-systemd-helper's enablement link and its state (a dangling link counts: -L, not -e).
for f in /etc/systemd/system/multi-user.target.wants/parkway.service \
         /var/lib/systemd/deb-systemd-helper-enabled/parkway.service.dsh-also \
         /var/lib/systemd/deb-systemd-helper-enabled/multi-user.target.wants/parkway.service; do
  if [ -L "$f" ] || [ -e "$f" ]; then left="$left $f"; fi
done
[ -z "$left" ] || fail "left after purge:$left"
echo "PASS: .deb built, installed, checked and purged cleanly"
