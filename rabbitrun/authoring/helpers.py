"""Graph helpers of Airflow's ``airflow.models.baseoperator``: ``chain``, ``chain_linear``,
``cross_downstream``.

They take operators, XComArgs, TaskGroups, Labels and lists of those, and only call ``>>``
on them, so every node type that links by ``>>`` works here too.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rabbitrun.authoring.edges import EdgeModifier
from rabbitrun.errors import DagDefinitionError

__all__ = ["chain", "chain_linear", "cross_downstream"]


def chain(*tasks: Any) -> None:
    """Link each element to the next: ``chain(a, [b, c], [d, e], f)`` is ``a >> [b, c]``,
    ``b >> d``, ``c >> e``, ``[d, e] >> f``. Two adjacent lists are linked pairwise and must
    have the same length; a Label between two nodes labels that edge."""
    for up, down in zip(tasks, tasks[1:], strict=False):
        up_list, down_list = _is_list(up), _is_list(down)
        if up_list and down_list:
            if len(up) != len(down):
                raise DagDefinitionError(
                    f"chain() links adjacent lists pairwise: their lengths differ ({len(up)} and {len(down)})"
                )
            for u, d in zip(up, down, strict=True):
                u >> d
        elif up_list:
            for u in up:
                u >> down
        else:
            up >> down


def chain_linear(*elements: Any) -> None:
    """Link every task of each element to every task of the next (a list is one element):
    ``chain_linear(a, [b, c], [d, e])`` is ``a >> [b, c]`` and ``[b, c] >> d``, ``[b, c] >> e``."""
    if len(elements) < 2:
        raise DagDefinitionError("chain_linear() needs at least two elements")
    for up, down in zip(elements, elements[1:], strict=False):
        for node in (up, down):
            for item in node if _is_list(node) else [node]:
                if isinstance(item, EdgeModifier):
                    raise DagDefinitionError("chain_linear() does not take Labels; use chain() or set_downstream()")
        ups = list(up) if _is_list(up) else [up]
        downs = list(down) if _is_list(down) else [down]
        for u in ups:
            for d in downs:
                u >> d


def cross_downstream(from_tasks: Sequence[Any], to_tasks: Any) -> None:
    """Every task of ``from_tasks`` runs before every task of ``to_tasks``."""
    for task in from_tasks:
        task >> to_tasks


def _is_list(value: Any) -> bool:
    return isinstance(value, (list, tuple))
