#!/usr/bin/env bash
# A loopback demo of "Scaling out": N trunkgate instances (default 2) behind the Kamailio
# front on 127.0.0.1:5060, where the shipped gateway.toml would listen, with the shipped
# profiles, so the README's SIPp examples work unchanged. Ctrl-C stops everything.
#
#   contrib/kamailio/demo.sh [N]
#
# Instance i listens on 127.0.0.1:(5060+i), serves /metrics on 127.0.0.1:(9464+i), relays
# RTP from 2000*i+20000 up and writes var/demo/instance-i/cdr.jsonl.
set -euo pipefail
cd "$(dirname "$0")/../.."
n=${1:-2}
cargo build --release --quiet
root=$PWD
dir=$root/var/demo
rm -rf "$dir"
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT
instances=()
for i in $(seq 1 "$n"); do
    d=$dir/instance-$i
    mkdir -p "$d"
    rtp=$((20000 + 2000 * i))
    cat >"$d/gateway.toml" <<TOML
profiles = "$root/profiles"

[sip]
listen    = ["udp:127.0.0.1:$((5060 + i))"]
advertise = "127.0.0.1"
front     = "udp:127.0.0.1:5060"

[cdr]
path = "cdr.jsonl"

[metrics]
listen = "127.0.0.1:$((9464 + i))"

[media]
advertise = "127.0.0.1"
ports     = "$rtp-$((rtp + 999))"

[callback]
port = 0

$(sed -n '/^\[\[route\]\]/,$p' gateway.toml)
TOML
    target/release/trunkgate run --config "$d/gateway.toml" 2>"$d/gateway.log" &
    pids+=($!)
    instances+=("127.0.0.1:$((5060 + i))")
done
echo "demo: $n instances (${instances[*]}), logs and CDRs in $dir; the front listens on udp:127.0.0.1:5060"
FRONT_DIR=$dir/front TRUNKGATE=$root/target/release/trunkgate \
    contrib/kamailio/run-front.sh udp:127.0.0.1:5060 "$dir/instance-1/gateway.toml" "${instances[@]}"
