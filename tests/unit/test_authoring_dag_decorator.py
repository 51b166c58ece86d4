"""@dag, DagBag registration of DAGs no global names, DAG files importing modules beside them, Param."""

from __future__ import annotations

from pathlib import Path

import pytest

from rabbitrun.authoring import DAG, DagBag, Param, ParamsDict, dag, resolve_params, task
from rabbitrun.authoring.dag_decorator import DagParam
from rabbitrun.errors import DagDefinitionError, ParamValidationError


def test_calling_a_dag_function_builds_the_dag_with_its_params_and_doc() -> None:
    @dag(schedule="@daily", tags=["t"])
    def etl(rows: int = 10, name: str = "n") -> None:
        """Loads rows."""

        @task
        def load(rows: int) -> int:
            return rows

        load(rows)

    built = etl(rows=20)
    assert isinstance(built, DAG) and built.dag_id == "etl" and built.schedule == "@daily"
    assert built.params == {"rows": 20, "name": "n"} and built.doc_md == "Loads rows."
    arg = built.get_task("load").op_args[0]  # type: ignore[attr-defined]
    assert isinstance(arg, DagParam) and arg.resolve({"params": {"rows": 7}}) == 7
    assert str(arg) == "{{ params['rows'] }}"


def test_bare_dag_decorator_and_explicit_id() -> None:
    @dag
    def plain() -> None:
        pass

    @dag("other_id")
    def named() -> None:
        pass

    assert plain().dag_id == "plain" and named().dag_id == "other_id"
    with pytest.raises(DagDefinitionError, match="unexpected keyword"):
        plain(nope=1)


def test_dagbag_registers_dags_of_bare_calls_and_with_blocks_and_imports_helpers(tmp_path: Path) -> None:
    (tmp_path / "helper_mod_for_dagbag.py").write_text("VALUE = 'from-helper'\n")
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "plugin_mod_for_dagbag.py").write_text("PLUGIN = 'from-plugin'\n")
    (tmp_path / "dags_file.py").write_text(
        "from helper_mod_for_dagbag import VALUE\n"
        "from plugin_mod_for_dagbag import PLUGIN\n"
        "from rabbitrun import DAG, EmptyOperator, dag\n"
        "@dag(doc_md=VALUE + PLUGIN)\n"
        "def by_call():\n"
        "    EmptyOperator(task_id='e')\n"
        "by_call()\n"
        "with DAG('by_with'):\n"
        "    EmptyOperator(task_id='e')\n"
        "with DAG('not_registered', auto_register=False):\n"
        "    EmptyOperator(task_id='e')\n"
        "DAG('never_entered')\n"
    )
    bag = DagBag(tmp_path, include_examples=False, plugins_folder=plugins)
    assert bag.import_errors == {}
    assert bag.dag_ids == ["by_call", "by_with"]
    assert bag.get_dag("by_call").doc_md == "from-helperfrom-plugin"
    assert str(tmp_path) not in __import__("sys").path  # taken off again after the import


def test_params_resolve_to_plain_values_validated_by_their_schema() -> None:
    params = {"n": Param(3, type="integer", minimum=1), "free": "x"}
    assert resolve_params(params, {"n": 5, "extra": True}) == {"n": 5, "free": "x", "extra": True}
    assert resolve_params(params) == {"n": 3, "free": "x"}
    with pytest.raises(ParamValidationError, match=r"param 'n' is invalid: 0 is less than the minimum of 1"):
        resolve_params(params, {"n": 0})
    with pytest.raises(ParamValidationError, match="no default"):
        resolve_params({"r": Param(type="string")})
    assert resolve_params(params, {"n": 0}, strict=False)["n"] == 0


def test_params_dict_and_bad_schema() -> None:
    pd = ParamsDict({"a": 1, "b": Param("x", enum=["x", "y"])})
    assert pd["a"] == 1 and pd.validate() == {"a": 1, "b": "x"}
    with pytest.raises(DagDefinitionError, match="invalid Param schema"):
        Param(1, type="no-such-type")
