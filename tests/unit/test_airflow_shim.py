"""The opt-in stand-ins for ``airflow.*`` (authoring/airflow_shim.py): what resolves to what, and when."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import rabbitrun
from rabbitrun.authoring import DagBag
from rabbitrun.authoring.airflow_shim import AirflowShimModule, airflow_imports, check_no_real_airflow, resolve
from rabbitrun.errors import ConfigError


@pytest.fixture(autouse=True)
def no_airflow_modules() -> Iterator[None]:
    """Each test starts and ends with no ``airflow`` module cached, so none sees another's."""

    def purge() -> None:
        for name in [n for n in sys.modules if n == "airflow" or n.startswith("airflow.")]:
            del sys.modules[name]

    purge()
    yield
    purge()


def test_names_resolve_to_rabbitrun_objects_from_any_accepted_module() -> None:
    assert resolve("airflow.operators.bash", "BashOperator") is rabbitrun.BashOperator
    assert resolve("airflow.decorators", "task") is rabbitrun.task
    assert resolve("airflow", "DAG") is rabbitrun.DAG
    assert resolve("airflow.utils.trigger_rule", "TriggerRule") is rabbitrun.TriggerRule
    assert resolve("airflow.exceptions", "AirflowSkipException") is rabbitrun.AirflowSkipException


def test_lazy_names_of_the_package_root_resolve_too() -> None:
    from rabbitrun.data.access import Variable

    assert resolve("airflow.models", "Variable") is Variable


def test_a_name_rabbitrun_lacks_is_an_import_error_naming_it() -> None:
    with pytest.raises(ImportError, match=r"rabbitrun does not provide airflow\.operators\.email\.NoSuchOperator yet"):
        resolve("airflow.operators.email", "NoSuchOperator")


def test_a_name_added_to_rabbitrun_later_resolves_without_a_table(monkeypatch: pytest.MonkeyPatch) -> None:
    marker = object()
    monkeypatch.setattr(rabbitrun, "BrandNewOperator", marker, raising=False)
    assert resolve("airflow.providers.standard.operators.brand_new", "BrandNewOperator") is marker


def test_imports_resolve_only_inside_the_block_and_modules_stay_cached() -> None:
    with airflow_imports(True):
        bash = importlib.import_module("airflow.operators.bash")
        from airflow.utils import trigger_rule  # type: ignore[import-not-found]  # a child module of a package
    assert isinstance(bash, AirflowShimModule) and isinstance(trigger_rule, AirflowShimModule)
    assert bash.BashOperator is rabbitrun.BashOperator
    assert not any(type(f).__module__ == "rabbitrun.authoring.airflow_shim" for f in sys.meta_path)
    # below a stand-in a DAG file loaded, task bodies still import (Airflow's run-time idiom) ...
    assert importlib.import_module("airflow.operators.bash") is bash
    assert importlib.import_module("airflow.operators.python").PythonOperator is rabbitrun.PythonOperator
    # ... but the top-level `airflow` is found only inside the block
    del sys.modules["airflow"]
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("airflow")


def test_modules_outside_the_accepted_tree_are_refused_by_name() -> None:
    with airflow_imports(True), pytest.raises(ImportError, match="does not provide the module airflow.configuration"):
        importlib.import_module("airflow.configuration")
    with airflow_imports(True), pytest.raises(ImportError, match="airflow.providers.amazon"):
        importlib.import_module("airflow.providers.amazon.aws.hooks.s3")


def test_disabled_block_installs_nothing() -> None:
    with airflow_imports(False), pytest.raises(ModuleNotFoundError):
        importlib.import_module("airflow")


def test_a_real_airflow_package_on_the_path_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "airflow").mkdir()
    (tmp_path / "airflow" / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    with pytest.raises(ConfigError, match="a real 'airflow' package is installed"):
        check_no_real_airflow()
    with pytest.raises(ConfigError, match="airflow_compat"):
        DagBag(tmp_path / "dags", include_examples=False, airflow_compat=True)


def test_dagbag_imports_unchanged_airflow_files_only_with_the_setting(tmp_path: Path) -> None:
    (tmp_path / "af.py").write_text(
        "from airflow import DAG\n"
        "from airflow.operators.bash import BashOperator\n"
        "from airflow.decorators import task\n"
        "with DAG('af', schedule=None) as dag:\n"
        "    BashOperator(task_id='b', bash_command='true') >> task(lambda: 1, task_id='p')()\n"
    )
    off = DagBag(tmp_path, include_examples=False)
    assert off.dags == {} and "No module named 'airflow'" in off.import_errors["af.py"].exception
    on = DagBag(tmp_path, include_examples=False, airflow_compat=True)
    assert on.import_errors == {} and sorted(on.dags["af"].task_ids) == ["b", "p"]


def test_dagbag_records_the_missing_name_as_the_files_import_error(tmp_path: Path) -> None:
    (tmp_path / "af.py").write_text("from airflow.operators.nothing_here import NoSuchOperator\n")
    err = DagBag(tmp_path, include_examples=False, airflow_compat=True).import_errors["af.py"]
    assert err.lineno == 1
    assert err.exception == "ImportError: rabbitrun does not provide airflow.operators.nothing_here.NoSuchOperator yet"
