#!/usr/bin/env bash
# The longer fuzz run: every fuzz target with PROPTEST_CASES cases (30000 by default;
# `cargo test --workspace` runs them with proptest's default of 256). Prints each target's
# result and the status histograms of the request and upstream-document fuzzers; a failure
# prints the shrunk input. Results of a run go in fuzz/RESULTS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
export PROPTEST_CASES="${PROPTEST_CASES:-30000}"
start=$(date +%s)
status=0
for format in npm cargo pypi maven go rubygems; do
  echo "== batlehub-$format: parsers"
  cargo test -q -p "batlehub-$format" --lib fuzz:: -- --nocapture || status=1
  echo "== batlehub-$format: requests and upstream documents"
  cargo test -q -p "batlehub-$format" --test conformance fuzz_suite -- --nocapture || status=1
done
echo "== shared: path segments, digests, forwarded headers, credentials"
cargo test -q -p batlehub-test --test fuzz_shared -- --nocapture || status=1
echo "== auth: unverified JWTs"
cargo test -q -p batlehub-auth --lib fuzz_ -- --nocapture || status=1
echo "PROPTEST_CASES=$PROPTEST_CASES, $(( $(date +%s) - start )) s, exit $status"
exit $status
