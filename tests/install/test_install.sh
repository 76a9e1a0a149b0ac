#!/usr/bin/env bash
# The install test (docs/install.md): `cmake --install` into a temp prefix, then from the installed files only:
# build examples/hello-module and examples/engine-embed out of tree with find_package(Parkway), build hello.c
# again with pkg-config, run the embed example, and start the installed daemon with the out-of-tree module
# (installed_daemon.py). Everything goes in one temp folder, removed at exit.
# usage: test_install.sh BUILD_DIR SOURCE_DIR
set -euo pipefail
BUILD=$(cd "$1" && pwd)
SRC=$(cd "$2" && pwd)
TMP=$(mktemp -d "${TMPDIR:-/tmp}/parkway-install-XXXXXX")
trap 'rm -rf "$TMP"' EXIT
PREFIX=$TMP/prefix
GEN=()
if command -v ninja >/dev/null 2>&1; then GEN=(-G Ninja); fi
step() { echo "---- $*"; }

step "cmake --install into $PREFIX"
cmake --install "$BUILD" --prefix "$PREFIX" >"$TMP/install.log" || { cat "$TMP/install.log"; exit 1; }
for f in bin/parkway bin/parkctl lib/parkway/modules/registrar.so lib/parkway/modules/router.so \
         lib/parkway/modules/callpark.so include/parkway/module.h include/parkway/engine/engine.hh \
         lib/libparkway_engine.a lib/cmake/Parkway/ParkwayConfig.cmake lib/cmake/Parkway/ParkwayConfigVersion.cmake \
         lib/pkgconfig/parkway-module.pc lib/pkgconfig/parkway-engine.pc lib/systemd/system/parkway.service \
         etc/parkway/parkway.toml share/parkway/examples/parkway.toml share/doc/parkway/install.md; do
  [ -e "$PREFIX/$f" ] || { echo "FAIL: not installed: $f"; exit 1; }
done
# The whole SDK header folder is installed, whatever it holds.
(cd "$SRC/module/include" && find parkway -type f) | while read -r h; do
  [ -f "$PREFIX/include/$h" ] || { echo "FAIL: header not installed: include/$h"; exit 1; }
done
grep -q "^ExecStart=$PREFIX/bin/parkway --config $PREFIX/etc/parkway/parkway.toml\$" \
  "$PREFIX/lib/systemd/system/parkway.service" || { echo "FAIL: unit ExecStart"; exit 1; }

# Out of tree, from copies of the examples so nothing of the source tree is reachable.
cp -r "$SRC/examples/hello-module" "$SRC/examples/engine-embed" "$TMP/"
for ex in hello-module engine-embed; do
  step "out-of-tree build of examples/$ex with find_package(Parkway)"
  cmake -S "$TMP/$ex" -B "$TMP/build-$ex" "${GEN[@]}" -DCMAKE_PREFIX_PATH="$PREFIX" >"$TMP/$ex.log" 2>&1 &&
    cmake --build "$TMP/build-$ex" >>"$TMP/$ex.log" 2>&1 || { cat "$TMP/$ex.log"; exit 1; }
done
"$TMP/build-engine-embed/engine_embed" | grep -E "retrieved call [0-9]+ parked on 103; 0 calls left"
nm -D --defined-only "$TMP/build-hello-module/hello.so" | grep " T pw_module_entry$" >/dev/null

step "pkg-config: hello.c with parkway-module, the embed example with parkway-engine"
export PKG_CONFIG_PATH="$PREFIX/lib/pkgconfig"
mkdir -p "$TMP/pc"
cc -std=c99 -Wall -Werror -shared -fPIC -fvisibility=hidden -Wl,--no-undefined \
  $(pkg-config --cflags parkway-module) "$TMP/hello-module/hello.c" -o "$TMP/pc/hello.so"
c++ "$TMP/engine-embed/main.cc" $(pkg-config --cflags --libs parkway-engine) -o "$TMP/pc/engine_embed"
"$TMP/pc/engine_embed" | grep -E "retrieved call [0-9]+ parked on 103; 0 calls left"

step "the installed daemon with the out-of-tree module"
python3 "$SRC/tests/install/installed_daemon.py" "$PREFIX" "$TMP/build-hello-module/hello.so" "$TMP/pc/hello.so"
echo "PASS: install test"
