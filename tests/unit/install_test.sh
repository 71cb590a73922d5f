#!/bin/sh
# SPDX-License-Identifier: BSD-2-Clause
# `meson install` puts what an operator needs where it belongs: installs the
# build into a temporary DESTDIR and checks the list of files (binary, man
# page, example config, systemd unit, README and PROTOCOL), and that each
# is the real thing.
# Usage: install_test.sh MESON BUILD_DIR PREFIX BINDIR MANDIR DATADIR MAN(yes|no)
set -eu

meson=$1
build=$2
prefix=$3
bindir=$4
mandir=$5
datadir=$6
man=$7

dest=$(mktemp -d)
trap 'rm -rf "$dest"' EXIT

fail() {
  echo "install_test: $*" >&2
  exit 1
}

"$meson" install -C "$build" --no-rebuild --quiet --destdir "$dest" >"$dest.log" 2>&1 ||
  { cat "$dest.log" >&2; rm -f "$dest.log"; fail "meson install failed"; }
rm -f "$dest.log"

root=$dest$prefix
doc=$root/$datadir/doc/sluice
expected="$root/$bindir/sluice
$doc/README.md
$doc/PROTOCOL.md
$doc/examples/sluice.example.toml
$root/lib/systemd/system/sluice@.service"
if [ "$man" = yes ]; then
  expected="$expected
$root/$mandir/man1/sluice.1"
fi

for f in $expected; do
  [ -f "$f" ] || fail "not installed: ${f#"$dest"}"
done
# Nothing else: a stray file (a test binary, a static library) is a bug too.
extra=$(find "$dest" -type f | sort | grep -vxF "$expected" || true)
[ -z "$extra" ] || fail "installed but not expected: $extra"

"$root/$bindir/sluice" --version | grep -q '^sluice ' || fail "the installed binary does not run"
"$root/$bindir/sluice" check-config "$doc/examples/sluice.example.toml" >/dev/null ||
  fail "the installed example config does not pass check-config"
grep -q "^ExecStart=$prefix/$bindir/sluice run --config /.*/sluice/%i.toml\$" \
  "$root/lib/systemd/system/sluice@.service" || fail "the unit does not run the installed binary"
if [ "$man" = yes ]; then
  page=$root/$mandir/man1/sluice.1
  grep -q '^\.TH SLUICE "1"' "$page" || fail "sluice.1 has no .TH header"
  for section in '.SH SUBCOMMANDS' '.SS "sluice ctl set-weight"' '.SS "sluice check-config"' \
                 '.SH FILES' '.SH "EXIT STATUS"'; do
    grep -qF "$section" "$page" || fail "sluice.1 lacks $section"
  done
fi
echo "install_test: $(echo "$expected" | wc -l) files installed under $prefix, as expected"
