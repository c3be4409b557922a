"""What a drafted workflow script may contain before shoal imports it for the dry run.

A drafted script is model output, and the rehearsal dry run executes it before anyone has read
it. So before that, an AST walk holds it to an allow-list: imports only from `shoal`, pydantic
and harmless stdlib modules (and only the names listed for each), none of the builtins that
reach the interpreter (eval, exec, open, __import__, getattr, ...), no dunder or private
attribute, no string annotation that would be evaluated later. Like the `run` tool's allowlist,
this is a gate against a model's mistakes, not a sandbox against an adversary.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator

from ._errors import DraftRejected

__all__ = ["ALLOWED_IMPORTS", "REFUSED_BUILTINS", "UnsafeScript", "check_script"]

# module -> the names a script may take from it (or use as `module.name`).
ALLOWED_IMPORTS: dict[str, frozenset[str]] = {
    "shoal": frozenset(
        {"agent", "parallel", "pipeline", "phase", "verify_fix", "workflow", "workspace", "log", "Finding",
         "FixOutcome"}
    ),
    "pydantic": frozenset(
        {"BaseModel", "Field", "ConfigDict", "field_validator", "model_validator", "ValidationError"}
    ),
    "__future__": frozenset({"annotations"}),
    "typing": frozenset(
        {"Any", "Literal", "Optional", "Union", "Annotated", "TypedDict", "NamedTuple", "Final", "cast"}
    ),
    "collections": frozenset({"Counter", "defaultdict", "OrderedDict", "deque"}),
    "collections.abc": frozenset(
        {"Awaitable", "Callable", "Iterable", "Iterator", "Mapping", "Sequence", "AsyncIterator"}
    ),
    "dataclasses": frozenset({"dataclass", "field", "asdict", "replace"}),
    "enum": frozenset({"Enum", "IntEnum", "StrEnum", "auto"}),
    "json": frozenset({"dumps", "loads", "JSONDecodeError"}),
    "re": frozenset(
        {"compile", "search", "match", "fullmatch", "findall", "finditer", "sub", "split", "escape",
         "IGNORECASE", "MULTILINE", "DOTALL", "Pattern", "Match"}
    ),
    "math": frozenset({"ceil", "floor", "sqrt", "log", "exp", "inf", "isclose", "fsum", "prod"}),
    "statistics": frozenset({"mean", "median", "stdev", "pstdev"}),
    "itertools": frozenset({"chain", "islice", "groupby", "product", "combinations", "batched", "count"}),
    "functools": frozenset({"partial", "reduce"}),
    "textwrap": frozenset({"dedent", "indent", "shorten", "wrap", "fill"}),
    "string": frozenset({"ascii_letters", "ascii_lowercase", "ascii_uppercase", "digits", "punctuation"}),
    "datetime": frozenset({"date", "datetime", "timedelta", "timezone"}),
    "pathlib": frozenset({"PurePosixPath", "PurePath"}),  # path arithmetic only; no file access
}  # fmt: skip

# Builtins that reach the interpreter, the file system or the terminal.
REFUSED_BUILTINS = frozenset(
    {"eval", "exec", "compile", "__import__", "open", "input", "breakpoint", "globals", "locals", "vars",
     "getattr", "setattr", "delattr", "exit", "quit", "help", "memoryview", "__builtins__"}
)  # fmt: skip

# Modules a model reaches for that must never run at draft time; named in the refusal.
_DANGEROUS = {
    "os": "runs commands and touches files",
    "sys": "reaches the interpreter",
    "subprocess": "runs commands",
    "shutil": "moves and deletes files",
    "socket": "opens network connections",
    "ctypes": "calls native code",
    "importlib": "imports anything",
    "builtins": "reaches eval and exec",
    "pathlib": "touches files (only PurePosixPath and PurePath are allowed)",
    "pickle": "runs code while loading",
    "multiprocessing": "starts processes",
    "threading": "starts threads",
    "asyncio": "starts subprocesses and servers (use parallel and pipeline)",
    "urllib": "opens network connections",
    "http": "opens network connections",
    "requests": "opens network connections",
    "httpx": "opens network connections",
}
_ALLOWED_DUNDERS = frozenset({"__name__", "__init__", "__post_init__", "__str__", "__repr__"})


class UnsafeScript(DraftRejected):
    """A drafted script reaches for something outside the allow-list."""


def _why(module: str) -> str:
    top = module.split(".")[0]
    reason = _DANGEROUS.get(top) or _DANGEROUS.get(module)
    allowed = ", ".join(sorted(ALLOWED_IMPORTS))
    return f"({reason})" if reason else f"(allowed modules: {allowed})"


class _Checker:
    def __init__(self) -> None:
        self.problems: list[str] = []
        self.modules: dict[str, str] = {}  # local name -> module, for `import json` style imports

    def refuse(self, node: ast.AST, message: str) -> None:
        self.problems.append(f"line {getattr(node, 'lineno', '?')}: {message}")

    def check(self, tree: ast.Module) -> None:
        parents: dict[ast.AST, ast.AST] = {}
        for node in ast.walk(tree):
            for child in ast.iter_child_nodes(node):
                parents[child] = node
        for node in ast.walk(tree):
            self.visit(node, parents)
        for annotation in _annotations(tree):
            self.check_annotation(annotation)

    def visit(self, node: ast.AST, parents: dict[ast.AST, ast.AST]) -> None:
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in ALLOWED_IMPORTS and alias.name not in ("shoal", "__future__"):
                    self.modules[alias.asname or alias.name.split(".")[0]] = alias.name
                else:
                    hint = " (write `from shoal import ...`)" if alias.name == "shoal" else ""
                    self.refuse(node, f"`import {alias.name}` is not allowed {_why(alias.name)}{hint}")
        elif isinstance(node, ast.ImportFrom):
            module = "." * node.level + (node.module or "")
            allowed = ALLOWED_IMPORTS.get(module)
            if allowed is None:
                self.refuse(node, f"`from {module} import ...` is not allowed {_why(module)}")
                return
            for alias in node.names:
                if alias.name not in allowed:
                    self.refuse(
                        node,
                        f"`from {module} import {alias.name}`: {alias.name} is not on the allow-list "
                        f"(allowed from {module}: {', '.join(sorted(allowed))})",
                    )
        elif isinstance(node, ast.Name):
            self.visit_name(node, parents)
        elif isinstance(node, ast.Attribute):
            self.visit_attribute(node)
        elif isinstance(node, ast.Global):
            self.refuse(node, "`global` is not allowed")

    def visit_name(self, node: ast.Name, parents: dict[ast.AST, ast.AST]) -> None:
        if node.id in REFUSED_BUILTINS:
            self.refuse(node, f"`{node.id}` is not allowed in a drafted script")
        elif node.id.startswith("__") and node.id not in _ALLOWED_DUNDERS:
            self.refuse(node, f"`{node.id}` is not allowed (no dunder names)")
        elif node.id in _DANGEROUS and node.id not in self.modules:
            parent = parents.get(node)
            used = f"{node.id}.{parent.attr}" if isinstance(parent, ast.Attribute) else node.id
            self.refuse(node, f"`{used}` is not allowed: the {node.id} module {_DANGEROUS[node.id]}")
        elif node.id in self.modules:
            parent = parents.get(node)
            module = self.modules[node.id]
            if not isinstance(parent, ast.Attribute) or parent.value is not node:
                self.refuse(node, f"the module `{node.id}` may only be used as `{node.id}.NAME`")
            elif parent.attr not in ALLOWED_IMPORTS[module]:
                allowed = ", ".join(sorted(ALLOWED_IMPORTS[module]))
                self.refuse(node, f"`{node.id}.{parent.attr}` is not on the allow-list (allowed: {allowed})")

    def visit_attribute(self, node: ast.Attribute) -> None:
        if node.attr.startswith("_") and node.attr not in _ALLOWED_DUNDERS:
            self.refuse(node, f"`.{node.attr}` is not allowed (no private or dunder attributes)")
        elif node.attr in ("system", "popen", "spawn", "exec_module", "load_module") and not (
            isinstance(node.value, ast.Name) and node.value.id in _DANGEROUS  # named with its module
        ):
            self.refuse(node, f"`.{node.attr}` is not allowed (it runs commands or loads code)")

    def check_annotation(self, annotation: ast.expr) -> None:
        """A string annotation is evaluated later (by pydantic, get_type_hints): check what it holds."""
        for node in ast.walk(annotation):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                try:
                    inner = ast.parse(node.value, mode="eval")
                except SyntaxError:
                    self.refuse(node, f"annotation {node.value!r} is not a valid type expression")
                    continue
                nested = _Checker()
                nested.modules = self.modules
                parents: dict[ast.AST, ast.AST] = {}
                for sub in ast.walk(inner):
                    for child in ast.iter_child_nodes(sub):
                        parents[child] = sub
                for sub in ast.walk(inner):
                    if isinstance(sub, ast.Call):
                        nested.refuse(node, f"annotation {node.value!r} calls something")
                    nested.visit(sub, parents)
                self.problems.extend(nested.problems)


def _annotations(tree: ast.Module) -> Iterator[ast.expr]:
    for node in ast.walk(tree):
        if isinstance(node, ast.arg) and node.annotation is not None:
            yield node.annotation
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.returns is not None:
            yield node.returns
        elif isinstance(node, ast.AnnAssign):
            yield node.annotation


def _workflow_entry_points(tree: ast.Module) -> list[ast.AsyncFunctionDef | ast.FunctionDef]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            for decorator in node.decorator_list:
                target = decorator.func if isinstance(decorator, ast.Call) else decorator
                if isinstance(target, ast.Name) and target.id == "workflow":
                    found.append(node)
    return found


def check_script(source: str, *, filename: str = "workflow.py") -> ast.Module:
    """Parse `source` and hold it to the allow-list; UnsafeScript names every problem (at most 8)."""
    try:
        tree = ast.parse(source, filename=filename)
    except SyntaxError as exc:
        raise UnsafeScript(f"syntax error on line {exc.lineno}: {exc.msg}") from None
    checker = _Checker()
    checker.check(tree)
    entry = _workflow_entry_points(tree)
    if len(entry) != 1:
        names = ", ".join(f.name for f in entry)
        checker.problems.append(
            "no @workflow function: decorate one async entry point with @workflow"
            if not entry
            else f"{len(entry)} @workflow functions ({names}): keep exactly one"
        )
    elif not isinstance(entry[0], ast.AsyncFunctionDef):
        checker.problems.append(f"line {entry[0].lineno}: the @workflow function must be `async def`")
    if checker.problems:
        unique = list(dict.fromkeys(checker.problems))
        more = f" (and {len(unique) - 8} more)" if len(unique) > 8 else ""
        raise UnsafeScript("; ".join(unique[:8]) + more)
    return tree
