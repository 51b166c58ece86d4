"""Scheduled DAGs: daily with catchup over a few days, and a max_active_runs limit."""

from datetime import UTC, datetime, timedelta

from rabbitrun import DAG, task

with DAG(
    "daily_catchup",
    schedule="@daily",
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    end_date=datetime(2026, 1, 4, tzinfo=UTC),
    catchup=True,
    max_active_runs=1,
) as daily_catchup:

    @task
    def interval(**context):
        return [context["data_interval_start"].isoformat(), context["data_interval_end"].isoformat(), context["ds"]]

    interval()

with DAG(
    "six_hourly", schedule=timedelta(hours=6), start_date=datetime(2026, 1, 1, tzinfo=UTC), catchup=False
) as six_hourly:

    @task
    def noop():
        return None

    noop()
