"""The exception tree: every error a user can meet exits with its documented code (1 failed,
2 bad input, 3 unavailable), never 4, which means a bug; and no module raises the bare root."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

from rabbitrun import errors

PACKAGE = Path(errors.__file__).resolve().parent
BUGS_ONLY = {errors.RabbitrunError, errors.StateError, errors.InvalidTransition}  # exit 4 on purpose


def _error_classes() -> list[type[errors.RabbitrunError]]:
    return [c for _, c in inspect.getmembers(errors, inspect.isclass) if issubclass(c, errors.RabbitrunError)]


def test_every_user_facing_error_exits_with_a_documented_code_other_than_internal() -> None:
    wrong = {c.__name__: c.exit_code for c in _error_classes() if c not in BUGS_ONLY and c.exit_code not in (1, 2, 3)}
    assert wrong == {}


def test_only_the_bug_classes_keep_the_internal_exit_code() -> None:
    assert {c for c in _error_classes() if c.exit_code == errors.EXIT_INTERNAL} == BUGS_ONLY


def test_no_module_raises_the_bare_root_or_an_abstract_base() -> None:
    bases = {"RabbitrunError", "StateError"}
    found = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call):
                name = getattr(node.exc.func, "id", getattr(node.exc.func, "attr", ""))
                if name in bases:
                    found.append(f"{path.relative_to(PACKAGE)}:{node.lineno} raises {name}")
    assert found == []


def test_every_error_class_is_raised_or_caught_somewhere() -> None:
    sources = "\n".join(p.read_text(encoding="utf-8") for p in PACKAGE.rglob("*.py") if p.name != "errors.py")
    classes = _error_classes()
    bases = {b for c in classes for b in c.__mro__[1:]}  # a base is used by its subclasses
    unused = [c.__name__ for c in classes if c not in bases and c.__name__ not in sources]
    assert unused == []
