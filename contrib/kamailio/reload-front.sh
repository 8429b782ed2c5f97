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
chmod a+r "$dir/address.list.new"
mv "$dir/address.list.new" "$dir/address.list"
# kamcmd exits 0 on a failed reload too: its answer says which it was.
answer=$(kamcmd -s "unix:$dir/kamailio_ctl" permissions.addressReload 2>&1) || true
echo "$answer"
case "$answer" in
    *"Reload OK"*) ;;
    *) echo "reload-front.sh: the front kept its old list of sources" >&2; exit 1 ;;
esac
