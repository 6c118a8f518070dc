"""Learning tasks: the :class:`Task` interface, the built-in ``options-iv`` and ``digits`` tasks, and :func:`load_task`.

A task is named either by a built-in name (``options-iv``) or by ``package.module:attribute`` (or
``path/to/file.py:attribute``) where the attribute is a :class:`Task` instance, a :class:`Task`
subclass, or a zero-argument factory returning a task. See ``docs/tasks.md``.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import sys
from pathlib import Path

from fedchain.errors import ConfigError
from fedchain.tasks.base import NodeData, Task, derive_seed, read_table, regression_metrics, write_csv
from fedchain.tasks.digits import DigitsTask
from fedchain.tasks.options_iv import OptionsIVTask

__all__ = ["BUILTIN_TASKS", "DEFAULT_TASK", "NodeData", "Task", "derive_seed", "load_task",
           "read_table", "regression_metrics", "write_csv"]

BUILTIN_TASKS: dict[str, type[Task]] = {OptionsIVTask.name: OptionsIVTask, DigitsTask.name: DigitsTask}
DEFAULT_TASK = OptionsIVTask.name

_HINT = ("built-in tasks: " + ", ".join(sorted(BUILTIN_TASKS))
         + "; a user task is 'package.module:attribute' or 'path/to/file.py:attribute' (see docs/tasks.md)")


def load_task(spec: str) -> Task:
    """The task named by ``spec``; :class:`ConfigError` (with a hint) when it cannot be loaded."""
    if not isinstance(spec, str) or not spec.strip():
        raise ConfigError("no task given", hint=_HINT)
    spec = spec.strip()
    if spec in BUILTIN_TASKS:
        return BUILTIN_TASKS[spec]()
    if ":" not in spec:
        raise ConfigError(f"unknown task {spec!r}", hint=_HINT)
    module_part, _, attr_path = spec.rpartition(":")
    if not module_part or not attr_path:
        raise ConfigError(f"bad task path {spec!r}: expected 'module:attribute'", hint=_HINT)
    module = _import(module_part, spec)
    obj: object = module
    for part in attr_path.split("."):
        if not hasattr(obj, part):
            raise ConfigError(f"task {spec!r}: module {module.__name__!r} has no attribute {attr_path!r}",
                              hint="the part after ':' names a Task instance, Task subclass or factory")
        obj = getattr(obj, part)
    return _as_task(obj, spec)


def _import(module_part: str, spec: str):
    if module_part.endswith(".py") or os.sep in module_part or "/" in module_part:
        path = Path(module_part).expanduser()
        if not path.is_file():
            raise ConfigError(f"task file {module_part!r} does not exist", hint=_HINT)
        name = "fedchain_user_task_" + hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:12]
        if name in sys.modules:
            return sys.modules[name]
        file_spec = importlib.util.spec_from_file_location(name, path)
        if file_spec is None or file_spec.loader is None:
            raise ConfigError(f"cannot load {module_part!r} as a Python module", hint=_HINT)
        module = importlib.util.module_from_spec(file_spec)
        sys.modules[name] = module
        try:
            file_spec.loader.exec_module(module)
        except Exception as exc:  # noqa: BLE001 - the user's module failed; say so plainly
            sys.modules.pop(name, None)
            raise ConfigError(f"importing task file {module_part!r} failed: {type(exc).__name__}: {exc}") from None
        return module
    # Like uvicorn/gunicorn: a module path is resolved from the current folder too, so that
    # `fedchain demo --task my_module:task` works from the folder holding my_module.py.
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.append(cwd)
    try:
        return importlib.import_module(module_part)
    except ModuleNotFoundError as exc:
        if exc.name and (module_part == exc.name or module_part.startswith(exc.name + ".")):
            raise ConfigError(
                f"cannot import module {module_part!r} for task {spec!r}",
                hint="run from the folder that holds it, add that folder to PYTHONPATH, "
                "or give a file path: path/to/file.py:attribute",
            ) from None
        raise ConfigError(f"importing task module {module_part!r} failed: {exc}") from None
    except Exception as exc:  # noqa: BLE001
        raise ConfigError(f"importing task module {module_part!r} failed: {type(exc).__name__}: {exc}") from None


def _as_task(obj: object, spec: str) -> Task:
    if isinstance(obj, Task):
        return obj
    if isinstance(obj, type):
        if issubclass(obj, Task):
            try:
                return obj()
            except TypeError as exc:
                raise ConfigError(f"task class {obj.__name__} in {spec!r} cannot be built without arguments: {exc}",
                                  hint="give a zero-argument factory or a Task instance instead") from None
        raise ConfigError(f"{spec!r} names class {obj.__name__}, which is not a fedchain.tasks.Task subclass",
                          hint="subclass fedchain.tasks.Task (see docs/tasks.md)")
    if callable(obj):
        try:
            made = obj()
        except TypeError as exc:
            raise ConfigError(f"task factory {spec!r} must take no arguments: {exc}") from None
        if isinstance(made, Task):
            return made
        raise ConfigError(f"task factory {spec!r} returned {type(made).__name__}, not a Task",
                          hint="return an instance of a fedchain.tasks.Task subclass")
    raise ConfigError(f"{spec!r} is a {type(obj).__name__}, not a Task",
                      hint="point at a Task instance, a Task subclass or a zero-argument factory")
