#!/usr/bin/env bash
# After the instances' profiles change (and they reloaded): give the front run by
# run-front.sh the new list of peers' sources, without a restart.
#
#   contrib/kamailio/reload-front.sh CONFIG
#
# CONFIG, $FRONT_DIR and $TRUNKGATE as for run-front.sh. A peer the profiles no longer name
# is a stranger to the front from then on: its requests in calls still up are dropped there.
set -euo pipefail
[ $# -eq 1 ] || { sed -n '2,9p' "$0" >&2; exit 2; }
dir=${FRONT_DIR:-var/front}
"${TRUNKGATE:-trunkgate}" front-sources -c "$1" >"$dir/address.list.new"
mv "$dir/address.list.new" "$dir/address.list"
kamcmd -s "unix:$dir/kamailio_ctl" permissions.addressReload
