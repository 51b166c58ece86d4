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
    BaseOperator,
    BaseSensorOperator,
    BashOperator,
    BashSensor,
    DateTimeSensor,
    DayOfWeekSensor,
    ExternalPythonOperator,
    FailTask,
    FileSensor,
    PokeReturnValue,
    PythonOperator,
    PythonSensor,
    PythonVirtualenvOperator,
    RescheduleTask,
    SensorTimeout,
    SkipTask,
    TaskTimeout,
    TimeDeltaSensor,
    TimeSensor,
    TriggerRule,
    XComArg,
    get_current_context,
    is_venv_installed,
    macros,
    task,
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
    "BaseOperator",
    "BaseSensorOperator",
    "BashOperator",
    "BashSensor",
    "Connection",
    "DateTimeSensor",
    "DayOfWeekSensor",
    "ExternalPythonOperator",
    "ExternalTaskSensor",
    "FailTask",
    "FileSensor",
    "PokeReturnValue",
    "PythonOperator",
    "PythonSensor",
    "PythonVirtualenvOperator",
    "RescheduleTask",
    "SensorTimeout",
    "SkipTask",
    "TaskTimeout",
    "TimeDeltaSensor",
    "TimeSensor",
    "TriggerRule",
    "Variable",
    "XCom",
    "XComArg",
    "get_current_context",
    "is_venv_installed",
    "macros",
    "mask_secret",
    "task",
]
