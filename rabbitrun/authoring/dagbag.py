"""DagBag: import DAG files from the dags folder (and the examples) and keep them fresh.

A DAG file is named everywhere by its *file ref*: its path relative to the
dags folder (``etl/daily.py``), or ``@examples/<name>.py`` for the bundled
examples. Envelopes carry file refs, so :meth:`DagBag.resolve` is the gate
that keeps a message from naming a file outside the dags folder.

Importing user code is a process boundary: whatever a DAG file raises
(SystemExit included) is recorded in ``import_errors`` and never propagates.
"""

from __future__ import annotations

import contextvars
import hashlib
import importlib.util
import os
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from types import ModuleType, TracebackType

from rabbitrun.authoring import dagcontext
from rabbitrun.authoring.airflow_shim import airflow_imports, check_no_real_airflow
from rabbitrun.authoring.dag import DAG
from rabbitrun.errors import DagDefinitionError, DagNotFound, UnsafeDagPath

__all__ = ["EXAMPLES_PREFIX", "DagBag", "ImportErrorInfo"]

EXAMPLES_PREFIX = "@examples/"
EXAMPLES_DIR = Path(__file__).resolve().parent.parent / "example_dags"
_MODULE_PREFIX = "rabbitrun_dag_"


@dataclass(frozen=True)
class ImportErrorInfo:
    """Why one DAG file could not be loaded, pointing at the line in that file."""

    filename: str  # the file ref
    lineno: int | None
    exception: str  # one line: "ZeroDivisionError: division by zero"
    traceback: str


@dataclass(frozen=True)
class _Stamp:
    """What tells us a file changed; size catches edits within one mtime tick."""

    mtime_ns: int
    size: int


class DagBag:
    """The DAGs of one dags folder, by dag_id, and the files that failed to import."""

    def __init__(
        self,
        dags_folder: Path,
        include_examples: bool = True,
        airflow_compat: bool = False,
        plugins_folder: Path | None = None,
    ) -> None:
        self.dags_folder = Path(dags_folder).resolve()
        self.plugins_folder = Path(plugins_folder).resolve() if plugins_folder is not None else None
        self.include_examples = include_examples
        self.airflow_compat = airflow_compat  # unchanged `from airflow ...` files (airflow_shim.py)
        if airflow_compat:
            check_no_real_airflow()  # a misconfiguration stops the process, not each file
        self.dags: dict[str, DAG] = {}
        self.import_errors: dict[str, ImportErrorInfo] = {}
        self._dag_ids_by_file: dict[str, list[str]] = {}
        self._stamps: dict[str, _Stamp | None] = {}
        self._blocked_by_duplicate: set[str] = set()
        for ref in self.list_file_refs():
            self.load_file(ref)

    def __repr__(self) -> str:
        return f"<DagBag {self.dags_folder} dags={len(self.dags)} errors={len(self.import_errors)}>"

    @property
    def dag_ids(self) -> list[str]:
        return sorted(self.dags)

    def get_dag(self, dag_id: str) -> DAG:
        try:
            return self.dags[dag_id]
        except KeyError:
            raise DagNotFound(dag_id) from None

    def file_ref(self, dag_id: str) -> str:
        return self.get_dag(dag_id).fileloc

    # --- paths --------------------------------------------------------------

    def list_file_refs(self) -> list[str]:
        """Every DAG file ref to import: the dags folder (sorted), then the examples."""
        refs: list[str] = []
        if self.dags_folder.is_dir():
            for root, dirs, files in os.walk(self.dags_folder):
                dirs[:] = sorted(d for d in dirs if not _hidden(d))
                base = Path(root).relative_to(self.dags_folder)
                refs.extend((base / f).as_posix() for f in sorted(files) if f.endswith(".py") and not _hidden(f))
        if self.include_examples:
            refs.extend(EXAMPLES_PREFIX + p.name for p in sorted(EXAMPLES_DIR.glob("*.py")) if not _hidden(p.name))
        return refs

    def resolve(self, file_ref: str) -> Path:
        """The real path of ``file_ref``; UnsafeDagPath if it could escape its folder.

        A pure check of the ref's parts, then ``resolve()`` so a symlink that
        points outside is refused too. The file need not exist.
        """
        if file_ref.startswith(EXAMPLES_PREFIX):
            folder, rel = EXAMPLES_DIR, file_ref[len(EXAMPLES_PREFIX) :]
            if "/" in rel:
                raise UnsafeDagPath(file_ref)
        else:
            folder, rel = self.dags_folder, file_ref
        pure = PurePosixPath(rel)
        if (
            not rel
            or "\x00" in rel
            or "\\" in rel
            or pure.is_absolute()
            or any(part in ("..", ".") for part in rel.split("/"))
            or pure.suffix != ".py"
        ):
            raise UnsafeDagPath(file_ref)
        path = (folder / pure).resolve()
        if not path.is_relative_to(folder.resolve()):
            raise UnsafeDagPath(file_ref)
        return path

    # --- loading ------------------------------------------------------------

    def load_file(self, file_ref: str) -> list[DAG]:
        """Import (or re-import) one DAG file; returns its DAGs, [] if it failed.

        The file's previous DAGs and error are dropped first, so a fixed file
        clears its error and an edited one loses DAGs it no longer defines.
        """
        self._forget(file_ref)
        self._stamps[file_ref] = None  # known even if unsafe, so refresh() does not retry it forever
        path: Path | None = None
        try:
            path = self.resolve(file_ref)
            self._stamps[file_ref] = _stamp(path)
            with airflow_imports(self.airflow_compat):
                module, registered = _import(path, self._import_paths(path))
            dags = self._collect(module, registered, file_ref)
        except (Exception, SystemExit) as exc:  # noqa: BLE001 - user code: a process boundary (STYLE 6)
            self.import_errors[file_ref] = _error_info(file_ref, exc, path)
            return []
        for dag in dags:
            dag.fileloc = file_ref
            self.dags[dag.dag_id] = dag
        self._dag_ids_by_file[file_ref] = [d.dag_id for d in dags]
        return dags

    def refresh(self) -> bool:
        """Re-import changed files, drop deleted ones, import new ones; True if anything changed."""
        changed = False
        current = self.list_file_refs()
        listed = set(current)
        for ref in [r for r in self._stamps if r not in listed]:
            self._forget(ref)
            self._stamps.pop(ref, None)
            changed = True
        for ref in current:
            if ref not in self._stamps or self._stamps[ref] != _stamp_or_none(self, ref):
                self.load_file(ref)
                changed = True
        if changed:
            # a file refused for a duplicate dag_id may load now that the first is gone or edited
            for ref in sorted(self._blocked_by_duplicate):
                self.load_file(ref)
        return changed

    def _forget(self, file_ref: str) -> None:
        for dag_id in self._dag_ids_by_file.pop(file_ref, []):
            self.dags.pop(dag_id, None)
        self.import_errors.pop(file_ref, None)
        self._blocked_by_duplicate.discard(file_ref)

    def _import_paths(self, path: Path) -> list[str]:
        """What goes on sys.path while ``path`` imports: the dags folder (the examples' folder for an
        example) and the plugins folder, so helper modules beside the DAGs import as in Airflow."""
        folder = EXAMPLES_DIR if path.is_relative_to(EXAMPLES_DIR) else self.dags_folder
        paths = [str(folder)]
        if self.plugins_folder is not None:
            paths.append(str(self.plugins_folder))
        return paths

    def _collect(self, module: ModuleType, registered: list[DAG], file_ref: str) -> list[DAG]:
        """Module-level DAGs and those whose ``with`` block or @dag call ended during the import
        (Airflow >= 2.4), validated, refusing dag_ids another file already owns."""
        dags: list[DAG] = []
        for value in [*vars(module).values(), *registered]:
            if isinstance(value, DAG) and all(value is not d for d in dags):
                dags.append(value)
        seen: set[str] = set()
        for dag in dags:
            if dag.dag_id in seen:
                raise DagDefinitionError(f"DAG {dag.dag_id!r} is defined twice in {file_ref}")
            seen.add(dag.dag_id)
            owner = self.dags.get(dag.dag_id)
            if owner is not None:
                self._blocked_by_duplicate.add(file_ref)
                raise DagDefinitionError(f"DAG {dag.dag_id!r} is already defined in {owner.fileloc}")
            dag.validate()
        return dags


def _hidden(name: str) -> bool:
    return name.startswith(("_", "."))


def _stamp(path: Path) -> _Stamp | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return _Stamp(st.st_mtime_ns, st.st_size)


def _stamp_or_none(bag: DagBag, file_ref: str) -> _Stamp | None:
    try:
        return _stamp(bag.resolve(file_ref))
    except UnsafeDagPath:
        return None


def _module_name(path: Path) -> str:
    return _MODULE_PREFIX + hashlib.sha1(str(path).encode()).hexdigest()


def _import(path: Path, import_paths: list[str]) -> tuple[ModuleType, list[DAG]]:
    """Execute the file as a fresh, uniquely named module in an isolated context; return it and
    the DAGs registered while it ran.

    The copied context keeps a DAG file that enters a DAG without leaving it
    from leaking its "current DAG" into the caller's context. ``import_paths`` are put at the
    front of sys.path for the import and taken off again (modules imported stay cached).
    """
    name = _module_name(path)
    sys.modules.pop(name, None)
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path} as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pickle look modules up here
    loader = spec.loader
    added = [p for p in import_paths if p not in sys.path]
    sys.path[:0] = added

    def run() -> list[DAG]:
        with dagcontext.collecting_dags() as registered:
            loader.exec_module(module)
        return [d for d in registered if isinstance(d, DAG)]

    try:
        registered = contextvars.copy_context().run(run)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    finally:
        for p in added:
            if p in sys.path:
                sys.path.remove(p)
    return module, registered


def _error_info(file_ref: str, exc: BaseException, path: Path | None) -> ImportErrorInfo:
    lineno, tb = _deepest_line_in(exc.__traceback__, str(path)) if path else (None, None)
    if isinstance(exc, SyntaxError) and exc.lineno is not None:
        # the compile error has no frame in the file; its own text shows the line and caret
        lineno = exc.lineno
        text = "".join(traceback.format_exception_only(type(exc), exc))
    else:
        text = "".join(traceback.format_exception(type(exc), exc, tb or exc.__traceback__))
    return ImportErrorInfo(filename=file_ref, lineno=lineno, exception=_one_line(exc), traceback=text)


def _deepest_line_in(tb: TracebackType | None, filename: str) -> tuple[int | None, TracebackType | None]:
    """The line of the deepest frame in ``filename``, and the traceback from its first frame.

    Starting the traceback at the DAG file hides our own import machinery.
    """
    lineno: int | None = None
    start: TracebackType | None = None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == filename:
            lineno = tb.tb_lineno
            start = start or tb
        tb = tb.tb_next
    return lineno, start


def _one_line(exc: BaseException) -> str:
    message = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {message[0]}" if message else type(exc).__name__
