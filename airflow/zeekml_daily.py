"""zeekml, once a day: score the day's Zeek conn logs, then beacon and host scores.

For the run's logical date (``{{ ds }}``, a UTC day) the tasks write the
``date=`` partitions of ``alerts`` (pipelines/zeek_score.toml) and of
``beacons``, ``hosts`` and the other beacon tables (pipelines/beacon.toml).
A rerun replaces only its day, so retries and backfills are safe. A failed
zeekml exits non-zero: the task fails and is retried.

Settings, each an Airflow Variable, else an environment variable of the same
name, else the default below:

    ZEEKML_BIN        zeekml binary
    ZEEKML_HOME       checkout holding pipelines/ and sql/ (the tasks run there)
    ZEEKML_LOGS       Zeek log archive: <logs>/<YYYY-MM-DD>/conn.*
    ZEEKML_WAREHOUSE  warehouse directory
    ZEEKML_MODEL      trained model directory (<warehouse>/models/<name>)
"""

import os
from datetime import datetime

from airflow.providers.standard.operators.bash import BashOperator
from airflow.sdk import DAG

DEFAULTS = {
    "ZEEKML_BIN": "zeekml",
    "ZEEKML_HOME": "/srv/zeekml",
    "ZEEKML_LOGS": "/opt/zeek/logs",
    "ZEEKML_WAREHOUSE": "/srv/zeekml/warehouse",
    "ZEEKML_MODEL": "/srv/zeekml/warehouse/models/uwf_recon",
}


def setting(name):
    """A template: the Variable `name` when the task runs, else env or default."""
    fallback = os.environ.get(name, DEFAULTS[name])
    return "{{ var.value.get(%r, %r) }}" % (name, fallback)


BIN, HOME, LOGS, WAREHOUSE, MODEL = (setting(name) for name in DEFAULTS)
DAY = "{{ ds }}"  # the run's logical date, YYYY-MM-DD
ZEEKML = f"cd '{HOME}' && '{BIN}' --log-format json run"

with DAG(
    dag_id="zeekml_daily",
    description="Zeek conn logs -> alerts, beacons and hosts partitions of the day",
    schedule="@daily",
    # catchup is off: a new install runs the latest day only. The early start
    # lets `airflow backfill create` and `airflow dags test` run archived days.
    start_date=datetime(2010, 1, 1),
    catchup=False,
    # Retried 5 minutes apart (Airflow's [core] default_task_retry_delay).
    default_args={"retries": 2},
    tags=["zeekml"],
):
    score = BashOperator(
        task_id="score_alerts",
        bash_command=(
            f"{ZEEKML} pipelines/zeek_score.toml"
            f" --set logs='{LOGS}' --set date={DAY} --set model='{MODEL}'"
            f" --warehouse '{WAREHOUSE}' --wait-for-lock 600"
        ),
    )
    beacons = BashOperator(
        task_id="beacons_hosts",
        bash_command=(
            f"{ZEEKML} pipelines/beacon.toml"
            f" --set date={DAY} --set input='{LOGS}/{DAY}/conn.*'"
            f" --warehouse '{WAREHOUSE}' --wait-for-lock 600"
        ),
    )
    score >> beacons
