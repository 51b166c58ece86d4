"""Branching in another interpreter: BranchPythonVirtualenvOperator, BranchExternalPythonOperator
and their decorators ``@task.branch_virtualenv`` / ``@task.branch_external_python``.

The callable runs in the other interpreter (rabbitrun.authoring.process_python) and returns the
task id(s) to follow; the choice is applied here, in the task process, by the same
:class:`~rabbitrun.authoring.skipping.BranchMixIn` rule as BranchPythonOperator, so the skips go to
the worker in the attempt's outcome like every other skip.
"""

from __future__ import annotations

from typing import Any

from rabbitrun.authoring.baseoperator import Context
from rabbitrun.authoring.process_python import ExternalPythonOperator, PythonVirtualenvOperator
from rabbitrun.authoring.skipping import BranchMixIn
from rabbitrun.authoring.task_variants import (
    DecoratedExternalPythonOperator,
    DecoratedVirtualenvOperator,
    variant_decorator,
)

__all__ = [
    "BranchExternalPythonOperator",
    "BranchPythonVirtualenvOperator",
    "branch_external_python",
    "branch_virtualenv",
]


class BranchPythonVirtualenvOperator(PythonVirtualenvOperator, BranchMixIn):
    """``python_callable`` runs in a virtualenv and returns the task id(s) to follow."""

    def execute(self, context: Context) -> Any:
        return self.do_branch(context, super().execute(context))


class BranchExternalPythonOperator(ExternalPythonOperator, BranchMixIn):
    """``python_callable`` runs in the interpreter ``python`` and returns the task id(s) to follow."""

    def execute(self, context: Context) -> Any:
        return self.do_branch(context, super().execute(context))


class _DecoratedBranchVirtualenv(DecoratedVirtualenvOperator, BranchMixIn):
    def execute(self, context: Context) -> Any:
        return self.do_branch(context, super().execute(context))


class _DecoratedBranchExternalPython(DecoratedExternalPythonOperator, BranchMixIn):
    def execute(self, context: Context) -> Any:
        return self.do_branch(context, super().execute(context))


branch_virtualenv = variant_decorator(_DecoratedBranchVirtualenv)
branch_external_python = variant_decorator(_DecoratedBranchExternalPython)
