"""example_etl: extract -> transform -> load with @task, values passed as return values, then a bash notify."""

from __future__ import annotations

from typing import Any

from rabbitrun.authoring import DAG, BashOperator, task

with DAG("example_etl", schedule=None, description="extract, transform, load", tags=["example"]) as dag:

    @task
    def extract() -> dict[str, Any]:
        return {"rows": [3, 1, 4, 1, 5, 9, 2, 6]}

    @task
    def transform(raw: dict[str, Any]) -> dict[str, Any]:
        rows = raw["rows"]
        return {"count": len(rows), "total": sum(rows)}

    @task
    def load(summary: dict[str, Any], **context: Any) -> None:
        context["ti"].log.info("loading %s rows (total %s)", summary["count"], summary["total"])

    load(transform(extract())) >> BashOperator(task_id="notify", bash_command="echo done")
