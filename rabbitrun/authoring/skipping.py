"""How a running task skips tasks downstream of it: SkipMixin, the branch choice, the short circuit.

A task process cannot touch the DB (DESIGN "Task process boundary"): an operator names the task ids
it skips on ``context["ti"]`` (``skip_downstream``), the runner reports them with the attempt's
success, and its worker records them, but only those the scheduler allowed in the task's envelope
(:func:`may_skip`: the tasks downstream of a skipping operator). The scheduler's trigger rules then
carry the skips further (all_success skips, none_failed_min_one_success joins).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

from rabbitrun.authoring.baseoperator import BaseOperator, Context
from rabbitrun.errors import DagDefinitionError

__all__ = ["BranchMixIn", "ShortCircuitMixIn", "SkipMixin", "SkipRecorder", "downstream_closure", "may_skip"]


class SkipRecorder(Protocol):
    """What ``context["ti"]`` offers a skipping operator (the runner's task instance)."""

    def skip_downstream(self, task_ids: Iterable[str]) -> None: ...


def downstream_closure(task: BaseOperator) -> set[str]:
    """Every task id downstream of ``task``, directly or not."""
    dag = task.dag
    if dag is None:
        return set(task.downstream_task_ids)
    seen: set[str] = set()
    todo = list(task.downstream_task_ids)
    while todo:
        task_id = todo.pop()
        if task_id not in seen:
            seen.add(task_id)
            todo.extend(dag.get_task(task_id).downstream_task_ids)
    return seen


def may_skip(task: BaseOperator) -> tuple[str, ...]:
    """The task ids ``task`` may skip when it succeeds: all downstream of a skipping operator, none for
    any other task. The scheduler puts them in the task's envelope; the worker refuses others."""
    return tuple(sorted(downstream_closure(task))) if isinstance(task, SkipMixin) else ()


class SkipMixin:
    """Operators that skip tasks downstream of them (Airflow's SkipMixin)."""

    def skip(self, ti: Any, tasks: Iterable[str | BaseOperator]) -> None:
        """Skip these tasks of the running DAG run (``ti`` is ``context["ti"]``), with this task's success."""
        ids = [t.task_id if isinstance(t, BaseOperator) else str(t) for t in tasks]
        if ids:
            recorder: SkipRecorder = ti
            recorder.skip_downstream(ids)


class BranchMixIn(SkipMixin):
    """The branch choice: follow the task ids chosen, skip the other direct downstream tasks."""

    def do_branch(self, context: Context, branches_to_execute: str | Iterable[str] | None) -> Any:
        """Skip the direct downstream tasks not chosen (all when None); returns the choice (its XCom)."""
        self.skip_all_except(context["ti"], branches_to_execute)
        return branches_to_execute

    def skip_all_except(self, ti: Any, branch_task_ids: str | Iterable[str] | None) -> None:
        """Airflow's rule: a direct downstream task is skipped unless it is chosen or downstream of a
        chosen one (so a join right after the branch is not skipped). A task group id follows the
        group's tasks directly downstream of the branch ("group.task" ids)."""
        me = _operator(self)
        dag = me.dag
        if dag is None:
            raise DagDefinitionError(f"task {me.task_id!r} is not in a DAG: it has nothing to branch to")
        chosen = _chosen_ids(me, branch_task_ids)
        followed = set(chosen)
        for task_id in chosen:
            followed |= downstream_closure(dag.get_task(task_id))
        self.skip(ti, sorted(me.downstream_task_ids - followed))


def _operator(mixin: object) -> BaseOperator:
    if not isinstance(mixin, BaseOperator):
        raise TypeError(f"{type(mixin).__name__} mixes a skipping mixin into something that is not an operator")
    return mixin


def _chosen_ids(me: BaseOperator, branch_task_ids: str | Iterable[str] | None) -> set[str]:
    """The branch's answer as task ids of its DAG; an answer naming no task fails the task, clearly."""
    if branch_task_ids is None:
        return set()
    answer = [branch_task_ids] if isinstance(branch_task_ids, str) else list(branch_task_ids)
    not_str = [value for value in answer if not isinstance(value, str)]
    if not_str:
        raise DagDefinitionError(
            f"branch task {me.task_id!r} must return a task id, a list of task ids or None; got {not_str!r}"
        )
    dag = me.dag
    assert dag is not None
    ids: set[str] = set()
    invalid = []
    for value in answer:
        if dag.has_task(value):
            ids.add(value)
            continue
        in_group = {t for t in me.downstream_task_ids if t.startswith(f"{value}.")}
        if in_group:
            ids |= in_group
        else:
            invalid.append(value)
    if invalid:
        raise DagDefinitionError(
            f"branch task {me.task_id!r} returned task ids that are not tasks of DAG {dag.dag_id!r}: "
            f"{sorted(invalid)}; its downstream tasks are {sorted(me.downstream_task_ids)}"
        )
    return ids


class ShortCircuitMixIn(SkipMixin):
    """A false condition skips downstream: every downstream task with ``ignore_downstream_trigger_rules``
    (the default), else only the direct ones, whose trigger rules then decide the rest. Teardown
    tasks are never skipped (Airflow's rule)."""

    ignore_downstream_trigger_rules: bool = True

    def short_circuit(self, context: Context, condition: Any) -> Any:
        me = _operator(self)
        me.log.info("Condition result is %s", condition)
        if condition:
            me.log.info("Proceeding with downstream tasks...")
            return condition
        dag = me.dag
        ids = downstream_closure(me) if self.ignore_downstream_trigger_rules else me.downstream_task_ids
        to_skip = sorted(t for t in ids if dag is None or not dag.get_task(t).is_teardown)
        me.log.info("Skipping downstream tasks %s", to_skip)
        self.skip(context["ti"], to_skip)
        return condition
