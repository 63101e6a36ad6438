#!/usr/bin/env bash
# Shows that streaming a large artifact does not grow batlehub's resident memory.
#
# Starts two reference servers on loopback: A (local npm registry) and B (a proxy whose
# upstream is A). Publishes a SIZE_MIB tarball to A, then measures B's resident memory
# (VmHWM, peak RSS, reset via /proc/PID/clear_refs after warm-up):
#   1. while B fetches the tarball from A for the first time (proxy miss: stream + hash + store),
#   2. in a fresh B process, while it serves the tarball from its cache.
# Fails when either peak exceeds the warm baseline by more than LIMIT_MIB.
#
# Usage: benches/load/memory-200mib.sh            (builds the release binary)
#        BIN=target/debug/batlehub-server SIZE_MIB=200 LIMIT_MIB=32 benches/load/memory-200mib.sh
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
SIZE_MIB=${SIZE_MIB:-200}
LIMIT_MIB=${LIMIT_MIB:-32}
PORT_A=${PORT_A:-18731}
PORT_B=${PORT_B:-18732}
if [ -z "${BIN:-}" ]; then
  cargo build --release -q -p batlehub-server --manifest-path "$ROOT/Cargo.toml"
  BIN="$ROOT/target/release/batlehub-server"
fi
WORK=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT

cat > "$WORK/a.toml" <<TOML
[server]
listen = "127.0.0.1:$PORT_A"
[storage]
path = "$WORK/a/blobs"
[[auth.tokens]]
name = "bench"
value = "bench-token-123"
role = "admin"
[[registries]]
name = "npm"
type = "npm"
mode = "local"
max_upload_bytes = 1073741824
TOML
cat > "$WORK/b.toml" <<TOML
[server]
listen = "127.0.0.1:$PORT_B"
[storage]
path = "$WORK/b/blobs"
[[registries]]
name = "npm"
type = "npm"
mode = "proxy"
upstreams = ["http://127.0.0.1:$PORT_A/proxy/npm/"]
TOML

LAST=""
start() { # config; sets LAST to the pid
  RUST_LOG=warn "$BIN" --config "$1" >"$1.log" 2>&1 &
  LAST=$!
  PIDS+=("$LAST")
  local port; port=$(grep -o '127.0.0.1:[0-9]*' "$1" | head -n1)
  for _ in $(seq 1 100); do curl -sf "http://$port/healthz" >/dev/null && return 0; sleep 0.1; done
  echo "FAIL: no server answered on $port"; tail -n 20 "$1.log"; exit 1
}
kib() { awk -v k="$2" '$1 == k":" { print $2 }' "/proc/$1/status"; }

echo "building a ${SIZE_MIB} MiB tarball..."
mkdir -p "$WORK/pkg/package"
head -c "${SIZE_MIB}M" /dev/urandom > "$WORK/pkg/package/blob.bin"
echo '{"name":"big-blob","version":"1.0.0"}' > "$WORK/pkg/package/package.json"
tar -C "$WORK/pkg" -cf - package | gzip -1 > "$WORK/big.tgz"
python3 - "$WORK/big.tgz" "$WORK/body.json" <<'PY'
import base64, hashlib, json, sys
data = open(sys.argv[1], "rb").read()
sri = "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()
body = {"name": "big-blob", "dist-tags": {"latest": "1.0.0"},
        "versions": {"1.0.0": {"name": "big-blob", "version": "1.0.0", "dist": {"integrity": sri}}},
        "_attachments": {"big-blob-1.0.0.tgz": {"data": base64.b64encode(data).decode(), "length": len(data)}}}
json.dump(body, open(sys.argv[2], "w"))
PY
TGZ_BYTES=$(stat -c %s "$WORK/big.tgz")

start "$WORK/a.toml"; A=$LAST
code=$(curl -s -o "$WORK/put.out" -w '%{http_code}' -X PUT -H 'authorization: Bearer bench-token-123' \
  -H 'content-type: application/json' --data-binary @"$WORK/body.json" "http://127.0.0.1:$PORT_A/proxy/npm/big-blob")
if [ "$code" != 200 ]; then
  echo "FAIL: publishing the tarball answered $code: $(head -c 500 "$WORK/put.out")"
  tail -n 20 "$WORK/a.toml.log"
  exit 1
fi
rm -f "$WORK/body.json"
URL="http://127.0.0.1:$PORT_B/proxy/npm/big-blob/-/big-blob-1.0.0.tgz"

measure() { # pid label -> prints and checks
  local pid=$1 label=$2
  curl -sf "http://127.0.0.1:$PORT_B/proxy/npm/big-blob" >/dev/null
  curl -sf "http://127.0.0.1:$PORT_B/healthz" >/dev/null
  echo 5 > "/proc/$pid/clear_refs"
  local base; base=$(kib "$pid" VmRSS)
  local got; got=$(curl -sf "$URL" | wc -c)
  [ "$got" -eq "$TGZ_BYTES" ] || { echo "FAIL: $label downloaded $got bytes, expected $TGZ_BYTES"; exit 1; }
  local peak; peak=$(kib "$pid" VmHWM)
  local delta=$(( (peak - base) / 1024 ))
  printf '%-34s baseline %4d MiB  peak %4d MiB  growth %3d MiB (limit %d)\n' \
    "$label" $((base / 1024)) $((peak / 1024)) "$delta" "$LIMIT_MIB"
  [ "$delta" -le "$LIMIT_MIB" ] || { echo "FAIL: $label grew by $delta MiB"; exit 1; }
}

start "$WORK/b.toml"; B=$LAST
measure "$B" "proxy miss (stream+hash+store)"
kill "$B"; wait "$B" 2>/dev/null || true
start "$WORK/b.toml"; B=$LAST
kill "$A"   # the upstream is gone: the cache must serve it
measure "$B" "cached download, fresh process"
echo "OK: ${SIZE_MIB} MiB artifact ($TGZ_BYTES bytes) streamed without memory growth beyond ${LIMIT_MIB} MiB"
