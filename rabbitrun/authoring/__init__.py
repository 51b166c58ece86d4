"""The authoring API: what DAG files use (DAG, operators, @task, signals) and the DagBag that loads them.

Pure Python: nothing here touches the broker or the database. The only I/O is
importing DAG files and BashOperator's child process.
"""

from rabbitrun.authoring import current, macros
from rabbitrun.authoring.baseoperator import BaseOperator, Context, Dependable
from rabbitrun.authoring.branch_decorators import branch_task, short_circuit_task
from rabbitrun.authoring.branch_variants import (
    BranchExternalPythonOperator,
    BranchPythonVirtualenvOperator,
    branch_external_python,
    branch_virtualenv,
)
from rabbitrun.authoring.branching import (
    BaseBranchOperator,
    BranchDateTimeOperator,
    BranchDayOfWeekOperator,
    BranchPythonOperator,
    LatestOnlyOperator,
    ShortCircuitOperator,
)
from rabbitrun.authoring.current import get_current_context
from rabbitrun.authoring.dag import DAG, get_current_dag
from rabbitrun.authoring.dag_decorator import DagFactory, DagParam, dag
from rabbitrun.authoring.dagbag import EXAMPLES_PREFIX, DagBag, ImportErrorInfo
from rabbitrun.authoring.decorators import DecoratedPythonOperator, TaskDecorator, task
from rabbitrun.authoring.deferred_fallbacks import DateTimeSensorAsync, TimeDeltaSensorAsync, TimeSensorAsync
from rabbitrun.authoring.edges import EdgeModifier, Label
from rabbitrun.authoring.empty import EmptyOperator
from rabbitrun.authoring.external_marker import ExternalTaskMarker
from rabbitrun.authoring.helpers import chain, chain_linear, cross_downstream
from rabbitrun.authoring.mapped import MappedOperator
from rabbitrun.authoring.operators import BashCommandFailed, BashOperator, PythonOperator
from rabbitrun.authoring.params import Param, ParamsDict, resolve_params
from rabbitrun.authoring.process_python import ExternalPythonOperator, PythonVirtualenvOperator, is_venv_installed
from rabbitrun.authoring.sensors import BaseSensorOperator, FileSensor, PokeReturnValue
from rabbitrun.authoring.setup_teardown import effective_leaves, setup, teardown
from rabbitrun.authoring.signals import (
    AirflowFailException,
    AirflowRescheduleException,
    AirflowSensorTimeout,
    AirflowSkipException,
    AirflowTaskTimeout,
    FailTask,
    RescheduleTask,
    SensorTimeout,
    SkipTask,
    TaskSignal,
    TaskTimeout,
)
from rabbitrun.authoring.skipping import SkipMixin, may_skip
from rabbitrun.authoring.standard_sensors import (
    BashSensor,
    DateTimeSensor,
    DayOfWeekSensor,
    PythonSensor,
    TimeDeltaSensor,
    TimeSensor,
)
from rabbitrun.authoring.taskgroup import SubDagOperator, TaskGroup, TaskGroupFactory, task_group
from rabbitrun.authoring.trigger_rules import Decision, TriggerRule, evaluate
from rabbitrun.authoring.weekday import WeekDay
from rabbitrun.authoring.xcomarg import XComArg

# @task.branch and @task.short_circuit: attributes of ``task`` set here, because their module builds
# on rabbitrun.authoring.decorators (which cannot import it back: no import circles)
task.branch = branch_task  # type: ignore[attr-defined]
task.short_circuit = short_circuit_task  # type: ignore[attr-defined]
task.branch_virtualenv = branch_virtualenv  # type: ignore[attr-defined]
task.branch_external_python = branch_external_python  # type: ignore[attr-defined]

__all__ = [
    "DAG",
    "EXAMPLES_PREFIX",
    "AirflowFailException",
    "AirflowRescheduleException",
    "AirflowSensorTimeout",
    "AirflowSkipException",
    "AirflowTaskTimeout",
    "BaseBranchOperator",
    "BaseOperator",
    "BaseSensorOperator",
    "BashCommandFailed",
    "BashOperator",
    "BashSensor",
    "BranchDateTimeOperator",
    "BranchDayOfWeekOperator",
    "BranchExternalPythonOperator",
    "BranchPythonOperator",
    "BranchPythonVirtualenvOperator",
    "Context",
    "DagBag",
    "DagFactory",
    "DagParam",
    "DateTimeSensor",
    "DateTimeSensorAsync",
    "DayOfWeekSensor",
    "Decision",
    "DecoratedPythonOperator",
    "Dependable",
    "EdgeModifier",
    "EmptyOperator",
    "ExternalPythonOperator",
    "ExternalTaskMarker",
    "FailTask",
    "FileSensor",
    "ImportErrorInfo",
    "Label",
    "LatestOnlyOperator",
    "MappedOperator",
    "Param",
    "ParamsDict",
    "PokeReturnValue",
    "PythonOperator",
    "PythonSensor",
    "PythonVirtualenvOperator",
    "RescheduleTask",
    "SensorTimeout",
    "ShortCircuitOperator",
    "SkipMixin",
    "SkipTask",
    "SubDagOperator",
    "TaskDecorator",
    "TaskGroup",
    "TaskGroupFactory",
    "TaskSignal",
    "TaskTimeout",
    "TimeDeltaSensor",
    "TimeDeltaSensorAsync",
    "TimeSensor",
    "TimeSensorAsync",
    "TriggerRule",
    "WeekDay",
    "XComArg",
    "chain",
    "chain_linear",
    "cross_downstream",
    "current",
    "dag",
    "effective_leaves",
    "evaluate",
    "get_current_context",
    "get_current_dag",
    "is_venv_installed",
    "macros",
    "may_skip",
    "resolve_params",
    "setup",
    "task",
    "task_group",
    "teardown",
]
