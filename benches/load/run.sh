#!/usr/bin/env bash
# Load benchmark: batlehub against nginx serving the same bytes.
#
#   benches/load/run.sh            full run: c=64 and c=256, 10 s, 3 runs, medians
#   QUICK=1 benches/load/run.sh    1 run of 3 s per row (a smoke test of the script)
#   ONLY='tarball' BIN=target/release/batlehub-server KEEP=1 benches/load/run.sh
#                                  some rows, a prebuilt server, servers left running
#   MEMO_MIB=0 ...                 the hub's memory cache size ([storage] memory_cache_mib)
#
# Installs wrk and nginx (apt) when missing, builds the release server, seeds local npm,
# cargo, pypi, maven, go and rubygems registries through their publish APIs (seed.py: a package with 200
# versions and a ~100 KiB artifact each, plus a 10 MiB npm tarball and Go zip), puts a proxy registry
# in front of each (and `npm-rules`, the npm proxy with 10 policy rules) and warms their
# caches, saves every response body under an nginx root at the same path, then drives both
# with the same wrk workload: npm packument (full, abbreviated) and tarballs, cargo index
# file and .crate, PyPI simple page (HTML, JSON) and wheel, maven-metadata.xml and jar, Go
# @v/list, .info, .mod and .zip, each
# anonymous and with a token; the two 10-rules rows with the token only; big documents
# (bigdocs.py, from a static nginx upstream) at c=32 with memory sampled; proxy-miss latency
# (miss.py). Any failed warm-up
# request or non-2xx answer under load stops the script, naming the URL or row. Prints the
# table, a policy-and-auth-cost table (c=64) and memory figures, and writes them to
# benches/results/<date>.md.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
QUICK=${QUICK:-0}
if [ "$QUICK" = 1 ]; then RUNS=1; DURATION=3s; else RUNS=3; DURATION=10s; fi
# RUNS_OVERRIDE=N DURATION_OVERRIDE=Ns override either (some rows, measured faster).
RUNS=${RUNS_OVERRIDE:-$RUNS} DURATION=${DURATION_OVERRIDE:-$DURATION}
PORT_UP=18801 PORT_HUB=18802 PORT_NGINX=18803 PORT_STATIC=18804 PORT_SLOW=18805
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
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for f in nginx static; do [ -f "$WORK/$f.pid" ] && kill "$(cat "$WORK/$f.pid")" 2>/dev/null; done
  rm -rf "$WORK"
}
trap cleanup EXIT
[ -n "${KEEP:-}" ] && trap - EXIT
TOKEN=bench-token-123

# Upstream instance: a local registry per protocol, seeded through the publish APIs.
{
  printf '[server]\nlisten = "127.0.0.1:%s"\n[storage]\npath = "%s"\n' "$PORT_UP" "$WORK/up/blobs"
  printf '[[auth.tokens]]\nname = "bench"\nvalue = "%s"\nrole = "admin"\n' "$TOKEN"
  for r in npm cargo pypi maven go rubygems; do printf '[[registries]]\nname = "%s"\ntype = "%s"\nmode = "local"\n' "$r" "$r"; done
} > "$WORK/up.toml"
# The measured instance: a proxy registry per protocol in front of the local one, plus
# `npm-rules`, the npm proxy again with 10 policy rules (no rate limit).
U="http://127.0.0.1:$PORT_UP/proxy"
proxy_toml() { # name type upstream
  printf '[[registries]]\nname = "%s"\ntype = "%s"\nmode = "proxy"\nupstreams = ["%s"]\n[registries.cache]\nmetadata_ttl_secs = 3600\n' "$1" "$2" "$3"
}
{
  printf '[server]\nlisten = "127.0.0.1:%s"\n[storage]\npath = "%s"\n' "$PORT_HUB" "$WORK/hub/blobs"
  # MEMO_MIB=N sets the hub's memory cache (default: the server's default).
  [ -n "${MEMO_MIB:-}" ] && printf 'memory_cache_mib = %s\n' "$MEMO_MIB"
  printf '[[auth.tokens]]\nname = "bench"\nvalue = "%s"\nrole = "user"\n' "$TOKEN"
  proxy_toml npm npm "$U/npm/"
  proxy_toml cargo cargo "$U/cargo/registry/"
  proxy_toml pypi pypi "$U/pypi/simple/"
  proxy_toml maven maven "$U/maven/maven2/"
  proxy_toml go go "$U/go/"
  proxy_toml rubygems rubygems "$U/rubygems/"
  # Big documents (bigdocs.py), from a static upstream: a 3,000-version npm packument
  # (~15 MB abbreviated) and a PyPI project page with 10,000 files.
  proxy_toml npm-big npm "http://127.0.0.1:$PORT_STATIC/npm/"
  proxy_toml pypi-big pypi "http://127.0.0.1:$PORT_STATIC/pypi/simple/"
  # Proxy misses: an upstream that answers after 20 ms (miss.py).
  proxy_toml npm-slow npm "http://127.0.0.1:$PORT_SLOW/"
  proxy_toml npm-rules npm "$U/npm/"
  cat <<'TOML'
[registries.versioning]
enforce_semver = true
allow_prerelease = true
[registries.quota]
max_storage_bytes_per_user = 10737418240
max_packages_per_user = 1000
[[registries.rules]]
kind = "release_age_gate"
min_age_secs = 1
[[registries.rules]]
kind = "deny_latest"
[[registries.rules]]
kind = "version_gate"
package = "bench-*"
block = [">=99.0.0"]
[[registries.rules]]
kind = "version_gate"
package = "bench-many"
allow = [">=1.0.0, <2"]
[[registries.rules]]
kind = "version_gate"
package = "event-stream"
block = ["3.3.6"]
[[registries.rules]]
kind = "version_gate"
package = "ua-parser-js"
block = ["0.7.29", "0.8.0", "1.0.0"]
[[registries.rules]]
kind = "version_gate"
package = "@acme/*"
allow = ["^2"]
[[registries.rules]]
kind = "version_gate"
package = "left-pad"
block = ["<1.0.0"]
TOML
} > "$WORK/hub.toml"

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
# The static upstream of the big documents: nginx over generated files.
python3 "$ROOT/benches/load/bigdocs.py" "$WORK/static" "http://127.0.0.1:$PORT_STATIC"
cat > "$WORK/static.conf" <<NGX
worker_processes 1;
pid $WORK/static.pid;
error_log $WORK/static-error.log;
events { worker_connections 1024; }
http {
  access_log off;
  default_type application/json;
  server {
    listen 127.0.0.1:$PORT_STATIC;
    root $WORK/static;
    index index.json;
    location /pypi/ { types { } default_type application/vnd.pypi.simple.v1+json; }
  }
}
NGX
"$NGINX" -c "$WORK/static.conf"
wait_http "http://127.0.0.1:$PORT_STATIC/npm/big-many"
python3 "$ROOT/benches/load/miss.py" serve "$PORT_SLOW" & PIDS+=("$!")
python3 "$ROOT/benches/load/seed.py" "$U" "$TOKEN" >/dev/null
start "$WORK/hub.toml"; HUB=$LAST; wait_http "http://127.0.0.1:$PORT_HUB/healthz"
START_RSS=$(awk '/^VmRSS:/ { print int($2 / 1024) }' "/proc/$HUB/status")
sleep 1 # npm-rules' release_age_gate (1 s) must see every seeded version as old enough
rss() { awk '/^VmRSS:/ { print int($2 / 1024) }' "/proc/$1/status"; }
hwm() { awk '/^VmHWM:/ { print int($2 / 1024) }' "/proc/$1/status"; }
die() { echo "run.sh: $*" >&2; exit 1; }
# GET url [curl args...], saving the body to $OUT (default /dev/null); any non-2xx aborts.
OUT=/dev/null
get_ok() {
  local url=$1 code; shift
  code=$(curl -s -o "$OUT" -w '%{http_code}' "$@" "$url") || die "GET $url failed (curl exit $?)"
  [[ "$code" == 2?? ]] || die "GET $url answered HTTP $code (expected 2xx)"
}

# Every workload is a path on the hub (under /proxy/<registry>/); nginx serves the bytes the
# hub returned for it at the same path, one file per Accept variant (see SUFFIX below).
H="http://127.0.0.1:$PORT_HUB"
declare -a NAMES PATHS HDRS CONNS TOKS
# ONLY=regex keeps the matching workloads (e.g. ONLY='tarball 100' while profiling).
# add NAME PATH HEADER CONNS [TOKENS]: TOKENS "both" (anonymous and token, default) or "token".
add() { [[ -n "${ONLY:-}" && ! "$1" =~ $ONLY ]] && return 0; NAMES+=("$1"); PATHS+=("$2"); HDRS+=("$3"); CONNS+=("$4"); TOKS+=("${5:-both}"); }
CORGI="Accept: application/vnd.npm.install-v1+json"
PEP691="Accept: application/vnd.pypi.simple.v1+json"
PEP503="Accept: text/html"
# The saved file for a path requested with an Accept header gets the header's suffix; nginx
# maps Accept to the same suffix and serves $uri$suffix.
suffix() { case "$1" in *install-v1*) echo .corgi ;; *vnd.pypi.simple.v1+json*) echo .pypijson ;; *text/html*) echo .html ;; *) echo "" ;; esac; }
# A wheel's URL as the proxy's simple page lists it.
wheel_url() { # project
  OUT="$WORK/wheel-page.json"; get_ok "$H/proxy/pypi/simple/$1/" -H "$PEP691"; OUT=/dev/null
  python3 -c '
import json, sys, urllib.parse
u = urllib.parse.urlsplit(json.load(open(sys.argv[1]))["files"][0]["url"])
assert u.netloc == sys.argv[2], u
print(u.path)' "$WORK/wheel-page.json" "127.0.0.1:$PORT_HUB" || die "no wheel URL of this hub in $H/proxy/pypi/simple/$1/"
}
WHEEL=$(wheel_url bench-100k)
WHEEL50=$(wheel_url bench-50k)
NPM=/proxy/npm CARGO=/proxy/cargo PYPI=/proxy/pypi MVN=/proxy/maven/maven2/com/example/bench
add "npm packument, full (200 versions)" "$NPM/bench-many" "" "64 256"
add "npm packument, abbreviated" "$NPM/bench-many" "$CORGI" "64 256"
add "npm tarball 50 KiB" "$NPM/bench-50k/-/bench-50k-1.0.0.tgz" "" "64"
add "npm tarball 100 KiB" "$NPM/bench-100k/-/bench-100k-1.0.0.tgz" "" "64 256"
add "npm tarball 10 MiB" "$NPM/bench-10m/-/bench-10m-1.0.0.tgz" "" "8"
add "cargo index file (200 versions)" "$CARGO/registry/be/nc/bench-many" "" "64 256"
add "cargo .crate 50 KiB" "$CARGO/api/v1/crates/bench-50k/1.0.0/download" "" "64"
add "cargo .crate 100 KiB" "$CARGO/api/v1/crates/bench-100k/1.0.0/download" "" "64 256"
add "PyPI simple page, HTML (200 versions)" "$PYPI/simple/bench-many/" "$PEP503" "64 256"
add "PyPI simple page, JSON (200 versions)" "$PYPI/simple/bench-many/" "$PEP691" "64 256"
add "PyPI wheel 50 KiB" "$WHEEL50" "" "64"
add "PyPI wheel 100 KiB" "$WHEEL" "" "64 256"
add "maven-metadata.xml (200 versions)" "$MVN/bench-many/maven-metadata.xml" "" "64 256"
add "maven jar 50 KiB" "$MVN/bench-50k/1.0.0/bench-50k-1.0.0.jar" "" "64"
add "maven jar 100 KiB" "$MVN/bench-100k/1.0.0/bench-100k-1.0.0.jar" "" "64 256"
GO=/proxy/go/example.com
add "go @v/list (200 versions)" "$GO/bench-many/@v/list" "" "64 256"
add "go .info" "$GO/bench-many/@v/v1.199.0.info" "" "64"
add "go .mod" "$GO/bench-many/@v/v1.199.0.mod" "" "64"
add "go .zip 50 KiB" "$GO/bench-50k/@v/v1.0.0.zip" "" "64"
add "go .zip 100 KiB" "$GO/bench-100k/@v/v1.0.0.zip" "" "64 256"
add "go .zip 10 MiB" "$GO/bench-10m/@v/v1.0.0.zip" "" "8"
GEMS=/proxy/rubygems
add "rubygems /info (200 versions)" "$GEMS/info/bench-many" "" "64 256"
add "rubygems /versions (4 gems)" "$GEMS/versions" "" "64"
add "rubygems .gem 50 KiB" "$GEMS/gems/bench-50k-1.0.0.gem" "" "64"
add "rubygems .gem 100 KiB" "$GEMS/gems/bench-100k-1.0.0.gem" "" "64 256"
add "rubygems .gem 10 MiB" "$GEMS/gems/bench-10m-1.0.0.gem" "" "8"
# Big documents, rewritten and filtered per request (c=32, as a monorepo CI install).
add "npm packument 15 MB, abbreviated (3,000 versions)" "/proxy/npm-big/big-many" "$CORGI" "32"
add "npm packument 15 MB, full (3,000 versions)" "/proxy/npm-big/big-many" "" "32"
add "PyPI simple page, JSON (10,000 files)" "/proxy/pypi-big/simple/big-many/" "$PEP691" "32"
add "PyPI simple page, HTML (10,000 files)" "/proxy/pypi-big/simple/big-many/" "$PEP503" "32"
# Policy cost: the npm rows again through npm-rules (10 rules), with the token only.
add "npm packument, full (200 versions), 10 rules" "/proxy/npm-rules/bench-many" "" "64" token
add "npm tarball 100 KiB, 10 rules" "/proxy/npm-rules/bench-100k/-/bench-100k-1.0.0.tgz" "" "64" token

# Warm the proxies and save the exact bytes for nginx (at the same path, see suffix).
# The big documents are warmed just before their rows (see the loop below), so that the
# memory figures of the rows before them (c=256) do not count them.
is_big() { [[ "${NAMES[$1]}" == *"(3,000 versions)"* || "${NAMES[$1]}" == *"(10,000 files)"* ]]; }
warm() { # index
  local p=${PATHS[$1]} h=${HDRS[$1]} args=()
  OUT="$WORK/www$p$(suffix "$h")"
  mkdir -p "$(dirname "$OUT")"
  [ -n "$h" ] && args+=(-H "$h")
  [ "${TOKS[$1]}" = token ] && args+=(-H "Authorization: Bearer $TOKEN")
  get_ok "$H$p" "${args[@]}"
  OUT=/dev/null
}
mkdir -p "$WORK/www"
for i in "${!NAMES[@]}"; do is_big "$i" || warm "$i"; done
# The rules must filter nothing here, or the policy rows would measure a smaller document.
if [ -f "$WORK/www/proxy/npm-rules/bench-many" ]; then
  n=$(python3 -c 'import json, sys; print(len(json.load(open(sys.argv[1]))["versions"]))' "$WORK/www/proxy/npm-rules/bench-many")
  [ "$n" = 200 ] || die "npm-rules lists $n of the 200 versions of bench-many (a rule hides some)"
fi
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
  types { application/json json info; application/octet-stream tgz crate whl jar gem; application/zip zip; application/xml xml; text/html html; text/plain mod; }
  default_type application/json;
  map \$http_accept \$variant {
    default "";
    "~install-v1" ".corgi";
    "~vnd\\.pypi\\.simple\\.v1\\+json" ".pypijson";
    "~text/html" ".html";
  }
  server {
    listen 127.0.0.1:$PORT_NGINX;
    root $WORK/www;
    location / { try_files \$uri\$variant =404; }
  }
}
NGX
"$NGINX" -c "$WORK/nginx.conf"
N="http://127.0.0.1:$PORT_NGINX"
echo ok > "$WORK/www/ping"
wait_http "$N/ping"
# nginx must answer every row with the saved bytes (same Accept header, same file).
same_bytes() { # index
  local p=${PATHS[$1]} h=${HDRS[$1]} args=()
  OUT="$WORK/check"; [ -n "$h" ] && args+=(-H "$h")
  get_ok "$N$p" "${args[@]}"
  OUT=/dev/null
  cmp -s "$WORK/check" "$WORK/www$p$(suffix "$h")" || die "nginx serves other bytes than saved for $N$p (${NAMES[$1]})"
}
for i in "${!NAMES[@]}"; do is_big "$i" || same_bytes "$i"; done
IDLE_RSS=$(rss "$HUB")
[ -n "${KEEP:-}" ] && echo "KEEP: servers left running; work directory $WORK" >&2

# wrk: prints req/s, p50 and p99 (ms) for one run. A run that saw any non-2xx/3xx answer,
# or no answer at all, is recorded in $WORK/failed (with $ROW) and stops the script.
run_wrk() { # url conns header token
  local args=(-t2 -c"$2" -d"$DURATION" --latency) out
  [ -n "$3" ] && args+=(-H "$3")
  [ -n "$4" ] && args+=(-H "Authorization: Bearer $4")
  out=$(wrk "${args[@]}" "$1")
  if grep -q "Non-2xx or 3xx responses" <<<"$out"; then
    echo "$ROW: $1: $(grep "Non-2xx or 3xx responses" <<<"$out")" >> "$WORK/failed"
  fi
  grep "Socket errors" <<<"$out" | sed "s|^ *|run.sh: warning: $ROW: $1: |" >&2 || true
  awk '
    /Requests\/sec/ { rps = $2 }
    /^ +50%/ { p50 = $2 } /^ +99%/ { p99 = $2 }
    function ms(v) { if (v ~ /us$/) return v / 1000; if (v ~ /ms$/) return v + 0; if (v ~ /s$/) return v * 1000; return v }
    END { printf "%.0f %.2f %.2f\n", rps, ms(p50), ms(p99) }' <<<"$out"
}
median() { sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
measure() { # url conns header token -> "rps p50 p99" medians
  local r=() l50=() l99=()
  for _ in $(seq 1 "$RUNS"); do read -r a b c < <(run_wrk "$@"); r+=("$a"); l50+=("$b"); l99+=("$c"); done
  echo "$(printf '%s\n' "${r[@]}" | median) $(printf '%s\n' "${l50[@]}" | median) $(printf '%s\n' "${l99[@]}" | median)"
}
checked() { # rps: stop on a recorded failure or a run without a single answer
  [ -s "$WORK/failed" ] && die "non-2xx answers under load: $(cat "$WORK/failed")"
  [ "${1:-0}" -gt 0 ] || die "$ROW: no successful request (0 req/s)"
}

echo 5 > "/proc/$HUB/clear_refs"
DATE=$(date -u +%Y-%m-%d)
TABLE="| workload | c | batlehub req/s | p50 ms | p99 ms | nginx req/s | p50 ms | p99 ms | ratio |
|---|---|---|---|---|---|---|---|---|"
declare -A RPS # "name|c|anonymous" or "name|c|token" -> batlehub req/s
# Resident memory while the big documents are served (sampled every 100 ms), and after.
BIG_PEAK="" BIG_AFTER="" SAMPLER="" SMALL_PEAK=""
sample_max() { local max=0 r; while :; do r=$(rss "$HUB"); [ "$r" -gt "$max" ] && { max=$r; echo "$max" > "$WORK/bigmax"; }; sleep 0.1; done; }
big_done() { kill "$SAMPLER" 2>/dev/null || true; wait "$SAMPLER" 2>/dev/null || true; SAMPLER=""; BIG_PEAK=$(cat "$WORK/bigmax"); BIG_AFTER=$(rss "$HUB"); }
for i in "${!NAMES[@]}"; do
  big=0; is_big "$i" && big=1
  if [ "$big" = 1 ] && [ -z "$BIG_PEAK$SAMPLER" ]; then SMALL_PEAK=$(hwm "$HUB"); sample_max & SAMPLER=$!; PIDS+=("$SAMPLER"); fi
  if [ "$big" = 0 ] && [ -n "$SAMPLER" ]; then big_done; fi
  # A big document is fetched (a proxy miss, then rendered) while memory is sampled.
  [ "$big" = 1 ] && { warm "$i"; same_bytes "$i"; }
  toks=("" "$TOKEN"); [ "${TOKS[$i]}" = token ] && toks=("$TOKEN")
  for c in ${CONNS[$i]}; do
    # nginx serves the same file with or without a token: measured once per row and c.
    ROW="${NAMES[$i]}, c=$c, nginx"
    read -r nr n50 n99 < <(measure "$N${PATHS[$i]}" "$c" "${HDRS[$i]}" ""); checked "$nr"
    for tok in "${toks[@]}"; do
      label="${NAMES[$i]}"; [ -n "$tok" ] && label="$label, token"
      ROW="$label, c=$c, batlehub"
      read -r hr h50 h99 < <(measure "$H${PATHS[$i]}" "$c" "${HDRS[$i]}" "$tok"); checked "$hr"
      who=anonymous; [ -n "$tok" ] && who=token
      RPS["${NAMES[$i]}|$c|$who"]=$hr
      ratio=$(awk -v a="$hr" -v b="$nr" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }')
      TABLE+="
| $label | $c | $hr | $h50 | $h99 | $nr | $n50 | $n99 | $ratio |"
    done
  done
done
[ -n "$SAMPLER" ] && big_done
PEAK_RSS=$(hwm "$HUB")
# Policy and auth cost at c=64: the 10-rules rows (token) against the same workload on the
# plain proxy, anonymous and with the token.
COST="| workload (c=64) | anonymous, no rules req/s | token, no rules req/s | token, 10 rules req/s | ratio (10 rules + token / anonymous) |
|---|---|---|---|---|"
for i in "${!NAMES[@]}"; do
  [[ "${NAMES[$i]}" == *", 10 rules" ]] || continue
  base=${NAMES[$i]%, 10 rules}
  anon=${RPS["$base|64|anonymous"]:-}; tokr=${RPS["$base|64|token"]:-}; rules=${RPS["${NAMES[$i]}|64|token"]:-}
  ratio=$(awk -v a="$rules" -v b="$anon" 'BEGIN { if (b > 0) printf "%.2f", a / b; else printf "n/a" }')
  COST+="
| $base | ${anon:-n/a} | ${tokr:-n/a} | ${rules:-n/a} | $ratio |"
done
# Proxy-miss latency: cold packuments and tarballs through the hub against the slow upstream.
MISS=$(python3 "$ROOT/benches/load/miss.py" measure "http://127.0.0.1:$PORT_SLOW/" "$H/proxy/npm-slow/" "$([ "$QUICK" = 1 ] && echo 30 || echo 300)")
# 1 GiB through the 10 MiB artifact (the plain npm proxy), then the resident size.
echo 5 > "/proc/$HUB/clear_refs"; BEFORE=$(rss "$HUB")
for _ in $(seq 1 103); do get_ok "$H$NPM/bench-10m/-/bench-10m-1.0.0.tgz"; done
AFTER_GIB=$(hwm "$HUB")

REPORT="# Load benchmark, $DATE

Machine: $(nproc) cores, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo); wrk -t2, $DURATION per run, median of $RUNS runs; nginx: 1 worker, same bytes.

$TABLE

Policy and auth cost (npm, c=64): the \`npm-rules\` proxy (release-age gate, deny-latest,
6 version gates, versioning, quota) against the plain npm proxy.

$COST

What batlehub adds to a proxy miss (npm, sequential requests, each a miss; the upstream
answers after 20 ms):

$MISS

| memory / start-up | value |
|---|---|
| resident at start (every registry of the bench configured) | $START_RSS MiB |
| resident idle (after warm-up) | $IDLE_RSS MiB |
| resident peak over the rows before the big documents (c=64 and c=256; big documents not yet fetched) | ${SMALL_PEAK:-n/a} MiB |
| resident peak under load | $PEAK_RSS MiB |
| resident peak while serving the big documents | ${BIG_PEAK:-n/a} MiB |
| resident after the big documents | ${BIG_AFTER:-n/a} MiB |
| peak while downloading 1 GiB (10 MiB x 103) | $AFTER_GIB MiB (before: $BEFORE MiB) |
| cold start to first response (embedded default) | $COLD_MS ms |
"
echo "$REPORT"
# A partial run (QUICK, ONLY) prints its table but keeps the dated results file as it is.
if [ "$QUICK" != 1 ] && [ -z "${ONLY:-}" ]; then
  mkdir -p "$ROOT/benches/results"
  echo "$REPORT" > "$ROOT/benches/results/$DATE.md"
  echo "written to benches/results/$DATE.md"
fi
