"""DagBag: loading a folder, import errors with file and line, safe file refs, refresh."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

from rabbitrun.authoring import DagBag, ImportErrorInfo
from rabbitrun.authoring.dag import get_current_dag
from rabbitrun.errors import DagNotFound, UnsafeDagPath

TEST_DAGS = Path(__file__).resolve().parent.parent / "dags" / "dagbag"

GOOD = """
from rabbitrun.authoring import DAG, BashOperator
with DAG("{dag_id}") as dag:
    BashOperator(task_id="t", bash_command="true")
"""


def _write(folder: Path, ref: str, text: str) -> Path:
    path = folder / ref
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def _touch_later(path: Path) -> None:
    """Move the mtime forward so a same-size rewrite within one clock tick is still seen."""
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))


@pytest.fixture()
def test_bag() -> DagBag:
    return DagBag(TEST_DAGS, include_examples=False)


def test_folder_loads_valid_files_even_when_one_file_is_broken(test_bag: DagBag) -> None:
    assert set(test_bag.dags) == {"test_good", "test_nested_first", "test_nested_second"}
    assert set(test_bag.import_errors) == {"broken_dag.py"}


def test_import_error_names_file_deepest_line_and_one_line_exception(test_bag: DagBag) -> None:
    err = test_bag.import_errors["broken_dag.py"]
    assert isinstance(err, ImportErrorInfo)
    assert err.filename == "broken_dag.py"
    assert err.lineno == 8
    assert err.exception == "ZeroDivisionError: division by zero"
    assert "broken_dag.py" in err.traceback and "importlib" not in err.traceback


def test_dags_know_their_file_ref_relative_to_the_folder(test_bag: DagBag) -> None:
    assert test_bag.file_ref("test_good") == "good_dag.py"
    assert test_bag.get_dag("test_nested_second").fileloc == "nested/two_dags.py"


def test_get_dag_unknown_raises_dag_not_found(test_bag: DagBag) -> None:
    with pytest.raises(DagNotFound):
        test_bag.get_dag("nope")


def test_files_and_folders_starting_with_underscore_or_dot_are_skipped(tmp_path: Path) -> None:
    _write(tmp_path, "_private.py", "raise SystemExit(1)")
    _write(tmp_path, ".hidden.py", "raise SystemExit(1)")
    _write(tmp_path, "_sub/dag.py", "raise SystemExit(1)")
    _write(tmp_path, "__pycache__/x.py", "raise SystemExit(1)")
    _write(tmp_path, "notes.txt", "not python")
    bag = DagBag(tmp_path, include_examples=False)
    assert bag.dags == {} and bag.import_errors == {}


def test_syntax_error_is_reported_with_its_line(tmp_path: Path) -> None:
    _write(tmp_path, "bad.py", "x = 1\n\ndef broken(:\n    pass\n")
    err = DagBag(tmp_path, include_examples=False).import_errors["bad.py"]
    assert err.lineno == 3 and err.exception.startswith("SyntaxError:")


def test_system_exit_is_recorded_and_the_bag_prints_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _write(tmp_path, "exits.py", "import sys\nsys.exit(3)\n")
    bag = DagBag(tmp_path, include_examples=False)
    assert bag.import_errors["exits.py"].exception == "SystemExit: 3"
    assert bag.import_errors["exits.py"].lineno == 2
    assert capsys.readouterr() == ("", "")


def test_cycle_in_a_file_is_an_import_error_for_that_file(tmp_path: Path) -> None:
    _write(
        tmp_path,
        "cyclic.py",
        "from rabbitrun.authoring import DAG, BashOperator\n"
        "with DAG('cyclic') as dag:\n"
        "    a = BashOperator(task_id='a', bash_command='true')\n"
        "    b = BashOperator(task_id='b', bash_command='true')\n"
        "    a >> b >> a\n",
    )
    bag = DagBag(tmp_path, include_examples=False)
    assert "cycle: a -> b -> a" in bag.import_errors["cyclic.py"].exception
    assert "cyclic" not in bag.dags


def test_duplicate_dag_id_is_an_import_error_on_the_second_file(tmp_path: Path) -> None:
    _write(tmp_path, "a.py", GOOD.format(dag_id="same"))
    _write(tmp_path, "b.py", GOOD.format(dag_id="same"))
    bag = DagBag(tmp_path, include_examples=False)
    assert bag.file_ref("same") == "a.py"
    assert "already defined in a.py" in bag.import_errors["b.py"].exception


def test_file_left_inside_an_open_dag_does_not_leak_the_current_dag(tmp_path: Path) -> None:
    _write(tmp_path, "leaky.py", "from rabbitrun.authoring import DAG\ndag = DAG('leaky').__enter__()\n")
    bag = DagBag(tmp_path, include_examples=False)
    assert "leaky" in bag.dags and get_current_dag() is None


def test_each_file_is_its_own_uniquely_named_module(tmp_path: Path) -> None:
    _write(tmp_path, "x/dag.py", GOOD.format(dag_id="x"))
    _write(tmp_path, "y/dag.py", GOOD.format(dag_id="y"))
    bag = DagBag(tmp_path, include_examples=False)
    assert set(bag.dags) == {"x", "y"}
    names = {n for n in sys.modules if n.startswith("rabbitrun_dag_")}
    assert len(names) >= 2


@pytest.mark.parametrize(
    "ref",
    ["../../etc/passwd", "/etc/passwd", "../outside.py", "a/../../outside.py", "a/./b.py", "dag.txt", "", "a\\b.py"],
)
def test_unsafe_file_refs_are_refused(tmp_path: Path, ref: str) -> None:
    with pytest.raises(UnsafeDagPath):
        DagBag(tmp_path, include_examples=False).resolve(ref)


@pytest.mark.parametrize("ref", ["@examples/../dagbag.py", "@examples/sub/x.py", "@examples/x.txt"])
def test_unsafe_example_refs_are_refused(tmp_path: Path, ref: str) -> None:
    with pytest.raises(UnsafeDagPath):
        DagBag(tmp_path, include_examples=False).resolve(ref)


def test_symlink_escaping_the_folder_is_refused_and_reported(tmp_path: Path) -> None:
    dags, outside = tmp_path / "dags", tmp_path / "outside"
    _write(outside, "evil.py", GOOD.format(dag_id="evil"))
    dags.mkdir()
    (dags / "evil.py").symlink_to(outside / "evil.py")
    bag = DagBag(dags, include_examples=False)
    with pytest.raises(UnsafeDagPath):
        bag.resolve("evil.py")
    assert "evil" not in bag.dags
    assert bag.import_errors["evil.py"].exception.startswith("UnsafeDagPath:")
    assert bag.refresh() is False  # an unsafe file is not retried on every refresh


def test_symlink_inside_the_folder_is_allowed(tmp_path: Path) -> None:
    _write(tmp_path, "real/dag.py", GOOD.format(dag_id="linked"))
    (tmp_path / "link.py").symlink_to(tmp_path / "real" / "dag.py")
    bag = DagBag(tmp_path, include_examples=False)
    assert bag.resolve("link.py") == (tmp_path / "real" / "dag.py").resolve()


def test_example_refs_resolve_into_the_examples_package(tmp_path: Path) -> None:
    path = DagBag(tmp_path, include_examples=False).resolve("@examples/example_etl.py")
    assert path.name == "example_etl.py" and path.parent.name == "example_dags"


def test_load_file_imports_a_file_not_loaded_yet(tmp_path: Path) -> None:
    bag = DagBag(tmp_path, include_examples=False)
    _write(tmp_path, "late.py", GOOD.format(dag_id="late"))
    assert [d.dag_id for d in bag.load_file("late.py")] == ["late"]
    assert bag.file_ref("late") == "late.py"


def test_load_file_of_a_missing_file_records_an_error(tmp_path: Path) -> None:
    bag = DagBag(tmp_path, include_examples=False)
    assert bag.load_file("missing.py") == []
    assert "missing.py" in bag.import_errors


def test_refresh_without_changes_reports_nothing(tmp_path: Path) -> None:
    _write(tmp_path, "a.py", GOOD.format(dag_id="a"))
    bag = DagBag(tmp_path, include_examples=False)
    assert bag.refresh() is False


def test_refresh_reimports_an_edited_file_of_the_same_size(tmp_path: Path) -> None:
    path = _write(tmp_path, "a.py", GOOD.format(dag_id="before"))
    bag = DagBag(tmp_path, include_examples=False)
    path.write_text(GOOD.format(dag_id="latest"))
    _touch_later(path)
    assert bag.refresh() is True
    assert set(bag.dags) == {"latest"}


def test_refresh_clears_the_error_of_a_fixed_file(tmp_path: Path) -> None:
    path = _write(tmp_path, "a.py", "1/0\n")
    bag = DagBag(tmp_path, include_examples=False)
    assert "a.py" in bag.import_errors
    path.write_text(GOOD.format(dag_id="fixed"))
    _touch_later(path)
    assert bag.refresh() is True
    assert bag.import_errors == {} and "fixed" in bag.dags


def test_refresh_drops_dags_of_deleted_files_and_adds_new_files(tmp_path: Path) -> None:
    old = _write(tmp_path, "old.py", GOOD.format(dag_id="old"))
    bag = DagBag(tmp_path, include_examples=False)
    old.unlink()
    _write(tmp_path, "sub/new.py", GOOD.format(dag_id="new"))
    assert bag.refresh() is True
    assert set(bag.dags) == {"new"}
    assert bag.file_ref("new") == "sub/new.py"


def test_refresh_loads_a_duplicate_once_the_first_owner_is_gone(tmp_path: Path) -> None:
    first = _write(tmp_path, "a.py", GOOD.format(dag_id="same"))
    _write(tmp_path, "b.py", GOOD.format(dag_id="same"))
    bag = DagBag(tmp_path, include_examples=False)
    first.unlink()
    assert bag.refresh() is True
    assert bag.file_ref("same") == "b.py" and bag.import_errors == {}


def test_copy_of_test_dags_folder_refreshes_after_fixing_the_broken_file(tmp_path: Path) -> None:
    folder = tmp_path / "dags"
    shutil.copytree(TEST_DAGS, folder, ignore=shutil.ignore_patterns("__pycache__"))
    bag = DagBag(folder, include_examples=False)
    broken = folder / "broken_dag.py"
    broken.write_text(broken.read_text().replace("1 / 0", "1 / 1"))
    _touch_later(broken)
    assert bag.refresh() is True
    assert "test_broken" in bag.dags and bag.import_errors == {}
