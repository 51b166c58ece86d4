"""Edge labels: ``a >> Label("when empty") >> b`` and ``a.set_downstream(b, edge_modifier=Label(...))``.

A Label is not a task: it remembers what stood on its left of ``>>`` and, once something stands
on its right, links the two and records ``{"label": ...}`` on each edge made
(``dag.get_edge_info(up, down)``). It only documents the graph; scheduling ignores it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, TypeVar

from rabbitrun.authoring.dagcontext import OwningDag
from rabbitrun.errors import DagDefinitionError

__all__ = ["EdgeModifier", "Label"]

_T = TypeVar("_T")


class EdgeModifier:
    """Something placed on edges: it links its upstream nodes to its downstream ones, adding its info."""

    def __init__(self, label: str | None = None) -> None:
        self.label = label
        self._upstream: list[Any] = []
        self._downstream: list[Any] = []

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.label!r})"

    def edge_info(self) -> dict[str, Any]:
        return {"label": self.label}

    def add_edge_info(self, dag: OwningDag[Any], upstream_id: str, downstream_id: str) -> None:
        dag.set_edge_info(upstream_id, downstream_id, self.edge_info())

    def set_upstream(self, other: Any) -> None:
        """``other >> label``: remember ``other``; link it to whatever is already downstream."""
        nodes = _nodes(other)
        for down in self._downstream:
            for up in nodes:
                up.set_downstream(down, edge_modifier=self)
        self._upstream.extend(nodes)

    def set_downstream(self, other: Any) -> None:
        """``label >> other``: link every remembered upstream node to ``other`` through this label."""
        nodes = _nodes(other)
        for up in self._upstream:
            for down in nodes:
                up.set_downstream(down, edge_modifier=self)
        self._downstream.extend(nodes)

    def __rshift__(self, other: _T) -> _T:
        self.set_downstream(other)
        return other

    def __lshift__(self, other: _T) -> _T:
        self.set_upstream(other)
        return other

    def __rrshift__(self, other: Any) -> EdgeModifier:
        self.set_upstream(other)
        return self

    def __rlshift__(self, other: Any) -> EdgeModifier:
        self.set_downstream(other)
        return self


class Label(EdgeModifier):
    """A text shown on the edges it stands on (Airflow's ``airflow.utils.edgemodifier.Label``)."""

    def __init__(self, label: str) -> None:
        if not isinstance(label, str):
            raise DagDefinitionError(f"Label takes a string, got {label!r}")
        super().__init__(label)


def _nodes(other: Any) -> list[Any]:
    """Tasks, XComArgs and TaskGroups (anything with ``set_downstream``), flattening one list."""
    items = list(other) if isinstance(other, Iterable) and not isinstance(other, (str, bytes)) else [other]
    for item in items:
        if isinstance(item, EdgeModifier) or not hasattr(item, "set_downstream"):
            raise DagDefinitionError(f"a Label links tasks or task groups, got {item!r}")
    return items
