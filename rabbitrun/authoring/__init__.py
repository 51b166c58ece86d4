"""The authoring API: what DAG files use (DAG, operators, @task, signals) and the DagBag that loads them.

Pure Python: nothing here touches the broker or the database. The only I/O is
importing DAG files and BashOperator's child process.
"""

from rabbitrun.authoring import current, macros
from rabbitrun.authoring.baseoperator import BaseOperator, Context, Dependable
from rabbitrun.authoring.current import get_current_context
from rabbitrun.authoring.dag import DAG, get_current_dag
from rabbitrun.authoring.dagbag import EXAMPLES_PREFIX, DagBag, ImportErrorInfo
from rabbitrun.authoring.decorators import DecoratedPythonOperator, TaskDecorator, task
from rabbitrun.authoring.mapped import MappedOperator
from rabbitrun.authoring.operators import BashCommandFailed, BashOperator, PythonOperator
from rabbitrun.authoring.process_python import ExternalPythonOperator, PythonVirtualenvOperator, is_venv_installed
from rabbitrun.authoring.sensors import BaseSensorOperator, FileSensor, PokeReturnValue
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
from rabbitrun.authoring.standard_sensors import (
    BashSensor,
    DateTimeSensor,
    DayOfWeekSensor,
    PythonSensor,
    TimeDeltaSensor,
    TimeSensor,
)
from rabbitrun.authoring.trigger_rules import Decision, TriggerRule, evaluate
from rabbitrun.authoring.xcomarg import XComArg

__all__ = [
    "DAG",
    "EXAMPLES_PREFIX",
    "AirflowFailException",
    "AirflowRescheduleException",
    "AirflowSensorTimeout",
    "AirflowSkipException",
    "AirflowTaskTimeout",
    "BaseOperator",
    "BaseSensorOperator",
    "BashCommandFailed",
    "BashOperator",
    "BashSensor",
    "Context",
    "DagBag",
    "DateTimeSensor",
    "DayOfWeekSensor",
    "Decision",
    "DecoratedPythonOperator",
    "Dependable",
    "ExternalPythonOperator",
    "FailTask",
    "FileSensor",
    "ImportErrorInfo",
    "MappedOperator",
    "PokeReturnValue",
    "PythonOperator",
    "PythonSensor",
    "PythonVirtualenvOperator",
    "RescheduleTask",
    "SensorTimeout",
    "SkipTask",
    "TaskDecorator",
    "TaskSignal",
    "TaskTimeout",
    "TimeDeltaSensor",
    "TimeSensor",
    "TriggerRule",
    "XComArg",
    "current",
    "evaluate",
    "get_current_context",
    "get_current_dag",
    "is_venv_installed",
    "macros",
    "task",
]
