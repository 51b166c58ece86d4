"""example_fanout: one start task, 20 parallel "work" tasks, and a join that sums their results."""

from __future__ import annotations

from rabbitrun.authoring import DAG, task

WIDTH = 20

with DAG("example_fanout", schedule=None, description="fan out and join", tags=["example"]) as dag:

    @task
    def start() -> int:
        return WIDTH

    @task
    def work(n: int) -> int:
        return n * n

    @task
    def join(results: list[int]) -> int:
        return sum(results)

    begin = start()
    parts = [work(n) for n in range(WIDTH)]
    begin >> parts
    join(parts)
