"""One owner of task-instance state writes (DESIGN rule 8): rabbitrun.models.transitions.

(a) No other module of the package sets task_instance.state: no ORM ``x.state = ...`` on a task
    instance, no UPDATE of the task_instance table that sets ``state``; DagRun state writes are fine.
(b) The owner's edges are exactly states.TRANSITIONS, and each of its writers names an edge.
(c) A transition the table (or the edge asked) forbids raises InvalidTransition before any SQL runs.
And against a migrated SQLite file: a compare-and-set whose expected state no longer holds changes
0 rows.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session

import rabbitrun
from rabbitrun.errors import InvalidTransition
from rabbitrun.keys import TaskInstanceKey
from rabbitrun.models import attempts, transitions
from rabbitrun.models.engine import make_engine, session_factory
from rabbitrun.models.migrate import upgrade
from rabbitrun.models.tables import DagRun, TaskInstance
from rabbitrun.settings import DatabaseSettings, Secret
from rabbitrun.states import TRANSITIONS, TaskState, allowed

PACKAGE = Path(rabbitrun.__file__).resolve().parent
OWNER = "models/transitions.py"
NOW = datetime(2026, 5, 1, 12, 0, 0, tzinfo=UTC)
_TEXT_UPDATE = re.compile(r"\bupdate\s+task_instance\b.*\bset\b.*\bstate\b", re.IGNORECASE | re.DOTALL)


# --- (a) the scanner ------------------------------------------------------------------------------


def _names(node: ast.AST | None) -> set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)} if node is not None else set()


class _Scan:
    """The task-instance state writes in one module's source."""

    def __init__(self, source: str) -> None:
        self.tree = ast.parse(source)
        self.parents: dict[ast.AST, ast.AST] = {}
        for parent in ast.walk(self.tree):
            for child in ast.iter_child_nodes(parent):
                self.parents[child] = parent
        # module-level names bound to the task_instance table (``_TI = cast(Table, TaskInstance.__table__)``)
        self.tables = {"TaskInstance"}
        # what module-level functions return, by their annotation (``def _run(...) -> DagRun``)
        self.returns: dict[str, set[str]] = {}
        for node in self.tree.body:
            if (
                isinstance(node, ast.Assign)
                and "__table__" in ast.unparse(node.value)
                and "TaskInstance" in _names(node.value)
            ):
                self.tables.update(t.id for t in node.targets if isinstance(t, ast.Name))
            if isinstance(node, ast.FunctionDef):
                self.returns[node.name] = _names(node.returns)
        assigns = [n for n in ast.walk(self.tree) if isinstance(n, ast.Assign) and isinstance(n.value, ast.Name)]
        for _ in range(3):  # aliases of those names, anywhere (``ti = _TI``)
            self.tables.update(
                t.id
                for n in assigns
                if n.value.id in self.tables  # type: ignore[attr-defined]
                for t in n.targets
                if isinstance(t, ast.Name)
            )
        self.found: list[str] = []

    def run(self) -> list[str]:
        self._scope(self.tree, {})
        for node in ast.walk(self.tree):
            self._statement(node)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and _TEXT_UPDATE.search(node.value):
                self._flag(node, "UPDATE task_instance ... SET state in SQL text")
            if (
                isinstance(node, ast.Call)
                and getattr(node.func, "id", getattr(node.func, "attr", "")) in ("setattr", "set_committed_value")
                and len(node.args) > 1
                and isinstance(node.args[1], ast.Constant)
                and node.args[1].value == "state"
            ):
                self._flag(node, f"{ast.unparse(node.func)}(..., 'state', ...)")
        return self.found

    def _flag(self, node: ast.AST, what: str) -> None:
        self.found.append(f"{getattr(node, 'lineno', '?')}: {what}")

    # ORM attribute sets: ``x.state = ...`` unless x is known to be something other than a TaskInstance

    def _kind(self, expr: ast.AST | None, kinds: dict[str, set[str]]) -> set[str]:
        """The class names an expression's value may be of, as far as its source says (empty: unknown)."""
        if expr is None:
            return set()
        if isinstance(expr, ast.Name) and expr.id in kinds:
            return kinds[expr.id]
        if isinstance(expr, ast.Call) and isinstance(expr.func, ast.Name) and expr.func.id in self.returns:
            return self.returns[expr.func.id]
        if (
            isinstance(expr, ast.Call)
            and isinstance(expr.func, ast.Attribute)
            and expr.func.attr in ("scalars", "all", "scalar_one", "scalar_one_or_none", "first", "one")
        ):
            return self._kind(expr.func.value, kinds)
        if isinstance(expr, ast.Call) and isinstance(expr.func, ast.Attribute) and expr.func.attr == "execute":
            return self._kind(expr.args[0], kinds) if expr.args else set()
        return {n for n in _names(expr) if n[:1].isupper()}  # select(DagRun)..., DagRun(...), list[DagRun]

    def _scope(self, node: ast.AST, outer: dict[str, set[str]]) -> None:
        kinds = dict(outer)
        if isinstance(node, ast.ClassDef):
            kinds["self"] = {node.name}
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            for arg in [*node.args.posonlyargs, *node.args.args, *node.args.kwonlyargs]:
                kinds[arg.arg] = _names(arg.annotation) if arg.arg != "self" else outer.get("self", set())
        body = list(ast.iter_child_nodes(node))
        for child in self._in_scope(body):
            if isinstance(child, ast.Assign) and len(child.targets) == 1 and isinstance(child.targets[0], ast.Name):
                kinds[child.targets[0].id] = self._kind(child.value, kinds)
            elif isinstance(child, ast.AnnAssign) and isinstance(child.target, ast.Name):
                kinds[child.target.id] = _names(child.annotation)
            elif isinstance(child, ast.For | ast.comprehension) and isinstance(child.target, ast.Name):
                kinds[child.target.id] = self._kind(child.iter, kinds)
        for child in self._in_scope(body):
            targets: list[ast.expr] = []
            if isinstance(child, ast.Assign):
                targets = child.targets
            elif isinstance(child, ast.AugAssign | ast.AnnAssign):
                targets = [child.target]
            for target in targets:
                for element in target.elts if isinstance(target, ast.Tuple | ast.List) else [target]:
                    if isinstance(element, ast.Attribute) and element.attr == "state":
                        kind = self._kind(element.value, kinds)
                        if not kind or "TaskInstance" in kind:
                            self._flag(child, f"{ast.unparse(element)} = ...")
        for child in self._in_scope(body, scopes=True):
            self._scope(child, kinds)

    @staticmethod
    def _in_scope(nodes: list[ast.AST], scopes: bool = False) -> Iterator[ast.AST]:
        """The nodes of one scope (not inside nested functions or classes); ``scopes``: those nested ones."""
        todo = list(nodes)
        while todo:
            node = todo.pop(0)
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.Lambda):
                if scopes:
                    yield node
                continue
            if not scopes:
                yield node
            todo.extend(ast.iter_child_nodes(node))

    # statements: update(<the task_instance table>) ... .values(state=...)

    def _statement(self, node: ast.AST) -> None:
        if not (
            isinstance(node, ast.Call)
            and getattr(node.func, "id", getattr(node.func, "attr", "")) in ("update", "insert")
            and node.args
            and ast.unparse(node.args[0]) in self.tables | {"TaskInstance.__table__"}
        ):
            return
        kind = getattr(node.func, "id", getattr(node.func, "attr", ""))
        link: ast.AST = node
        while True:  # up the method chain: update(T).where(...).values(...).returning(...)
            attribute = self.parents.get(link)
            call = self.parents.get(attribute) if attribute is not None else None
            if not (isinstance(attribute, ast.Attribute) and isinstance(call, ast.Call) and call.func is attribute):
                break
            link = call
            if kind == "update" and attribute.attr in ("values", "ordered_values") and self._sets_state(call):
                self._flag(call, f"{ast.unparse(node)}...{attribute.attr}(state=...)")
            if kind == "insert" and attribute.attr == "on_conflict_do_update":
                self._flag(call, f"{ast.unparse(node)}...on_conflict_do_update (an upsert may set state)")
        executed = self.parents.get(link)
        if (
            kind == "update"
            and isinstance(executed, ast.Call)
            and link in executed.args[:1]
            and getattr(executed.func, "attr", "") == "execute"
            and len(executed.args) > 1
        ):
            self._flag(executed, f"execute({ast.unparse(node)}..., <rows>): rows may set state")

    @staticmethod
    def _sets_state(call: ast.Call) -> bool:
        if any(k.arg in ("state", None) for k in call.keywords):  # None: **values, may hold state
            return True
        for arg in call.args:
            if not isinstance(arg, ast.Dict):
                return True  # a dict built elsewhere: may hold state
            if any(k is None or (isinstance(k, ast.Constant) and k.value == "state") for k in arg.keys):
                return True
        return False


def _writes(source: str) -> list[str]:
    return _Scan(source).run()


def _modules() -> Iterator[tuple[str, str]]:
    for path in sorted(PACKAGE.rglob("*.py")):
        yield path.relative_to(PACKAGE).as_posix(), path.read_text(encoding="utf-8")


def test_no_module_but_the_owner_writes_a_task_instance_state() -> None:
    found = [f"{name}:{line}" for name, source in _modules() if name != OWNER for line in _writes(source)]
    assert found == [], "task-instance state is written only by rabbitrun.models.transitions (DESIGN rule 8)"


def test_the_scan_sees_the_owners_own_writes() -> None:
    found = _writes((PACKAGE / OWNER).read_text(encoding="utf-8"))
    assert any("values(state=...)" in f for f in found) and any("set_committed_value" in f for f in found)


@pytest.mark.parametrize(
    "source",
    [
        "def f(ti: TaskInstance):\n    ti.state = 'x'\n",
        "def f(session):\n    ti = session.get(TaskInstance, k)\n    ti.state, ti.end_date = 'x', None\n",
        "def f(tis):\n    for ti in tis:\n        ti.state = 'x'\n",  # unknown: flagged
        "def f(s):\n    s.execute(update(TaskInstance).where(x).values(state='failed'))\n",
        "def f(s, v):\n    s.execute(update(TaskInstance).where(x).values(**v))\n",
        "def f(s):\n    s.execute(update(TaskInstance).values({'state': 'x', 'reason': None}))\n",
        "_T = cast(Table, TaskInstance.__table__)\nQ = update(_T).where(a).values(state=bindparam('s'))\n",
        "def f(s, rows):\n    s.execute(update(TaskInstance), rows)\n",
        "def f(ti):\n    setattr(ti, 'state', 'x')\n",
        "def f(s):\n    s.execute(text('UPDATE task_instance SET state = :s WHERE 1'))\n",
        "def f():\n    def g(ti: TaskInstance):\n        ti.state = 'x'\n    return g\n",
    ],
)
def test_the_scan_finds_each_way_of_writing_the_state(source: str) -> None:
    assert _writes(source) != []


@pytest.mark.parametrize(
    "source",
    [
        "def f(run: DagRun):\n    run.state, run.end_date = 'running', None\n",
        "def _run(s) -> DagRun:\n    ...\ndef f(s):\n    run = _run(s)\n    run.state = 'failed'\n",
        "def f(s):\n    for run in s.execute(select(DagRun)).scalars():\n        run.state = 'running'\n",
        "def f(s):\n    runs = s.execute(select(DagRun)).scalars().all()\n"
        "    for run in runs:\n        run.state = 'x'\n",
        "def f(s):\n    s.execute(update(DagRun).values(state='failed'))\n",
        "def f(s):\n    s.execute(update(TaskInstance).where(a).values(map_index=0))\n",
        "def f(s):\n    s.execute(insert(TaskInstance), [{'state': 'none'}])\n",  # creating rows is no change
        "class Report:\n    def set(self):\n        self.state = 'done'\n",
        "def f(ti: TaskInstance):\n    return ti.state == 'x'\n",
    ],
)
def test_the_scan_leaves_dag_runs_and_other_columns_alone(source: str) -> None:
    assert _writes(source) == []


# --- (b) the table against what the owner does --------------------------------------------------------


def test_the_table_names_every_state() -> None:
    assert set(TRANSITIONS) == set(TaskState)


def test_every_edge_of_the_owner_is_allowed_and_together_they_are_the_table() -> None:
    performed = {pair for edge in transitions.EDGES.values() for pair in edge.pairs()}
    assert all(allowed(from_, to) for from_, to in performed)
    table = {(from_, to) for from_, targets in TRANSITIONS.items() for to in targets}
    assert performed == table, "TRANSITIONS lists exactly what rabbitrun.models.transitions can do"


def _sets_state(node: ast.AST) -> bool:
    """Whether this code builds a state write: ``.values(state=...)``, ``{"state": ...}`` (the queueing
    values), or shows one on a loaded row (``set_committed_value(ti, "state", ...)``)."""
    for c in ast.walk(node):
        if (
            isinstance(c, ast.Call)
            and getattr(c.func, "attr", "") == "values"
            and "state" in {k.arg for k in c.keywords}
        ):
            return True
        if isinstance(c, ast.Dict) and any(isinstance(k, ast.Constant) and k.value == "state" for k in c.keys):
            return True
        if (
            isinstance(c, ast.Call)
            and getattr(c.func, "id", "") == "set_committed_value"
            and any(isinstance(a, ast.Constant) and a.value == "state" for a in c.args)
        ):
            return True
    return False


def test_every_writer_in_the_owner_goes_through_an_edge() -> None:
    """The owner builds its state writes in a few builders only; every function that uses a builder
    names one of the declared edges or is handed one (``edge``), and the edge checks each pair."""
    tree = ast.parse((PACKAGE / OWNER).read_text(encoding="utf-8"))
    builders = {"statement", "_row_statement", "_show", "_claim_update", "_queue_statement"}
    edges = {name for name, value in vars(transitions).items() if isinstance(value, transitions.Edge)}
    functions = {f.name: f for f in ast.walk(tree) if isinstance(f, ast.FunctionDef)}
    assert {name for name, f in functions.items() if _sets_state(f)} == builders
    module_level = [ast.unparse(n.targets[0]) for n in tree.body if isinstance(n, ast.Assign) and _sets_state(n)]
    assert module_level == ["FINISH_UPDATE"]  # its pair is a parameter: check_finish checks it
    callers = {
        name
        for name, f in functions.items()
        if name not in builders and _names(f) & (builders | {"transition", "change"})
    }
    assert {"release", "put_back", "mark_run", "collapse", "change", "add", "queue_rows"} <= callers
    unchecked = [
        name
        for name in callers
        if not _names(functions[name]) & edges
        and "edge" not in {a.arg for a in [*functions[name].args.args, *functions[name].args.kwonlyargs]}
    ]
    assert unchecked == []
    assert "CLAIM" in _names(functions["_claim_update"]) and "FINISH" in _names(functions["check_finish"])
    assert "edge" in _names(functions["statement"])


def test_the_set_based_statement_expects_exactly_the_states_it_was_given() -> None:
    sql = str(
        transitions.statement(transitions.CLEAR, [], [TaskState.SUCCESS, TaskState.FAILED], TaskState.NONE).compile(
            compile_kwargs={"literal_binds": True}
        )
    )
    assert "state IN ('failed', 'success')" in sql and "SET state='none'" in sql


# --- (c) forbidden transitions --------------------------------------------------------------------


FORBIDDEN = [(f, t) for f in TaskState for t in TaskState if not allowed(f, t)]


def test_there_are_forbidden_transitions() -> None:
    assert (TaskState.SUCCESS, TaskState.RUNNING) in FORBIDDEN and (TaskState.QUEUED, TaskState.NONE) in FORBIDDEN


@pytest.mark.parametrize("from_,to", FORBIDDEN)
def test_no_edge_can_be_declared_for_a_pair_the_table_forbids(from_: TaskState, to: TaskState) -> None:
    with pytest.raises(InvalidTransition):
        transitions.Edge("made up", frozenset({from_}), frozenset({to}))


def test_an_edge_refuses_a_pair_it_does_not_hold_even_when_the_table_allows_it() -> None:
    assert allowed(TaskState.SUCCESS, TaskState.FAILED)  # by hand, not by the claim path
    with pytest.raises(InvalidTransition, match="success -> running by claim"):
        transitions.CLAIM.check(TaskState.SUCCESS, TaskState.RUNNING)
    with pytest.raises(InvalidTransition):
        transitions.FINISH.check(TaskState.SUCCESS, TaskState.FAILED)
    with pytest.raises(InvalidTransition):
        transitions.statement(transitions.CLEAR, [], [TaskState.RUNNING], TaskState.NONE)
    with pytest.raises(InvalidTransition):
        transitions.statement(transitions.CLEAR, [], [], TaskState.NONE)


# --- against a migrated SQLite file ---------------------------------------------------------------


@pytest.fixture()
def session(tmp_path: Path) -> Iterator[Session]:
    engine = make_engine(DatabaseSettings(url=Secret(f"sqlite:///{tmp_path / 'rabbitrun.db'}")))
    upgrade(engine)
    with session_factory(engine)() as s:
        s.add(DagRun(dag_id="d", run_id="r", state="running", logical_date=NOW))
        s.flush()
        s.add_all(
            [
                TaskInstance(
                    dag_id="d",
                    task_id=t,
                    run_id="r",
                    map_index=-1,
                    state=TaskState.NONE.value,
                    try_number=0,
                    queue="default",
                )
                for t in ("a", "b", "c")
            ]
        )
        s.commit()
        yield s
    engine.dispose()


def _state(s: Session, task_id: str) -> str:
    return s.execute(select(TaskInstance.state).where(TaskInstance.task_id == task_id)).scalar_one()


def _behind_its_back(s: Session, task_id: str, state: TaskState) -> None:
    """Another process moves the row on (the test writes the column directly, as a fixture)."""
    s.execute(
        update(TaskInstance)
        .where(TaskInstance.task_id == task_id)
        .values(state=state.value)
        .execution_options(synchronize_session=False)
    )
    s.commit()


def test_a_compare_and_set_whose_expected_state_no_longer_holds_changes_no_row(session: Session) -> None:
    where = [TaskInstance.dag_id == "d", TaskInstance.run_id == "r", TaskInstance.task_id == "a"]
    assert (
        transitions.transition(
            session, where, [TaskState.QUEUED], TaskState.SCHEDULED, edge=transitions.REPUBLISH, reason="x"
        )
        == 0
    )
    assert _state(session, "a") == "none"
    assert transitions.transition(session, where, [TaskState.NONE], TaskState.SKIPPED, edge=transitions.SETTLE) == 1
    assert _state(session, "a") == "skipped"


def test_a_loaded_row_that_moved_on_is_not_changed_and_is_reloaded(session: Session) -> None:
    ti = session.get(TaskInstance, ("d", "b", "r", -1))
    assert ti is not None and ti.state == "none"
    _behind_its_back(session, "b", TaskState.QUEUED)  # the loaded row still says none
    assert not transitions.change(session, ti, transitions.SETTLE, TaskState.SKIPPED, end_date=NOW)
    assert _state(session, "b") == "queued" and ti.state == "queued"


def test_a_batch_changes_the_rows_still_as_read_and_reloads_the_others(session: Session) -> None:
    tis = session.execute(select(TaskInstance).order_by(TaskInstance.task_id)).scalars().all()
    changes = transitions.Changes()
    for ti in tis:
        changes.add(ti, transitions.SETTLE, TaskState.UPSTREAM_FAILED, end_date=NOW, reason="an upstream task failed")
    assert [ti.state for ti in tis] == ["upstream_failed"] * 3  # the pass sees its decisions at once
    _behind_its_back(session, "c", TaskState.QUEUED)  # (commits nothing of the batch: it is not written yet)
    assert changes.write(session) == 2
    session.commit()
    assert [_state(session, t) for t in "abc"] == ["upstream_failed", "upstream_failed", "queued"]
    assert tis[2].state == "queued"
    assert changes.write(session) == 0  # written once


def test_a_forbidden_change_of_a_loaded_row_raises_before_any_sql(session: Session) -> None:
    ti = session.get(TaskInstance, ("d", "a", "r", -1))
    assert ti is not None
    with pytest.raises(InvalidTransition):
        transitions.change(session, ti, transitions.CLAIM, TaskState.RUNNING)  # none is not claimable
    with pytest.raises(InvalidTransition):
        transitions.Changes().add(ti, transitions.SETTLE, TaskState.SUCCESS)
    with pytest.raises(InvalidTransition):
        transitions.queue_rows(session, [("d", "a", "r", -1, 0, "success")], keep_try=False, queue="q", now=NOW)
    assert _state(session, "a") == "none"


def test_the_finish_path_refuses_an_outcome_its_edge_does_not_hold(session: Session) -> None:
    key = TaskInstanceKey("d", "a", "r", -1, 0)
    with pytest.raises(InvalidTransition):
        attempts.finish(session, key, attempts.Finish(TaskState.QUEUED, NOW), started_at=NOW)
    with pytest.raises(InvalidTransition):
        attempts.finish(session, key, attempts.Finish(TaskState.FAILED, NOW), expect=TaskState.SUCCESS)
    assert _state(session, "a") == "none"
