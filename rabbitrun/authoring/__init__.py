"""The authoring API: what DAG files use (DAG, operators, @task, signals) and the DagBag that loads them.

Pure Python: nothing here touches the broker or the database. The only I/O is
importing DAG files and BashOperator's child process.
"""

from rabbitrun.authoring.baseoperator import BaseOperator, Context, Dependable
from rabbitrun.authoring.dag import DAG, get_current_dag
from rabbitrun.authoring.dag_decorator import DagFactory, DagParam, dag
from rabbitrun.authoring.dagbag import EXAMPLES_PREFIX, DagBag, ImportErrorInfo
from rabbitrun.authoring.decorators import DecoratedPythonOperator, TaskDecorator, task
from rabbitrun.authoring.edges import EdgeModifier, Label
from rabbitrun.authoring.empty import EmptyOperator
from rabbitrun.authoring.helpers import chain, chain_linear, cross_downstream
from rabbitrun.authoring.mapped import MappedOperator
from rabbitrun.authoring.operators import BashCommandFailed, BashOperator, PythonOperator
from rabbitrun.authoring.params import Param, ParamsDict, resolve_params
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
from rabbitrun.authoring.taskgroup import SubDagOperator, TaskGroup, TaskGroupFactory, task_group
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
    "Context",
    "DagBag",
    "DagFactory",
    "DagParam",
    "Decision",
    "DecoratedPythonOperator",
    "Dependable",
    "EdgeModifier",
    "EmptyOperator",
    "FailTask",
    "FileSensor",
    "ImportErrorInfo",
    "Label",
    "MappedOperator",
    "Param",
    "ParamsDict",
    "PokeReturnValue",
    "PythonOperator",
    "RescheduleTask",
    "SensorTimeout",
    "SkipTask",
    "SubDagOperator",
    "TaskDecorator",
    "TaskGroup",
    "TaskGroupFactory",
    "TaskSignal",
    "TaskTimeout",
    "TriggerRule",
    "XComArg",
    "chain",
    "chain_linear",
    "cross_downstream",
    "dag",
    "evaluate",
    "get_current_dag",
    "resolve_params",
    "task",
    "task_group",
]
