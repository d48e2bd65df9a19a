#!/usr/bin/env bash
# Runs airflow/zeekml_daily.py in a real Airflow (apache-airflow 3.3.2 from
# PyPI, SQLite, `airflow dags test`) on a real Zeek capture, then checks the
# partitions it wrote with `zeekml sql`.
#
#   cargo build --release && bash tests/airflow/run.sh
#
# The venv (AIRFLOW_VENV, default target/airflow-venv) is created on the
# first run (about 100 s) and reused after. Everything else (Airflow home,
# SQLite database, each DAG run's log with its tasks' output, the
# warehouse) goes to a temp dir, removed on success unless
# ZEEKML_AIRFLOW_KEEP=1 and kept on failure for its logs.
set -euo pipefail
cd "$(dirname "$0")/../.."
repo=$PWD
zeekml=$repo/target/release/zeekml
venv=${AIRFLOW_VENV:-target/airflow-venv}
capture=$repo/../shared/realdata/stratosphere-labeled-tsv/001-zeek-scenario-malicious.labeled-conn.log
day=2017-03-08

fail() { echo "tests/airflow: FAIL: $*" >&2; exit 1; }
[ -x "$zeekml" ] || fail "$zeekml not found: run cargo build --release first"
[ -f "$capture" ] || fail "real capture $capture not found"

# A venv whose install was cut short is made again.
if ! "$venv/bin/python" -c "import airflow.sdk" 2>/dev/null; then
    echo "tests/airflow: installing apache-airflow 3.3.2 into $venv"
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check apache-airflow==3.3.2
fi

tmp=$(mktemp -d /tmp/airflow-test.XXXXXX)
echo "tests/airflow: working in $tmp"

# Airflow: home, SQLite database and task logs in the temp dir, only our DAG.
export AIRFLOW_HOME=$tmp/airflow
export AIRFLOW__CORE__DAGS_FOLDER=$repo/airflow
export AIRFLOW__CORE__LOAD_EXAMPLES=False
export AIRFLOW__LOGGING__BASE_LOG_FOLDER=$tmp/airflow/logs
export AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=sqlite:///$tmp/airflow/airflow.db
export AIRFLOW__CORE__DEFAULT_TASK_RETRY_DELAY=1  # the DAG's retries, 1 s apart
export PYTHONDONTWRITEBYTECODE=1  # no __pycache__ next to the DAG
# The DAG's settings from the environment; the warehouse from an Airflow
# Variable (set below), which wins over the environment.
export ZEEKML_BIN=$zeekml
export ZEEKML_HOME=$repo
export ZEEKML_LOGS=$tmp/logs
export ZEEKML_WAREHOUSE=$tmp/not-the-warehouse
export ZEEKML_MODEL=$tmp/train/models/uwf_recon
warehouse=$tmp/warehouse

# Input: a model trained on 200k synthetic rows, and one day of Zeek logs
# holding the real capture (its ts are relative, 0..3000 s; with date set,
# every connection is that day's).
"$zeekml" generate --rows 200000 --out "$tmp/uwf" >/dev/null 2>&1 ||
    fail "zeekml generate failed"
"$zeekml" run pipelines/uwf_recon.toml --set input="$tmp/uwf" \
    --warehouse "$tmp/train" >"$tmp/train.log" 2>&1 ||
    { tail -n 20 "$tmp/train.log" >&2; fail "training the model failed"; }
mkdir -p "$ZEEKML_LOGS/$day"
ln -s "$capture" "$ZEEKML_LOGS/$day/conn.log"

"$venv/bin/airflow" db migrate >"$tmp/migrate.log" 2>&1 ||
    { tail -n 20 "$tmp/migrate.log" >&2; fail "airflow db migrate failed"; }
"$venv/bin/airflow" variables set ZEEKML_WAREHOUSE "$warehouse" >>"$tmp/migrate.log" 2>&1 ||
    { tail -n 20 "$tmp/migrate.log" >&2; fail "airflow variables set failed"; }

# One DAG run; its log (every task's output included) goes to $tmp/$2.log.
dags_test() {
    echo "tests/airflow: airflow dags test zeekml_daily $1"
    "$venv/bin/airflow" dags test zeekml_daily "$1" >"$tmp/$2.log" 2>&1
}
sql() { "$zeekml" sql --warehouse "$warehouse" --format csv "$1" | tail -n +2; }
check_day() {
    alerts=$(sql "SELECT count(*) FROM alerts WHERE date = '$day'") ||
        fail "$1: no alerts table in $warehouse"
    [ "$alerts" = 992 ] || fail "$1: alerts date=$day has '$alerts' rows, expected 992"
    top=$(sql "SELECT src_ip || ' -> ' || dest_ip FROM beacons WHERE date = '$day'
               ORDER BY threat_score DESC, score DESC LIMIT 1") ||
        fail "$1: no beacons table in $warehouse"
    [ "$top" = "192.168.1.115 -> 41.108.179.197" ] ||
        fail "$1: beacons date=$day ranks '$top' first, expected 192.168.1.115 -> 41.108.179.197"
    beacons=$(sql "SELECT count(*) FROM beacons WHERE date = '$day'")
    { sql "SELECT * FROM alerts WHERE date = '$day' ORDER BY uid"
      sql "SELECT * FROM beacons WHERE date = '$day' ORDER BY src_ip, dest_ip, dest_port, protocol"
    } >"$tmp/$2.csv"
}

# 1. The day's logs: both tasks succeed and write the day's partitions.
dags_test "$day" first ||
    { tail -n 40 "$tmp/first.log" >&2; fail "airflow dags test $day failed (log: $tmp/first.log)"; }
grep -q "DagRun Finished: .*state=success" "$tmp/first.log" ||
    fail "the DAG run of $day did not succeed (log: $tmp/first.log)"
[ ! -e "$ZEEKML_WAREHOUSE" ] || fail "the DAG wrote to \$ZEEKML_WAREHOUSE, not to the Variable's warehouse"
check_day "first run" first
echo "tests/airflow: ok: alerts date=$day has $alerts rows; beacons date=$day ranks $top first"

# 2. The same day again: the partitions are replaced, not appended to.
dags_test "$day" rerun ||
    { tail -n 40 "$tmp/rerun.log" >&2; fail "airflow dags test $day (rerun) failed (log: $tmp/rerun.log)"; }
check_day "rerun" rerun
cmp -s "$tmp/first.csv" "$tmp/rerun.csv" ||
    fail "rerun: the alerts or beacons rows of $day differ from the first run's"
echo "tests/airflow: ok: a rerun of $day leaves the same $alerts alerts and $beacons beacons"

# 3. A day without logs: score_alerts fails three times (retries 2, 1 s
# apart here), beacons_hosts never runs, the run fails and writes nothing.
missing=2017-03-09
if dags_test "$missing" missing; then
    fail "airflow dags test $missing (no logs) succeeded (log: $tmp/missing.log)"
fi
tries=$(grep -c "matches no files" "$tmp/missing.log" || true)
[ "$tries" = 3 ] || fail "$missing: score_alerts ran $tries times, expected 3 (log: $tmp/missing.log)"
grep -q "DagRun Finished: .*state=failed" "$tmp/missing.log" ||
    fail "$missing: the DAG run did not fail (log: $tmp/missing.log)"
! grep -q "pipelines/beacon.toml" "$tmp/missing.log" ||
    fail "$missing: beacons_hosts ran after score_alerts failed (log: $tmp/missing.log)"
left=$(sql "SELECT count(*) FROM alerts WHERE date = '$missing'")
[ "$left" = 0 ] || fail "$missing: alerts has $left rows for a day without logs"
echo "tests/airflow: ok: $missing without logs failed after 3 tries and wrote nothing"
[ "${ZEEKML_AIRFLOW_KEEP:-0}" = 1 ] || rm -rf "$tmp"
