"""rabbitrun: Airflow-style DAGs, executed directly over RabbitMQ.

This package root is the authoring API that DAG files import, the way Airflow
users import from ``airflow``: port a DAG by changing its imports.
"""

from rabbitrun.authoring import (
    DAG,
    AirflowFailException,
    AirflowSkipException,
    AirflowTaskTimeout,
    BaseOperator,
    BashOperator,
    FailTask,
    PythonOperator,
    SkipTask,
    TaskTimeout,
    TriggerRule,
    XComArg,
    task,
)

__all__ = [
    "DAG",
    "AirflowFailException",
    "AirflowSkipException",
    "AirflowTaskTimeout",
    "BaseOperator",
    "BashOperator",
    "FailTask",
    "PythonOperator",
    "SkipTask",
    "TaskTimeout",
    "TriggerRule",
    "XComArg",
    "task",
]
