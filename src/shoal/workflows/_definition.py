"""@workflow, and loading a workflow script: its entry point, its --arg values, and what the
launch summary can see in it before it runs (phases, agent calls, model names)."""

from __future__ import annotations

import ast
import functools
import importlib.util
import inspect
import sys
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, ParamSpec, TypeVar, get_type_hints, overload

from pydantic import TypeAdapter, ValidationError

from ..config import ShoalConfig
from ..errors import InputError, UsageError
from ._paths import current_scope, in_scope, slug
from ._runtime import DEFAULT_MAX_AGENTS, RunSettings, current_runtime

__all__ = ["Outline", "Workflow", "bind_args", "load_workflow", "outline", "workflow"]

P = ParamSpec("P")
R = TypeVar("R")


class Workflow(Generic[P, R]):
    """A workflow's entry point and its caps. Awaiting it inside a running workflow runs it as a
    sub-step; `shoal run FILE.py` runs it as a job."""

    def __init__(
        self,
        fn: Callable[P, Awaitable[R]],
        *,
        name: str | None = None,
        max_agents: int | None = None,
        target: str | Path | None = None,
        commands: Sequence[str] = (),
        max_tokens: int | None = None,
        model: str | None = None,
    ) -> None:
        if not inspect.iscoroutinefunction(fn):
            raise UsageError(f"@workflow needs an async function; {fn.__qualname__} is not one")
        if max_agents is not None and max_agents < 1:
            raise UsageError(f"@workflow(max_agents={max_agents}): must be at least 1")
        self.fn = fn
        self.name = name or fn.__name__
        self.max_agents = max_agents
        self.target = target
        self.commands = tuple(commands)
        self.max_tokens = max_tokens
        self.model = model
        functools.update_wrapper(self, fn)

    @property
    def source(self) -> Path | None:
        try:
            found = inspect.getsourcefile(self.fn)
        except TypeError:
            return None
        return Path(found) if found else None

    def settings(self, config: ShoalConfig, *, cwd: Path) -> RunSettings:
        """Caps from the decorator and shoal.toml [workflow]; where both set a cap, the lower holds."""
        table = config.workflow
        caps = [c for c in (self.max_agents, table.max_agents) if c is not None]
        budgets = [b for b in (self.max_tokens, table.max_tokens) if b is not None]
        commands = list(dict.fromkeys([*self.commands, *table.allowed_commands]))
        target: Path | None = None
        if self.target is not None:
            base = self.source.parent if self.source is not None else cwd
            target = (base / Path(self.target)).resolve()
        return RunSettings(
            name=self.name,
            default_model=self.model or table.default_model or "rehearsal",
            max_agents=min(caps) if caps else DEFAULT_MAX_AGENTS,
            token_budget=min(budgets) if budgets else None,
            allowed_commands=tuple(commands),
            target=target,
            max_tokens=config.job.max_tokens,
        )

    async def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        current_runtime()
        with in_scope(current_scope().fork(slug(self.name, "workflow"))):
            return await self.fn(*args, **kwargs)


@overload
def workflow(fn: Callable[P, Awaitable[R]], /) -> Workflow[P, R]: ...


@overload
def workflow(
    *,
    name: str | None = None,
    max_agents: int | None = None,
    target: str | Path | None = None,
    commands: Sequence[str] = (),
    max_tokens: int | None = None,
    model: str | None = None,
) -> Callable[[Callable[P, Awaitable[R]]], Workflow[P, R]]: ...


def workflow(
    fn: Callable[P, Awaitable[R]] | None = None,
    /,
    *,
    name: str | None = None,
    max_agents: int | None = None,
    target: str | Path | None = None,
    commands: Sequence[str] = (),
    max_tokens: int | None = None,
    model: str | None = None,
) -> Workflow[P, R] | Callable[[Callable[P, Awaitable[R]]], Workflow[P, R]]:
    """Mark the script's entry point.

    `name`: the job's name (journal, reports, workspaces); `max_agents`: agents per run;
    `target`: the directory agent workspaces are seeded from (relative to the script; a git
    worktree when it is a repository); `commands`: what the `run` tool may start;
    `max_tokens`: a token budget for the job (it drains when reached); `model`: the default
    model of agent() calls that name none.
    """

    def make(function: Callable[P, Awaitable[R]]) -> Workflow[P, R]:
        return Workflow(
            function,
            name=name,
            max_agents=max_agents,
            target=target,
            commands=commands,
            max_tokens=max_tokens,
            model=model,
        )

    return make(fn) if fn is not None else make


# -- arguments -----------------------------------------------------------------------------


def _convert(raw: str, annotation: Any, key: str) -> Any:
    """A --arg value by the parameter's type hint: JSON, else the text itself, else a comma list."""
    if annotation in (str, Any, inspect.Parameter.empty):
        return raw
    adapter: TypeAdapter[Any] = TypeAdapter(annotation)
    try:
        return adapter.validate_json(raw)
    except ValidationError:
        pass
    try:
        return adapter.validate_python(raw)
    except ValidationError as exc:
        error = exc
    try:
        return adapter.validate_python([part.strip() for part in raw.split(",") if part.strip()])
    except ValidationError:
        pass
    raise InputError(f"--arg {key}={raw}: {error.errors()[0]['msg']}")


def bind_args(definition: Workflow[..., Any], pairs: Sequence[str]) -> dict[str, Any]:
    """--arg key=value pairs as keyword arguments for the entry point, converted by its hints."""
    fn = definition.fn
    signature = inspect.signature(fn)
    try:
        hints = get_type_hints(fn)
    except Exception:  # an unresolvable annotation: take the values as text
        hints = {}
    params = {
        p.name: p for p in signature.parameters.values() if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    }
    takes_any = any(p.kind is p.VAR_KEYWORD for p in signature.parameters.values())
    values: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key:
            raise InputError(f"--arg {pair!r}: expected key=value")
        if key not in params and not takes_any:
            accepted = ", ".join(params) or "none"
            raise InputError(
                f"--arg {key}: workflow '{definition.name}' has no such argument (it takes: {accepted})"
            )
        values[key] = _convert(raw, hints.get(key, Any), key)
    for param in params.values():
        if param.name not in values and param.default is param.empty:
            raise InputError(f"workflow '{definition.name}' needs --arg {param.name}=VALUE")
    return values


# -- loading a script ----------------------------------------------------------------------


def _name_of(node: ast.expr) -> str | None:
    if isinstance(node, ast.Call):
        node = node.func
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None


def _has_workflow(tree: ast.Module) -> bool:
    return any(
        isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and any(_name_of(d) == "workflow" for d in node.decorator_list)
        for node in ast.walk(tree)
    )


def _parse(path: Path) -> ast.Module:
    try:
        source = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read: {exc}") from None
    try:
        return ast.parse(source, filename=str(path))
    except SyntaxError as exc:
        raise InputError(f"{path}:{exc.lineno}: syntax error: {exc.msg}") from None


def load_workflow(path: Path) -> Workflow[..., Any]:
    """Import the script and return its one @workflow entry point."""
    if not _has_workflow(_parse(path)):
        raise InputError(f"{path}: no @workflow function; decorate the entry point with @workflow")
    module_name = f"shoal_workflow_{slug(path.stem, 'script').replace('-', '_').replace('.', '_')}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise InputError(f"{path}: cannot be imported as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    folder = str(path.resolve().parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)  # the script may import modules next to it
    try:
        spec.loader.exec_module(module)
    except UsageError:
        raise
    except SystemExit as exc:  # sys.exit() at import time: the script never got to its workflow
        line = _line_in(exc, path)
        where = f"{path}:{line}" if line else str(path)
        code = "" if exc.code is None else repr(exc.code)
        raise InputError(f"{where}: the script called sys.exit({code}) while loading") from None
    except Exception as exc:
        line = _line_in(exc, path)
        where = f"{path}:{line}" if line else str(path)
        message = str(exc).strip().splitlines()
        raise InputError(
            f"{where}: the script failed while loading: {type(exc).__name__}: {message[0] if message else ''}"
        ) from None
    found = [v for v in vars(module).values() if isinstance(v, Workflow) and v.fn.__module__ == module_name]
    if not found:
        raise InputError(f"{path}: no @workflow function; decorate the entry point with @workflow")
    if len(found) > 1:
        names = ", ".join(sorted(w.fn.__name__ for w in found))
        raise InputError(f"{path}: several @workflow functions ({names}); keep one per file")
    return found[0]


def _line_in(exc: BaseException, path: Path) -> int | None:
    """The line of `path` the exception came from (the script's innermost frame)."""
    wanted = path.resolve()
    return next((f.lineno for f in reversed(_frames(exc)) if Path(f.filename).resolve() == wanted), None)


def _frames(exc: BaseException) -> list[Any]:
    import traceback

    return list(traceback.extract_tb(exc.__traceback__))


@dataclass(slots=True)
class Outline:
    """What the launch summary can see in a script without running it."""

    phases: list[str] = field(default_factory=list)
    agent_calls: int = 0
    verify_fix_calls: int = 0
    models: list[str] = field(default_factory=list)


def _literal(node: ast.expr | None) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def outline(path: Path) -> Outline:
    found = Outline()
    calls = sorted(
        (n for n in ast.walk(_parse(path)) if isinstance(n, ast.Call)), key=lambda n: (n.lineno, n.col_offset)
    )
    for call in calls:
        name = _name_of(call.func)
        keywords = {k.arg: k.value for k in call.keywords if k.arg}
        if name == "phase":
            label = _literal(call.args[0] if call.args else keywords.get("name"))
            if label is not None and slug(label) not in found.phases:
                found.phases.append(slug(label))
        elif name in ("agent", "verify_fix"):
            if name == "agent":
                found.agent_calls += 1
            else:
                found.verify_fix_calls += 1
            model = _literal(keywords.get("model"))
            if model is not None and model not in found.models:
                found.models.append(model)
    return found
