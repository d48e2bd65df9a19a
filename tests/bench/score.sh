#!/usr/bin/env bash
# Benchmark: score native Zeek TSV conn logs with a saved model, the path a
# sensor's logs take. Generates ROWS connections as Zeek TSV, uses the model
# of tests/bench/run.sh if there is one (else trains one on 200,000 generated
# CSV rows), then times `zeekml score` and prints rows, wall seconds, rows/s
# and peak RSS.
#   bash tests/bench/score.sh [ROWS]        (needs: bash tests/setup.sh)
#   EXPLAIN=3 bash tests/bench/score.sh     (with the 3 largest reasons per row)
set -euo pipefail
cd "$(dirname "$0")/../.."
rows=${1:-2000000}
work=${BENCH_DIR:-target/bench}
mkdir -p "$work"
cargo build --release -q --workspace
bin=target/release/zeekml
echo "== machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -r)"

# Seed 1, not run.sh's 42: the scored connections are not the training rows.
echo "== generate $rows rows as Zeek TSV"
/usr/bin/time -f "generate: %e s wall, peak RSS %M KiB" \
    $bin --log warn generate --rows "$rows" --seed 1 --format zeek-tsv --out "$work/zeek"
du -sh "$work/zeek" | awk '{print "tsv size: " $1}'

model=$work/wh/models/uwf_recon
if [ ! -f "$model/model_card.json" ]; then
    model=$work/wh_small/models/uwf_recon
    if [ ! -f "$model/model_card.json" ]; then
        echo "== no model from tests/bench/run.sh: train one on 200000 generated CSV rows"
        $bin --log warn generate --rows 200000 --seed 42 --out "$work/uwf_small" >/dev/null
        rm -rf "$work/wh_small"
        $bin --log warn run pipelines/uwf_recon.toml --set input="$work/uwf_small" \
            --warehouse "$work/wh_small" >/dev/null
    fi
fi
echo "== model: $model"

echo "== zeekml score --input $work/zeek"
rm -f "$work/scored.parquet"
timing=$(mktemp)
trap 'rm -f "$timing"' EXIT
out=$(/usr/bin/time -o "$timing" -f "%e %M" \
    $bin --log warn score --model "$model" --input "$work/zeek" --out "$work/scored.parquet" \
        ${EXPLAIN:+--explain "$EXPLAIN"})
echo "$out"
scored=$(sed -n 's/^scored \([0-9]*\) connections.*/\1/p' <<<"$out")
read -r wall rss_kib <"$timing"
awk -v rows="$scored" -v wall="$wall" -v rss="$rss_kib" 'BEGIN {
    printf "rows: %d\nwall: %.2f s\nrows/s: %.0f\npeak RSS: %.0f MiB\n", rows, wall, (wall > 0 ? rows / wall : 0), rss / 1024
}'
