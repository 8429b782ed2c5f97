#!/usr/bin/env bash
# Run the conformance suite (SIPp scenarios against the real binary) and the RFC 4475 corpus.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v sipp >/dev/null || { echo "SIPp missing: scripts/dev test installs it (apt-get install -y sip-tester)" >&2; exit 1; }
exec cargo test --test conformance --test rfc4475 "$@"
