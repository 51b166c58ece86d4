"""Unchanged ``from airflow ...`` DAG files: an import hook that answers ``airflow.*`` with rabbitrun's names.

Opt-in (``[core] airflow_compat``): while the DagBag imports a DAG file, a
``sys.meta_path`` finder makes every ``airflow`` module an Airflow user's DAG
imports (``airflow.decorators``, ``airflow.operators.bash``,
``airflow.providers.standard.sensors.time``, ``airflow.sdk`` ...) a stand-in
module. A stand-in has no table of names: its attribute lookup asks rabbitrun's
authoring API at the moment of the lookup, so a name another part of rabbitrun
exports later resolves without editing this module. A name rabbitrun does not
have is an ImportError that says so ("rabbitrun does not provide
airflow.operators.empty.EmptyOperator yet"), which the DagBag records as the
file's import error.

Scope: the finder of the top-level ``airflow`` is on ``sys.meta_path`` only
inside :func:`airflow_imports`, so the scheduler's and worker's own imports never
see it. The stand-ins a DAG file imported stay in ``sys.modules`` afterwards, and
their ``__path__`` is one entry that only this module's path hook answers, so a
task body that imports ``from airflow.operators.python import get_current_context``
at run time (an Airflow idiom) still resolves, while a process that never loaded
such a file has no ``airflow`` at all. A real ``airflow``
package on the path is a configuration error: the two would shadow each other.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from types import ModuleType

from rabbitrun.errors import ConfigError

__all__ = ["AIRFLOW_MODULES", "AirflowShimModule", "airflow_imports", "check_no_real_airflow", "resolve"]

#: The ``airflow`` modules (and everything below them) that resolve to rabbitrun, besides ``airflow`` itself.
AIRFLOW_MODULES = (
    "airflow.decorators",
    "airflow.operators",
    "airflow.sensors",
    "airflow.models",
    "airflow.utils",
    "airflow.exceptions",
    "airflow.macros",
    "airflow.sdk",
    "airflow.datasets",
    "airflow.assets",
    "airflow.timetables",
    "airflow.providers.standard",
)
#: Packages whose children are modules: ``from airflow.utils import timezone`` imports a module,
#: while a lowercase name of a leaf module (``from airflow.models.baseoperator import chain``) is a name.
_PACKAGES = frozenset(
    {
        "airflow",
        "airflow.operators",
        "airflow.sensors",
        "airflow.models",
        "airflow.utils",
        "airflow.timetables",
        "airflow.providers",
        "airflow.providers.standard",
        "airflow.providers.standard.operators",
        "airflow.providers.standard.sensors",
        "airflow.providers.standard.triggers",
        "airflow.providers.standard.decorators",
        "airflow.providers.standard.utils",
        "airflow.providers.standard.hooks",
        "airflow.sdk",
        "airflow.sdk.definitions",
        "airflow.decorators",
    }
)
#: Airflow's old spellings of a name rabbitrun has under Airflow's current one.
_RENAMED = {"DummyOperator": "EmptyOperator", "Dataset": "Asset", "DatasetAlias": "AssetAlias"}
_ROOT_SOURCES = ("rabbitrun", "rabbitrun.authoring")
_PATH_ENTRY = "<rabbitrun airflow stand-ins>"  # a __path__ entry no directory can have


def _accepted(fullname: str) -> bool:
    if not fullname.startswith("airflow"):
        return False
    if any(part[:1].isupper() for part in fullname.split(".")):
        return False  # a class name asked for as a module (``import airflow.operators.bash.BashOperator``)
    return fullname in _PACKAGES or any(fullname == m or fullname.startswith(m + ".") for m in AIRFLOW_MODULES)


def _sources(module_name: str) -> Iterator[object]:
    """Where a stand-in module's names come from, best first, imported only when asked.

    The package root (the authoring API DAG files use), the authoring package, and a
    module of rabbitrun's named like the Airflow module's last part (``airflow.macros`` ->
    ``rabbitrun.macros`` as an attribute of the root, or ``rabbitrun.authoring.macros``).
    """
    for name in _ROOT_SOURCES:
        yield importlib.import_module(name)
    leaf = module_name.rsplit(".", 1)[-1]
    root = importlib.import_module("rabbitrun")
    value = getattr(root, leaf, None)
    if isinstance(value, ModuleType):
        yield value
    candidate = f"rabbitrun.authoring.{leaf}"
    if candidate in sys.modules or importlib.util.find_spec(candidate) is not None:
        yield importlib.import_module(candidate)


def resolve(module_name: str, name: str) -> object:
    """The rabbitrun object that ``from <module_name> import <name>`` means; ImportError if none."""
    wanted = _RENAMED.get(name, name)
    for source in _sources(module_name):
        for candidate in (wanted, name) if wanted != name else (name,):
            try:
                return getattr(source, candidate)
            except AttributeError:
                continue
    child = f"{module_name}.{name}"
    if module_name in _PACKAGES and _accepted(child):
        return importlib.import_module(child)
    raise ImportError(f"rabbitrun does not provide {module_name}.{name} yet", name=module_name)


class AirflowShimModule(ModuleType):
    """A stand-in for one ``airflow`` module: every attribute is looked up in rabbitrun when first asked."""

    def __getattr__(self, name: str) -> object:
        if name.startswith("__"):
            raise AttributeError(name)  # dunder probes (``__file__``, ``__wrapped__``) are not names
        value = resolve(self.__name__, name)
        setattr(self, name, value)
        return value


class _Loader(importlib.abc.Loader):
    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        return AirflowShimModule(spec.name)

    def exec_module(self, module: ModuleType) -> None:
        # every stand-in is a package whose one path entry only _path_hook answers, so ``airflow.a.b``
        # imports below a stand-in the DAG file loaded, also later from a task body
        module.__path__ = [_PATH_ENTRY]


def _spec(fullname: str, loader: _Loader) -> importlib.machinery.ModuleSpec | None:
    if fullname.split(".")[0] != "airflow":
        return None
    if not _accepted(fullname):
        if any(part[:1].isupper() for part in fullname.split(".")):
            return None  # let ``from m import Name`` fall back to the module's attribute
        raise ImportError(f"rabbitrun does not provide the module {fullname} yet", name=fullname)
    spec = importlib.machinery.ModuleSpec(fullname, loader, is_package=True)
    spec.submodule_search_locations = [_PATH_ENTRY]
    return spec


class _Finder(importlib.abc.MetaPathFinder):
    """Finds the top-level ``airflow``: on ``sys.meta_path`` only while a DAG file is imported."""

    def __init__(self) -> None:
        self.loader = _Loader()

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        return _spec(fullname, self.loader)


class _EntryFinder(importlib.abc.PathEntryFinder):
    """Finds the modules below a stand-in: asked only for the stand-ins' own path entry."""

    def __init__(self) -> None:
        self.loader = _Loader()

    def find_spec(self, fullname: str, target: ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        return _spec(fullname, self.loader)


def _path_hook(entry: str) -> importlib.abc.PathEntryFinder:
    if entry != _PATH_ENTRY:
        raise ImportError("not rabbitrun's airflow stand-ins")  # the next hook gets the entry
    return _EntryFinder()


def check_no_real_airflow() -> None:
    """ConfigError when an installed ``airflow`` package would meet the stand-ins: they would shadow each other."""
    if isinstance(sys.modules.get("airflow"), AirflowShimModule):
        return
    try:
        spec = importlib.util.find_spec("airflow")
    except (ImportError, ValueError):
        spec = None
    if spec is not None:
        where = spec.origin or (list(spec.submodule_search_locations or []) or ["?"])[0]
        raise ConfigError(
            f"[core] airflow_compat is on, but a real 'airflow' package is installed ({where}): "
            "rabbitrun's stand-in modules would shadow it; uninstall Airflow from this environment "
            "or turn airflow_compat off and port the imports (from airflow.x import Y -> from rabbitrun import Y)"
        )


@contextmanager
def airflow_imports(enabled: bool) -> Iterator[None]:
    """Resolve ``airflow.*`` imports to rabbitrun within the block, if ``enabled``; a no-op otherwise."""
    if not enabled:
        yield
        return
    check_no_real_airflow()
    if _path_hook not in sys.path_hooks:
        sys.path_hooks.insert(0, _path_hook)  # inert for every other entry: it raises ImportError
    finder = _Finder()
    sys.meta_path.insert(0, finder)
    try:
        yield
    finally:
        sys.meta_path.remove(finder)
