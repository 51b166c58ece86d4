"""rabbitrun: Airflow-style DAGs, executed directly over RabbitMQ.

This package root is the authoring API that DAG files import, the way Airflow
users import from ``airflow``: port a DAG by changing its imports.
"""

from rabbitrun.authoring import (
    DAG,
    AirflowFailException,
    AirflowRescheduleException,
    AirflowSensorTimeout,
    AirflowSkipException,
    AirflowTaskTimeout,
    BaseBranchOperator,
    BaseOperator,
    BaseSensorOperator,
    BashOperator,
    BranchDateTimeOperator,
    BranchDayOfWeekOperator,
    BranchPythonOperator,
    EdgeModifier,
    EmptyOperator,
    FailTask,
    FileSensor,
    Label,
    LatestOnlyOperator,
    Param,
    ParamsDict,
    PokeReturnValue,
    PythonOperator,
    RescheduleTask,
    SensorTimeout,
    ShortCircuitOperator,
    SkipTask,
    SubDagOperator,
    TaskGroup,
    TaskTimeout,
    TriggerRule,
    WeekDay,
    XComArg,
    chain,
    chain_linear,
    cross_downstream,
    dag,
    setup,
    task,
    task_group,
    teardown,
)

# Data access needs SQLAlchemy: load it on first use, so `rabbitrun --help` and DAG parsing stay light.
_LAZY = {
    "Connection": "rabbitrun.data.access",
    "Variable": "rabbitrun.data.access",
    "XCom": "rabbitrun.data.access",
    "mask_secret": "rabbitrun.secrets",
    "ExternalTaskSensor": "rabbitrun.data.external_task",
}


def __getattr__(name: str) -> object:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'rabbitrun' has no attribute {name!r}")


__all__ = [
    "DAG",
    "AirflowFailException",
    "AirflowRescheduleException",
    "AirflowSensorTimeout",
    "AirflowSkipException",
    "AirflowTaskTimeout",
    "BaseBranchOperator",
    "BaseOperator",
    "BaseSensorOperator",
    "BashOperator",
    "BranchDateTimeOperator",
    "BranchDayOfWeekOperator",
    "BranchPythonOperator",
    "Connection",
    "EdgeModifier",
    "EmptyOperator",
    "ExternalTaskSensor",
    "FailTask",
    "FileSensor",
    "Label",
    "LatestOnlyOperator",
    "Param",
    "ParamsDict",
    "PokeReturnValue",
    "PythonOperator",
    "RescheduleTask",
    "SensorTimeout",
    "ShortCircuitOperator",
    "SkipTask",
    "SubDagOperator",
    "TaskGroup",
    "TaskTimeout",
    "TriggerRule",
    "Variable",
    "WeekDay",
    "XCom",
    "XComArg",
    "chain",
    "chain_linear",
    "cross_downstream",
    "dag",
    "mask_secret",
    "setup",
    "task",
    "task_group",
    "teardown",
]
