"""scripts/airflow_examples.py's port rule: every `from airflow.<module> import` becomes `from rabbitrun import`."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "airflow_examples.py"


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("airflow_examples_script", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_from_airflow_imports_become_from_rabbitrun_and_nothing_else_changes() -> None:
    source = (
        "from __future__ import annotations\n"
        "from airflow import DAG\n"
        "from airflow.operators.bash import BashOperator\n"
        "from airflow.providers.standard.operators.python import (\n    PythonOperator,\n    task,\n)\n"
        "    from airflow.operators.python import get_current_context\n"
        "x = 'from airflow.models import Variable'\n"
    )
    ported, not_ported = _script().port(source)
    assert ported == (
        "from __future__ import annotations\n"
        "from rabbitrun import DAG\n"
        "from rabbitrun import BashOperator\n"
        "from rabbitrun import (\n    PythonOperator,\n    task,\n)\n"
        "    from rabbitrun import get_current_context\n"
        "x = 'from airflow.models import Variable'\n"
    )
    assert not_ported == []


def test_import_airflow_lines_are_left_and_reported() -> None:
    ported, not_ported = _script().port("import airflow.utils.dates\nimport airflow\nimport airflowish\n")
    assert ported == "import airflow.utils.dates\nimport airflow\nimport airflowish\n"
    assert not_ported == ["import airflow.utils.dates", "import airflow"]


def test_failure_reason_names_the_first_failed_task() -> None:
    out = "a    success   try=1 \nb    failed    try=1 ValueError: boom\nc    upstream_failed try=0 \nx run: failed\n"
    assert _script()._failure_reason(out) == "b: ValueError: boom"
