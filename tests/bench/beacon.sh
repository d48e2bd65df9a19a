#!/usr/bin/env bash
# Benchmark: the beacon and host stages (pipelines/beacon.toml) on ROWS
# generated connections as Zeek TSV (two weeks of campus traffic, so 14 daily
# beacon windows). Prints each stage's wall seconds, rows and peak RSS from
# the `runs` table, the run's peak RSS, and the beacons table's size.
# MEMORY_LIMIT is the pipeline's memory_limit (e.g. 2GB; default none).
#   bash tests/bench/beacon.sh [ROWS [MEMORY_LIMIT]]   (needs: bash tests/setup.sh)
set -euo pipefail
cd "$(dirname "$0")/../.."
rows=${1:-1000000}
limit=${2:-}
work=${BENCH_DIR:-target/bench}
mkdir -p "$work"
cargo build --release -q --workspace
bin=target/release/zeekml
echo "== machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -r)"
echo "== generate $rows rows as Zeek TSV"
rm -rf "$work/beacon_logs" "$work/wh_beacon"
$bin --log warn generate --rows "$rows" --seed 5 --format zeek-tsv --out "$work/beacon_logs"
echo "== zeekml run pipelines/beacon.toml --set memory_limit=$limit"
/usr/bin/time -f "whole run: %e s wall, peak RSS %M KiB" \
    $bin --log warn run pipelines/beacon.toml --set input="$work/beacon_logs" \
    --set memory_limit="$limit" --warehouse "$work/wh_beacon" >/dev/null
$bin sql --warehouse "$work/wh_beacon" \
    "SELECT stage, rows_in, rows_out, round(seconds, 2) AS seconds, round(peak_rss_mib) AS peak_rss_mib FROM runs ORDER BY stage_index"
$bin sql --warehouse "$work/wh_beacon" \
    "SELECT count(*) AS pair_days, count(DISTINCT window_start) AS days, round(max(threat_score), 3) AS top_threat FROM beacons"
