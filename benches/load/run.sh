#!/usr/bin/env bash
# Load benchmark: batlehub against nginx serving the same bytes.
#
#   benches/load/run.sh            full run: c=64 and c=256, 10 s, 3 runs, medians
#   QUICK=1 benches/load/run.sh    1 run of 3 s per row (a smoke test of the script)
#
# Installs wrk and nginx (apt) when missing, builds the release server, seeds a local npm
# registry, puts a proxy registry in front of it and warms its cache, saves every response
# body under an nginx root, then drives both with the same wrk workload. Prints one table
# and writes it to benches/results/<date>.md.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
QUICK=${QUICK:-0}
if [ "$QUICK" = 1 ]; then RUNS=1; DURATION=3s; else RUNS=3; DURATION=10s; fi
PORT_UP=18801 PORT_HUB=18802 PORT_NGINX=18803
for tool in wrk nginx; do
  command -v "$tool" >/dev/null 2>&1 || { apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk nginx-light >/dev/null; }
done
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
if [ -n "${BIN:-}" ]; then BIN=$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN"); fi
if [ -z "${BIN:-}" ]; then
  cargo build --release -q -p batlehub-server --manifest-path "$ROOT/Cargo.toml"
  BIN="$ROOT/target/release/batlehub-server"
fi
WORK=$(mktemp -d)
chmod 755 "$WORK"
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; [ -f "$WORK/nginx.pid" ] && kill "$(cat "$WORK/nginx.pid")" 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT
[ -n "${KEEP:-}" ] && trap - EXIT
TOKEN=bench-token-123

cat > "$WORK/up.toml" <<TOML
[server]
listen = "127.0.0.1:$PORT_UP"
[storage]
path = "$WORK/up/blobs"
[[auth.tokens]]
name = "bench"
value = "$TOKEN"
role = "admin"
[[registries]]
name = "npm"
type = "npm"
mode = "local"
TOML
cat > "$WORK/hub.toml" <<TOML
[server]
listen = "127.0.0.1:$PORT_HUB"
[storage]
path = "$WORK/hub/blobs"
[[auth.tokens]]
name = "bench"
value = "$TOKEN"
role = "user"
[[registries]]
name = "npm"
type = "npm"
mode = "proxy"
upstreams = ["http://127.0.0.1:$PORT_UP/proxy/npm/"]
[registries.cache]
metadata_ttl_secs = 3600
TOML

wait_http() { for _ in $(seq 1 200); do curl -sf "$1" >/dev/null && return 0; sleep 0.05; done; echo "no answer from $1" >&2; return 1; }
LAST=""
start() { RUST_LOG=warn "$BIN" --config "$1" >"$1.log" 2>&1 & LAST=$!; PIDS+=("$LAST"); }

# Cold start: embedded default, fresh data directory, time to the first good response.
mkdir -p "$WORK/cold"
t0=$(date +%s%N)
(cd "$WORK/cold" && RUST_LOG=warn exec "$BIN" --listen 127.0.0.1:18809 >/dev/null 2>&1) & COLD=$!
PIDS+=("$COLD")
wait_http http://127.0.0.1:18809/proxy/npm/-/ping
COLD_MS=$(( ($(date +%s%N) - t0) / 1000000 ))
kill "$COLD"

start "$WORK/up.toml"; UP=$LAST; wait_http "http://127.0.0.1:$PORT_UP/healthz"
python3 "$ROOT/benches/load/seed.py" "http://127.0.0.1:$PORT_UP/proxy/npm" "$TOKEN" >/dev/null
start "$WORK/hub.toml"; HUB=$LAST; wait_http "http://127.0.0.1:$PORT_HUB/healthz"
rss() { awk '/^VmRSS:/ { print int($2 / 1024) }' "/proc/$1/status"; }
hwm() { awk '/^VmHWM:/ { print int($2 / 1024) }' "/proc/$1/status"; }

B="http://127.0.0.1:$PORT_HUB/proxy/npm"
declare -a NAMES PATHS HDRS CONNS
add() { NAMES+=("$1"); PATHS+=("$2"); HDRS+=("$3"); CONNS+=("$4"); }
CORGI="Accept: application/vnd.npm.install-v1+json"
add "npm packument, full (200 versions)" "/bench-many" "" "64 256"
add "npm packument, abbreviated" "/bench-many" "$CORGI" "64 256"
add "npm tarball 100 KiB" "/bench-100k/-/bench-100k-1.0.0.tgz" "" "64 256"
add "npm tarball 10 MiB" "/bench-10m/-/bench-10m-1.0.0.tgz" "" "8"

# Warm the proxy and save the exact bytes for nginx.
mkdir -p "$WORK/www"
for i in "${!NAMES[@]}"; do
  p=${PATHS[$i]}; h=${HDRS[$i]}
  out="$WORK/www$p"; [ -n "$h" ] && out="$out.corgi"
  mkdir -p "$(dirname "$out")"
  if [ -n "$h" ]; then curl -sf -H "$h" "$B$p" -o "$out"; else curl -sf "$B$p" -o "$out"; fi
done
cat > "$WORK/nginx.conf" <<NGX
worker_processes 1;
pid $WORK/nginx.pid;
error_log $WORK/nginx-error.log;
events { worker_connections 4096; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 1000000;
  types { application/json json; application/octet-stream tgz; }
  default_type application/json;
  server {
    listen 127.0.0.1:$PORT_NGINX;
    root $WORK/www;
    location / {
      if (\$http_accept ~ "install-v1") { rewrite ^(.*)\$ \$1.corgi break; }
    }
  }
}
NGX
"$NGINX" -c "$WORK/nginx.conf"
N="http://127.0.0.1:$PORT_NGINX"
wait_http "$N/bench-many"
IDLE_RSS=$(rss "$HUB")

# wrk: prints req/s, p50 and p99 (ms) for one run.
run_wrk() { # url conns header token
  local args=(-t2 -c"$2" -d"$DURATION" --latency)
  [ -n "$3" ] && args+=(-H "$3")
  [ -n "$4" ] && args+=(-H "Authorization: Bearer $4")
  wrk "${args[@]}" "$1" | awk '
    /Requests\/sec/ { rps = $2 }
    /^ +50%/ { p50 = $2 } /^ +99%/ { p99 = $2 }
    function ms(v) { if (v ~ /us$/) return v / 1000; if (v ~ /ms$/) return v + 0; if (v ~ /s$/) return v * 1000; return v }
    END { printf "%.0f %.2f %.2f\n", rps, ms(p50), ms(p99) }'
}
median() { sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
measure() { # url conns header token -> "rps p50 p99" medians
  local r=() l50=() l99=()
  for _ in $(seq 1 "$RUNS"); do read -r a b c < <(run_wrk "$@"); r+=("$a"); l50+=("$b"); l99+=("$c"); done
  echo "$(printf '%s\n' "${r[@]}" | median) $(printf '%s\n' "${l50[@]}" | median) $(printf '%s\n' "${l99[@]}" | median)"
}

echo 5 > "/proc/$HUB/clear_refs"
DATE=$(date -u +%Y-%m-%d)
TABLE="| workload | c | batlehub req/s | p50 ms | p99 ms | nginx req/s | p50 ms | p99 ms | ratio |
|---|---|---|---|---|---|---|---|---|"
for i in "${!NAMES[@]}"; do
  for c in ${CONNS[$i]}; do
    for tok in "" "$TOKEN"; do
      read -r hr h50 h99 < <(measure "$B${PATHS[$i]}" "$c" "${HDRS[$i]}" "$tok")
      read -r nr n50 n99 < <(measure "$N${PATHS[$i]}" "$c" "${HDRS[$i]}" "")
      ratio=$(awk -v a="$hr" -v b="$nr" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }')
      label="${NAMES[$i]}"; [ -n "$tok" ] && label="$label, token"
      TABLE+="
| $label | $c | $hr | $h50 | $h99 | $nr | $n50 | $n99 | $ratio |"
    done
  done
done
PEAK_RSS=$(hwm "$HUB")
# 1 GiB through the 10 MiB artifact, then the resident size.
echo 5 > "/proc/$HUB/clear_refs"; BEFORE=$(rss "$HUB")
for _ in $(seq 1 103); do curl -sf "$B/bench-10m/-/bench-10m-1.0.0.tgz" -o /dev/null; done
AFTER_GIB=$(hwm "$HUB")

REPORT="# Load benchmark, $DATE

Machine: $(nproc) cores, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo); wrk -t2, $DURATION per run, median of $RUNS runs; nginx: 1 worker, same bytes.

$TABLE

| memory / start-up | value |
|---|---|
| resident idle (after warm-up) | $IDLE_RSS MiB |
| resident peak under load | $PEAK_RSS MiB |
| peak while downloading 1 GiB (10 MiB x 103) | $AFTER_GIB MiB (before: $BEFORE MiB) |
| cold start to first response (embedded default) | $COLD_MS ms |
"
echo "$REPORT"
if [ "$QUICK" != 1 ]; then
  mkdir -p "$ROOT/benches/results"
  echo "$REPORT" > "$ROOT/benches/results/$DATE.md"
  echo "written to benches/results/$DATE.md"
fi
