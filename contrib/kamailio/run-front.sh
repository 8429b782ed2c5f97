#!/usr/bin/env bash
# Run Kamailio as the SIP front of N trunkgate instances (see "Scaling out" in README.md).
#
#   contrib/kamailio/run-front.sh LISTEN INSTANCE...
#   contrib/kamailio/run-front.sh udp:203.0.113.5:5060 10.0.0.11:5060 10.0.0.12:5060
#
# Writes the filled-in configuration and the dispatcher list to $FRONT_DIR (default
# var/front), then runs Kamailio in the foreground. Each instance runs with
# [sip] front = "<LISTEN without the udp: prefix, as the instances reach it>".
set -euo pipefail
[ $# -ge 2 ] || { sed -n '2,9p' "$0" >&2; exit 2; }
here="$(cd "$(dirname "$0")" && pwd)"
listen=$1
shift
dir=${FRONT_DIR:-var/front}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
: >"$dir/dispatcher.list"
for i in "$@"; do
    echo "1 sip:$i" >>"$dir/dispatcher.list"
done
sed -e "s|@LISTEN@|$listen|" -e "s|@DISPATCHER_LIST@|$dir/dispatcher.list|" \
    "$here/trunkgate-front.cfg" >"$dir/front.cfg"
kamailio -c -f "$dir/front.cfg" >/dev/null
# 256 MB of shared memory: each transaction held here takes about 10 KB, and at 1,000 calls a
# second some 20,000 are held at once (a few per call, for the seconds tm keeps them).
exec kamailio -DD -E -m 256 -M 8 -f "$dir/front.cfg"
