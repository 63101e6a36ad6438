#!/usr/bin/env bash
# Scale-out benchmark: cached-artifact throughput of one replica on the filesystem, one on
# S3, and replicas on PostgreSQL + S3 behind nginx (one, then two), side by side.
#
#   benches/load/replicas.sh                     10 s, 3 runs per row, medians
#   QUICK=1 benches/load/replicas.sh             1 run of 3 s per row (a smoke test)
#   BIN=target/release/batlehub-server ...       a prebuilt server
#
# Needs PostgreSQL (BATLEHUB_BENCH_POSTGRES_URL, default the local test database; a schema
# of the run's own is created and dropped) and an S3-compatible server
# (BATLEHUB_BENCH_S3_ENDPOINT; without it moto's server is installed under target/ and
# started, as .ci/run does). Installs wrk and nginx (apt) when missing.
#
# The upstream is a local batlehub registry seeded with npm packages (seed.py); every
# topology proxies it. Each row is measured with the memory cache on (the default: small
# hot artifacts are served from memory after their first read) and off (every request
# reads the blob store: the filesystem, or S3 through the network). Writes
# benches/results/<date>-replicas.md.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
QUICK=${QUICK:-0}
if [ "$QUICK" = 1 ]; then RUNS=1; DURATION=3s; else RUNS=3; DURATION=10s; fi
RUNS=${RUNS_OVERRIDE:-$RUNS} DURATION=${DURATION_OVERRIDE:-$DURATION}
PORT_UP=18821 PORT_FS=18822 PORT_S3=18823 PORT_R1=18824 PORT_R2=18825 PORT_LB=18826 PORT_LB1=18827
PORT_MOTO=18828 PORT_LBFS=18829
for tool in wrk nginx; do
  command -v "$tool" >/dev/null 2>&1 || { apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk nginx-light >/dev/null; }
done
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
if [ -n "${BIN:-}" ]; then BIN=$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN"); fi
if [ -z "${BIN:-}" ]; then
  cargo build --release -q -p batlehub-server --manifest-path "$ROOT/Cargo.toml"
  BIN="$ROOT/target/release/batlehub-server"
fi
PG=${BATLEHUB_BENCH_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}
WORK=$(mktemp -d)
PIDS=()
SCHEMA="batlehub_bench_$$"
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  [ -f "$WORK/lb.pid" ] && kill "$(cat "$WORK/lb.pid")" 2>/dev/null
  psql -q "$PG" -c "DROP SCHEMA IF EXISTS $SCHEMA CASCADE" >/dev/null 2>&1 || true
  [ -n "${KEEP_WORK:-}" ] || rm -rf "$WORK"
}
trap cleanup EXIT
die() {
  echo "replicas.sh: $*" >&2
  for f in "$WORK"/*.log; do [ -s "$f" ] && { echo "--- $f" >&2; tail -n 5 "$f" >&2; }; done
  exit 1
}
wait_http() { for _ in $(seq 1 200); do curl -sf "$1" >/dev/null && return 0; sleep 0.05; done; die "no answer from $1"; }
LAST=""
start() { RUST_LOG=warn "$BIN" --config "$1" >"$1.log" 2>&1 & LAST=$!; PIDS+=("$LAST"); }
stop() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }
TOKEN=bench-token-123

# S3: the given server, or moto's.
S3=${BATLEHUB_BENCH_S3_ENDPOINT:-}
if [ -z "$S3" ]; then
  VENV="$ROOT/target/s3-venv"
  [ -x "$VENV/bin/moto_server" ] || { python3 -m venv "$VENV"; "$VENV/bin/python" -m pip install -q 'moto[server]'; }
  "$VENV/bin/moto_server" -H 127.0.0.1 -p "$PORT_MOTO" >"$WORK/moto.log" 2>&1 & PIDS+=("$!")
  S3="http://127.0.0.1:$PORT_MOTO"
  wait_http "$S3/"
fi
BUCKET=batlehub-bench
curl -sf -X PUT "$S3/$BUCKET" >/dev/null || true
psql -q "$PG" -c "CREATE SCHEMA $SCHEMA" >/dev/null || die "cannot create a schema in $PG"

# The upstream: a local npm registry, seeded.
printf '[server]\nlisten = "127.0.0.1:%s"\n[storage]\npath = "%s"\n[[auth.tokens]]\nname = "bench"\nvalue = "%s"\nrole = "admin"\n[[registries]]\nname = "npm"\ntype = "npm"\nmode = "local"\n' \
  "$PORT_UP" "$WORK/up/blobs" "$TOKEN" > "$WORK/up.toml"
start "$WORK/up.toml"; wait_http "http://127.0.0.1:$PORT_UP/healthz"
python3 "$ROOT/benches/load/seed.py" "http://127.0.0.1:$PORT_UP/proxy" "$TOKEN" npm >/dev/null

s3_toml() { # prefix
  printf '[storage]\ntype = "s3"\nbucket = "%s"\nendpoint = "%s"\nregion = "us-east-1"\naccess_key_id = "bench"\nsecret_access_key = "bench"\nprefix = "%s"\n' "$BUCKET" "$S3" "$1"
}
hub_toml() { # port storage-toml memo-mib
  printf '[server]\nlisten = "127.0.0.1:%s"\n%s\n' "$1" "$2"
  printf 'memory_cache_mib = %s\n' "$3"
  printf '[[registries]]\nname = "npm"\ntype = "npm"\nmode = "proxy"\nupstreams = ["http://127.0.0.1:%s/proxy/npm/"]\n[registries.cache]\nmetadata_ttl_secs = 3600\n' "$PORT_UP"
}

run_wrk() { # url conns
  local out
  out=$(wrk -t2 -c"$2" -d"$DURATION" --latency "$1")
  grep -q "Non-2xx or 3xx responses" <<<"$out" && die "non-2xx answers under load: $1: $(grep "Non-2xx" <<<"$out")"
  awk '
    /Requests\/sec/ { rps = $2 }
    /^ +50%/ { p50 = $2 } /^ +99%/ { p99 = $2 }
    function ms(v) { if (v ~ /us$/) return v / 1000; if (v ~ /ms$/) return v + 0; if (v ~ /s$/) return v * 1000; return v }
    END { printf "%.0f %.2f %.2f\n", rps, ms(p50), ms(p99) }' <<<"$out"
}
median() { sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
measure() { # url conns -> "rps p50 p99" medians
  local r=() l50=() l99=()
  for _ in $(seq 1 "$RUNS"); do read -r a b c < <(run_wrk "$@"); r+=("$a"); l50+=("$b"); l99+=("$c"); done
  echo "$(printf '%s\n' "${r[@]}" | median) $(printf '%s\n' "${l50[@]}" | median) $(printf '%s\n' "${l99[@]}" | median)"
}

TARBALL=/proxy/npm/bench-100k/-/bench-100k-1.0.0.tgz
SMALL=/proxy/npm/bench-50k/-/bench-50k-1.0.0.tgz
DATE=$(date -u +%Y-%m-%d)
TABLE="| topology | memory cache | artifact | c | req/s | p50 ms | p99 ms | ratio to one replica on the filesystem |
|---|---|---|---|---|---|---|---|"
for MEMO in 64 0; do
  cache=$([ "$MEMO" = 0 ] && echo off || echo "on (64 MiB)")
  # One replica on the filesystem (SQLite), one on S3 (SQLite), two on PostgreSQL + S3.
  hub_toml "$PORT_FS" "$(printf '[storage]\npath = "%s"\n' "$WORK/fs-$MEMO/blobs")" "$MEMO" > "$WORK/fs.toml"
  hub_toml "$PORT_S3" "$(printf '[database]\nurl = "sqlite://%s"\n' "$WORK/s3-$MEMO.db"; s3_toml "single-$$-$MEMO")" "$MEMO" > "$WORK/s3.toml"
  shared="$(printf '[database]\nurl = "%s?options=-c%%20search_path%%3D%s"\n' "$PG" "$SCHEMA"; s3_toml "replicas-$$")"
  hub_toml "$PORT_R1" "$shared" "$MEMO" > "$WORK/r1.toml"
  hub_toml "$PORT_R2" "$shared" "$MEMO" > "$WORK/r2.toml"
  start "$WORK/fs.toml"; FS=$LAST
  start "$WORK/s3.toml"; S3HUB=$LAST
  start "$WORK/r1.toml"; R1=$LAST
  wait_http "http://127.0.0.1:$PORT_R1/healthz" # migrations applied before the second starts
  start "$WORK/r2.toml"; R2=$LAST
  for p in $PORT_FS $PORT_S3 $PORT_R2; do wait_http "http://127.0.0.1:$p/healthz"; done
  cat > "$WORK/lb.conf" <<NGX
worker_processes 1;
pid $WORK/lb.pid;
error_log $WORK/lb-error.log;
events { worker_connections 4096; }
http {
  access_log off;
  upstream two { server 127.0.0.1:$PORT_R1; server 127.0.0.1:$PORT_R2; keepalive 256; }
  upstream one { server 127.0.0.1:$PORT_R1; keepalive 256; }
  upstream fs { server 127.0.0.1:$PORT_FS; keepalive 256; }
  server {
    listen 127.0.0.1:$PORT_LB;
    location / { proxy_pass http://two; proxy_http_version 1.1; proxy_set_header Connection ""; proxy_buffering on; }
  }
  server {
    listen 127.0.0.1:$PORT_LBFS;
    location / { proxy_pass http://fs; proxy_http_version 1.1; proxy_set_header Connection ""; proxy_buffering on; }
  }
  server {
    listen 127.0.0.1:$PORT_LB1;
    location / { proxy_pass http://one; proxy_http_version 1.1; proxy_set_header Connection ""; proxy_buffering on; }
  }
}
NGX
  "$NGINX" -c "$WORK/lb.conf"
  declare -A URL=(
    ["one replica, filesystem + SQLite"]="http://127.0.0.1:$PORT_FS"
    ["one replica, filesystem + SQLite, behind nginx"]="http://127.0.0.1:$PORT_LBFS"
    ["one replica, S3 + SQLite"]="http://127.0.0.1:$PORT_S3"
    ["one replica, PostgreSQL + S3, behind nginx"]="http://127.0.0.1:$PORT_LB1"
    ["two replicas, PostgreSQL + S3, behind nginx"]="http://127.0.0.1:$PORT_LB"
  )
  ORDER=("one replica, filesystem + SQLite" "one replica, filesystem + SQLite, behind nginx" "one replica, S3 + SQLite" "one replica, PostgreSQL + S3, behind nginx" "two replicas, PostgreSQL + S3, behind nginx")
  # Warm every topology (each replica behind the balancer too) and check the bytes agree.
  for path in "$TARBALL" "$SMALL"; do
    curl -sf -o "$WORK/ref" "http://127.0.0.1:$PORT_FS$path" || die "warm $path"
    cp "$WORK/ref" "$WORK/ref-npm tarball $([ "$path" = "$SMALL" ] && echo 50 || echo 100) KiB"
    for base in "http://127.0.0.1:$PORT_LBFS" "http://127.0.0.1:$PORT_S3" "http://127.0.0.1:$PORT_R1" "http://127.0.0.1:$PORT_R2" "http://127.0.0.1:$PORT_LB" "http://127.0.0.1:$PORT_LB1"; do
      for _ in 1 2; do curl -sf -o "$WORK/got" "$base$path" || die "warm $base$path"; done
      cmp -s "$WORK/ref" "$WORK/got" || die "$base$path: other bytes than the filesystem replica"
    done
  done
  for path in "$SMALL" "$TARBALL"; do
    size=$([ "$path" = "$SMALL" ] && echo "npm tarball 50 KiB" || echo "npm tarball 100 KiB")
    base_rps=""
    for name in "${ORDER[@]}"; do
      read -r r p50 p99 < <(measure "${URL[$name]}$path" 64)
      [ "${r:-0}" -gt 0 ] || die "$name: no successful request"
      [ -z "$base_rps" ] && base_rps=$r
      ratio=$(awk -v a="$r" -v b="$base_rps" 'BEGIN { printf "%.2f", a / b }')
      TABLE+="
| $name | $cache | $size | 64 | $r | $p50 | $p99 | $ratio |"
    done
    if [ "$MEMO" = 0 ]; then
      # The S3 server's own ceiling: the same bytes fetched from it directly.
      curl -sf -o /dev/null --max-time 30 -H "Expect:" -H "x-amz-acl: public-read" -H "Content-Type: application/octet-stream" \
        -X PUT --data-binary @"$WORK/ref-$size" "$S3/$BUCKET/bench-direct-$$" || die "put to S3"
      read -r r p50 p99 < <(measure "$S3/$BUCKET/bench-direct-$$" 64)
      ratio=$(awk -v a="$r" -v b="$base_rps" 'BEGIN { printf "%.2f", a / b }')
      TABLE+="
| the S3 server alone (a GET of the same bytes) | - | $size | 64 | $r | $p50 | $p99 | $ratio |"
    fi
  done
  kill "$(cat "$WORK/lb.pid")"; rm -f "$WORK/lb.pid"
  for p in $FS $S3HUB $R1 $R2; do stop "$p"; done
  unset URL
done

REPORT="# Scale-out benchmark, $DATE

Machine: $(nproc) cores, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo); wrk -t2 -c64, $DURATION per run, median of $RUNS runs. Every process (wrk, nginx, the replicas, PostgreSQL, the S3 server) shares the same cores.
S3 server: $([ -n "${BATLEHUB_BENCH_S3_ENDPOINT:-}" ] && echo "$S3" || echo "moto (local)"); PostgreSQL: local.

$TABLE
"
echo "$REPORT"
if [ "$QUICK" != 1 ]; then
  mkdir -p "$ROOT/benches/results"
  echo "$REPORT" > "$ROOT/benches/results/$DATE-replicas.md"
  echo "written to benches/results/$DATE-replicas.md"
fi
