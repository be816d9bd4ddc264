#!/bin/sh
# Runs `kombu bench` on the filesystem transport and Python Kombu 5.2.4's
# filesystem transport on fresh temporary folders of the same file system,
# alternating ROUNDS times, and prints each pair with the Go/Python ratios.
# Both publish N messages one by one, then consume them with acks (Go:
# prefetch 100 through the hub; Kombu: drain_events, one _get per message).
#
# usage: transport/filesystem/testdata/bench_vs_kombu.sh [N] [ROUNDS]
# env:   PYTHON (default /usr/bin/python3), TMPDIR (where the folders go)
set -eu
N=${1:-2000}
ROUNDS=${2:-3}
PY=${PYTHON:-/usr/bin/python3}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
bin=$(mktemp -d)/kombu
(cd "$root" && go build -o "$bin" ./cmd/kombu)
echo "date $(date -u +%FT%TZ), N=$N, $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
i=1
while [ "$i" -le "$ROUNDS" ]; do
	d=$(mktemp -d)
	g=$("$bin" bench --url "filesystem://?data_folder_in=$d&data_folder_out=$d" --messages "$N" --latency 0 --quiet --json)
	rm -rf "$d"
	d=$(mktemp -d)
	p=$("$PY" "$here/kombu_fs_peer.py" bench "$d" "$d" benchq "$N")
	rm -rf "$d"
	"$PY" - "$g" "$p" "$i" <<'PYEOF'
import json, sys
g, p, i = json.loads(sys.argv[1]), json.loads(sys.argv[2]), sys.argv[3]
print("round %s: publish go %7.0f/s kombu %7.0f/s (x%.2f)   consume go %7.0f/s kombu %7.0f/s (x%.2f)" % (
    i, g["publish_per_s"], p["publish_per_s"], g["publish_per_s"] / p["publish_per_s"],
    g["consume_per_s"], p["consume_per_s"], g["consume_per_s"] / p["consume_per_s"]))
PYEOF
	i=$((i + 1))
done
