"""TaskGroup: a named set of tasks (and nested groups) that prefixes their ids and links by its ends.

``with TaskGroup("extract") as g:`` makes the tasks created inside ``extract.<task_id>`` (unless
``prefix_group_id=False``), gives them the group's ``default_args``, and lets ``g`` stand on either
side of ``>>``: as upstream it stands for its leaves (members with no downstream inside the
group), as downstream for its roots, computed when the edge is made, as in Airflow. A group is
only an authoring shape: the scheduler sees its tasks.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterable, Mapping
from contextvars import Token
from types import TracebackType
from typing import Any, TypeVar

from rabbitrun.authoring.baseoperator import BaseOperator, EdgeModifier, linkable
from rabbitrun.authoring.dagcontext import (
    OwningDag,
    OwningGroup,
    current_dag,
    current_group,
    enter,
    enter_group,
    leave,
    leave_group,
    validate_id,
)
from rabbitrun.errors import DagDefinitionError

__all__ = ["SubDagOperator", "TaskGroup", "TaskGroupFactory", "task_group"]

_T = TypeVar("_T")


class TaskGroup:
    """Airflow's TaskGroup: ``group_id``, ``prefix_group_id``, ``parent_group``, ``dag``,
    ``default_args``, ``tooltip``, ``ui_color``, ``ui_fgcolor``, ``add_suffix_on_collision``,
    ``group_display_name``."""

    def __init__(
        self,
        group_id: str,
        prefix_group_id: bool = True,
        parent_group: TaskGroup | None = None,
        dag: OwningDag[Any] | None = None,
        default_args: Mapping[str, Any] | None = None,
        tooltip: str = "",
        ui_color: str = "CornflowerBlue",
        ui_fgcolor: str = "#000",
        add_suffix_on_collision: bool = False,
        group_display_name: str = "",
    ) -> None:
        validate_id("group_id", group_id)
        parent = parent_group if parent_group is not None else current_group()
        if parent is not None and not isinstance(parent, TaskGroup):
            raise DagDefinitionError(f"TaskGroup {group_id!r}: parent_group must be a TaskGroup, got {parent!r}")
        self.parent_group: TaskGroup | None = parent
        self.dag: OwningDag[Any] | None = dag or current_dag() or (parent.dag if parent else None)
        self._group_id = group_id
        if add_suffix_on_collision:
            self._group_id = self._free_label(group_id)
        elif self.dag is not None and self.dag.has_task(self.group_id):
            raise DagDefinitionError(
                f"TaskGroup id {self.group_id!r} clashes with a task id of DAG {self.dag.dag_id!r}"
            )
        self.prefix_group_id = prefix_group_id
        self.default_args: dict[str, Any] = {**(parent.default_args if parent else {}), **(default_args or {})}
        self.tooltip = tooltip
        self.ui_color = ui_color
        self.ui_fgcolor = ui_fgcolor
        self.group_display_name = group_display_name or group_id
        #: Direct members by id (tasks and nested groups), in creation order.
        self.children: dict[str, BaseOperator | TaskGroup] = {}
        self._tokens: list[tuple[Token[Any], Token[Any] | None]] = []
        if parent is not None:
            parent.add(self)

    def __repr__(self) -> str:
        return f"<TaskGroup {self.group_id}>"

    @property
    def group_id(self) -> str:
        """The full id: prefixed by the parent's when the parent prefixes its members."""
        parent = self.parent_group
        if parent is not None and parent.prefix_group_id:
            return parent.child_id(self._group_id)
        return self._group_id

    @property
    def label(self) -> str:
        return self._group_id

    def child_id(self, label: str) -> str:
        """The id a member called ``label`` gets."""
        return f"{self.group_id}.{label}" if self.prefix_group_id else label

    def add(self, node: Any) -> None:
        """Called by a task or nested group created inside this one."""
        key = node.task_id if isinstance(node, BaseOperator) else node.group_id
        existing = self.children.get(key)
        if existing is not None and existing is not node:
            raise DagDefinitionError(f"TaskGroup {self.group_id!r} already has a member {key!r}")
        self.children[key] = node

    def _free_label(self, base: str) -> str:
        """``base``, or ``base__1``, ... : a label no sibling group (or task) has (repeated @task_group calls)."""
        parent = self.parent_group
        label, n = base, 0
        while self._label_taken(parent.child_id(label) if parent is not None else label):
            n += 1
            label = f"{base}__{n}"
        return label

    def _label_taken(self, full_id: str) -> bool:
        if self.parent_group is not None and full_id in self.parent_group.children:
            return True
        dag = self.dag
        tasks = dag.task_dict if dag is not None and hasattr(dag, "task_dict") else {}
        return any(t == full_id or t.startswith(f"{full_id}.") for t in tasks)

    # --- context manager ----------------------------------------------------

    def __enter__(self) -> TaskGroup:
        # a group given dag= opens that DAG too, so tasks inside join it without their own dag=
        dag_token = enter(self.dag) if self.dag is not None and current_dag() is not self.dag else None
        self._tokens.append((enter_group(self), dag_token))
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        group_token, dag_token = self._tokens.pop()
        leave_group(group_token)
        if dag_token is not None:
            leave(dag_token)

    # --- members ------------------------------------------------------------

    def iter_tasks(self) -> list[BaseOperator]:
        """Every task in this group and its nested groups, in creation order."""
        tasks: list[BaseOperator] = []
        for child in self.children.values():
            tasks.extend(child.iter_tasks() if isinstance(child, TaskGroup) else [child])
        return tasks

    def get_roots(self) -> list[BaseOperator]:
        """Members with no upstream inside the group: where an edge into the group lands."""
        ids = {t.task_id for t in self.iter_tasks()}
        return [t for t in self.iter_tasks() if not t.upstream_task_ids & ids]

    def get_leaves(self) -> list[BaseOperator]:
        """Members with no downstream inside the group: where an edge out of the group starts."""
        ids = {t.task_id for t in self.iter_tasks()}
        return [t for t in self.iter_tasks() if not t.downstream_task_ids & ids]

    def edge_operators(self, upstream: bool) -> list[BaseOperator]:
        ends = self.get_leaves() if upstream else self.get_roots()
        if not ends:
            raise DagDefinitionError(f"TaskGroup {self.group_id!r} has no tasks to link")
        return ends

    # --- dependencies -------------------------------------------------------

    def set_downstream(self, other: Any, edge_modifier: EdgeModifier | None = None) -> None:
        for leaf in self.get_leaves():
            leaf.set_downstream(other, edge_modifier=edge_modifier)

    def set_upstream(self, other: Any, edge_modifier: EdgeModifier | None = None) -> None:
        for root in self.get_roots():
            root.set_upstream(other, edge_modifier=edge_modifier)

    def __rshift__(self, other: _T) -> _T:
        if not linkable(other):
            return NotImplemented
        self.set_downstream(other)
        return other

    def __lshift__(self, other: _T) -> _T:
        if not linkable(other):
            return NotImplemented
        self.set_upstream(other)
        return other

    def __rrshift__(self, other: Iterable[Any]) -> TaskGroup:
        self.set_upstream(other)
        return self

    def __rlshift__(self, other: Iterable[Any]) -> TaskGroup:
        self.set_downstream(other)
        return self


class TaskGroupFactory:
    """A ``@task_group`` function: each call opens a new TaskGroup (named after the function,
    ``__1``, ``__2``... for repeated calls), runs the body inside it and returns what the body
    returns (so ``start >> grp(x) >> end`` binds to the task it returns), else the group."""

    def __init__(self, function: Callable[..., Any], group_kwargs: Mapping[str, Any]) -> None:
        self.function = function
        self.group_kwargs = dict(group_kwargs)
        functools.update_wrapper(self, function)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        options = dict(self.group_kwargs)
        group_id = options.pop("group_id", None) or self.function.__name__
        options.setdefault("add_suffix_on_collision", True)
        if not options.get("tooltip") and self.function.__doc__:
            options["tooltip"] = inspect.cleandoc(self.function.__doc__)
        with TaskGroup(group_id, **options) as group:
            returned = self.function(*args, **kwargs)
        return returned if returned is not None else group

    def override(self, **group_kwargs: Any) -> TaskGroupFactory:
        return TaskGroupFactory(self.function, {**self.group_kwargs, **group_kwargs})

    def partial(self, **kwargs: Any) -> Any:
        raise DagDefinitionError(
            f"@task_group {self.function.__name__!r}: mapped task groups (partial/expand) are not supported yet; "
            "map the tasks inside the group instead"
        )

    def expand(self, **kwargs: Any) -> Any:
        return self.partial()


class SubDagOperator:
    """Removed in Airflow 3 (deprecated since 2.0): refused with the replacement named."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise DagDefinitionError(
            "SubDagOperator is not supported (removed in Airflow 3): group the tasks with TaskGroup "
            "(`with TaskGroup('section'):` or @task_group) instead"
        )


def task_group(python_callable: Callable[..., Any] | None = None, /, **group_kwargs: Any) -> Any:
    """``@task_group`` or ``@task_group(group_id=..., tooltip=..., default_args=..., prefix_group_id=...)``."""
    if python_callable is not None:
        return TaskGroupFactory(python_callable, group_kwargs)

    def decorate(function: Callable[..., Any]) -> TaskGroupFactory:
        return TaskGroupFactory(function, group_kwargs)

    return decorate


_: type[OwningGroup] = TaskGroup  # TaskGroup satisfies what operators need of their group
