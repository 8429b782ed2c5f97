#!/usr/bin/env bash
# Run Kamailio as the SIP front of N trunkgate instances (see "Scaling out" in README.md).
#
#   contrib/kamailio/run-front.sh LISTEN CONFIG INSTANCE...
#   contrib/kamailio/run-front.sh udp:203.0.113.5:5060 /etc/trunkgate/gateway.toml 10.0.0.11:5060 10.0.0.12:5060
#
# CONFIG is an instance's gateway.toml (the instances share their profiles): the front
# relays requests only from the sources its profiles name (`trunkgate front-sources`; the
# trunkgate program is $TRUNKGATE, default `trunkgate` on the PATH). Writes the filled-in
# configuration, the dispatcher list and the address list to $FRONT_DIR (default
# var/front), then runs Kamailio in the foreground. Each instance runs with
# [sip] front = "<LISTEN without the udp: prefix, as the instances reach it>".
# After the profiles change: contrib/kamailio/reload-front.sh CONFIG.
set -euo pipefail
[ $# -ge 3 ] || { sed -n '2,13p' "$0" >&2; exit 2; }
here="$(cd "$(dirname "$0")" && pwd)"
listen=$1
config=$2
shift 2
dir=${FRONT_DIR:-var/front}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
"${TRUNKGATE:-trunkgate}" front-sources -c "$config" >"$dir/address.list"
: >"$dir/dispatcher.list"
for i in "$@"; do
    echo "1 sip:$i" >>"$dir/dispatcher.list"
done
sed -e "s|@LISTEN@|$listen|" -e "s|@DISPATCHER_LIST@|$dir/dispatcher.list|" \
    -e "s|@ADDRESS_LIST@|$dir/address.list|" -e "s|@CTL_SOCKET@|$dir/kamailio_ctl|" \
    "$here/trunkgate-front.cfg" >"$dir/front.cfg"
defines=()
if head -1 "$dir/address.list" | grep -q 'unknown_sources = reject'; then
    defines=(-A REJECT_STRANGERS)
fi
# A proxy facing the carriers does not run as root: started as root, it runs as Debian's
# `kamailio` user ($KAMAILIO_USER), which needs only to read $FRONT_DIR and make its socket.
if [ "$(id -u)" -eq 0 ]; then
    user=${KAMAILIO_USER:-kamailio}
    id "$user" >/dev/null 2>&1 || { echo "run-front.sh: no user $user to run Kamailio as (set KAMAILIO_USER)" >&2; exit 1; }
    chown "$user" "$dir"
    chmod a+r "$dir/address.list" "$dir/dispatcher.list" "$dir/front.cfg"
    # It reads the address list again at each reload-front.sh, as that user: a folder
    # above $FRONT_DIR closed to it (a checkout under /root) would fail every reload.
    if ! runuser -u "$user" -- test -r "$dir/address.list"; then
        echo "run-front.sh: $user cannot read $dir/address.list (a folder above it is closed to it): set FRONT_DIR to a folder it can read, e.g. /var/lib/trunkgate-front" >&2
        exit 1
    fi
    defines+=(-u "$user" -g "$(id -gn "$user")")
fi
kamailio -c "${defines[@]}" -f "$dir/front.cfg" >/dev/null
# 256 MB of shared memory: each transaction held here takes about 10 KB, and at 1,000 calls a
# second some 20,000 are held at once (a few per call, for the seconds tm keeps them).
exec kamailio -DD -E -m 256 -M 8 "${defines[@]}" -f "$dir/front.cfg"
