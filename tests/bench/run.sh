#!/usr/bin/env bash
# Benchmark: generate 2M UWF-shaped rows, run the default pipeline, print
# per-stage wall seconds and peak RSS, then run the pandas + LightGBM peer
# and zeekml's equivalent of its work side by side.
#   bash tests/bench/run.sh [ROWS]          (needs: bash tests/setup.sh)
set -euo pipefail
cd "$(dirname "$0")/../.."
rows=${1:-2000000}
work=${BENCH_DIR:-target/bench}
mkdir -p "$work"
cargo build --release -q --workspace
bin=target/release/zeekml
echo "== machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -r)"

echo "== generate $rows rows"
/usr/bin/time -f "generate: %e s wall, peak RSS %M KiB" \
    $bin --log warn generate --rows "$rows" --out "$work/uwf" --seed 42
du -sh "$work/uwf" | awk '{print "csv size: " $1}'

report() {
    $bin --log warn sql --warehouse "$1" --format table \
        "SELECT stage, rows_in, rows_out, round(seconds, 2) AS seconds, round(peak_rss_mib) AS peak_rss_mib
         FROM runs WHERE run_id = (SELECT max(run_id) FROM runs) ORDER BY stage_index"
}

echo "== zeekml run pipelines/uwf_recon.toml (both evaluation splits)"
rm -rf "$work/wh"
/usr/bin/time -f "pipeline: %e s wall, peak RSS %M KiB" \
    $bin --log warn run pipelines/uwf_recon.toml --set input="$work/uwf" --warehouse "$work/wh" >/dev/null
report "$work/wh"
$bin --log warn sql --warehouse "$work/wh" \
    "SELECT split, rows, positives, round(roc_auc, 6) AS roc_auc, round(pr_auc, 6) AS pr_auc, round(precision, 4) AS precision, round(recall, 4) AS recall, round(f1, 4) AS f1, fpr, threshold_rule, best_iteration FROM metrics ORDER BY split"

echo "== side by side: the peer's work (dropna, one random stratified split, 100 rounds)"
# The peer's Python: PEER_PYTHON, else a venv made here on the first run.
py=${PEER_PYTHON:-target/peer-venv/bin/python}
if ! "$py" -c "import pandas, lightgbm, sklearn" 2>/dev/null; then
    python3 -m venv target/peer-venv && py=target/peer-venv/bin/python
    "$py" -m pip install -q pandas lightgbm scikit-learn
fi
/usr/bin/time -f "peer process: %e s wall, peak RSS %M KiB" "$py" tests/bench/peer.py "$work/uwf" 100
rm -rf "$work/wh_notebook"
/usr/bin/time -f "zeekml process: %e s wall, peak RSS %M KiB" \
    $bin --log warn run tests/bench/notebook.toml --set input="$work/uwf" --warehouse "$work/wh_notebook" >/dev/null
report "$work/wh_notebook"
$bin --log warn sql --warehouse "$work/wh_notebook" \
    "SELECT split, rows, round(roc_auc, 6) AS roc_auc FROM metrics"
