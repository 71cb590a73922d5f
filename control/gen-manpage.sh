#!/bin/sh
# SPDX-License-Identifier: BSD-2-Clause
# Builds sluice.1 from the binary's own --help texts, so the man page never
# disagrees with the CLI: help2man turns `sluice --help` into the page, and
# a SUBCOMMANDS section holds the --help of every subcommand (found by
# walking the "Subcommands:" lists), plus FILES, EXIT STATUS and SEE ALSO.
# Usage: gen-manpage.sh HELP2MAN SLUICE OUTPUT SYSCONFDIR DOCDIR
set -eu

help2man=$1
sluice=$2
output=$3
sysconfdir=$4
docdir=$5

include=$(mktemp)
trap 'rm -f "$include"' EXIT

# The subcommand names listed under "Subcommands:" in a --help text.
subcommands() {
  sed -n '/^Subcommands:/,$p' | sed -n 's/^  \([a-z][a-z0-9-]*\)  .*/\1/p'
}

# A --help text as roff, verbatim: backslashes escaped, and lines that
# would read as requests (starting with . or ') protected.
verbatim() {
  printf '.nf\n'
  sed -e 's/\\/\\e/g' -e "s/^\\([.']\\)/\\\\\\&\\1/"
  printf '.fi\n'
}

# Every subcommand of "$@" (the words after `sluice`), depth first.
describe() {
  for sub in $("$sluice" "$@" --help | subcommands); do
    printf '.SS "sluice %s"\n' "$*${*:+ }$sub"
    "$sluice" "$@" "$sub" --help | verbatim
    describe "$@" "$sub"
  done
}

{
  printf '[SUBCOMMANDS]\n'
  printf 'Every subcommand takes \\fB--help\\fR. Their texts follow.\n'
  describe
  cat <<EOT
[EXIT STATUS]
0 success; 1 the input is wrong (config errors), or for \\fBsluice ctl\\fR the daemon answered an error; 2 usage errors or a file that cannot be read; 3 (\\fBsluice ctl\\fR) the daemon cannot be reached or did not answer.
[FILES]
.TP
.I $sysconfdir/sluice/NAME.toml
The config of the service instance \\fBsluice@NAME\\fR (systemd).
.TP
.I /run/sluice/sluice.sock
The control socket (the config's \\fB[control] socket\\fR).
.TP
.I /sys/fs/bpf/sluice/IFACE/
The pinned maps of the XDP fast path on IFACE.
.TP
.I $docdir/examples/sluice.example.toml
A complete, commented example config.
[SEE ALSO]
.I $docdir/README.md
(the CLI, the config, health probes and policies),
.I $docdir/PROTOCOL.md
(the control socket's protocol),
.BR systemctl (1)
for \\fBsluice@.service\\fR.
EOT
} >"$include"

"$help2man" --no-info --section 1 --source sluice \
  --name 'embedded-friendly layer-4 load balancer (XDP, Maglev, DSR)' \
  --include "$include" --output "$output" "$sluice"
