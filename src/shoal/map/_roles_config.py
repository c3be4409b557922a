"""The roles file of `shoal map --roles`: specialised prompts over every record, with dependencies.

```toml
[roles.summary]
prompt = "Summarise in two sentences: {text}"
model = "fast"            # optional; also max_tokens, schema (a JSON Schema file), system
[roles.refined]
prompt = "Expand this summary into a paragraph: {summary}"
after = ["summary"]
```

In a prompt, `{field}` is a field of the record, `{role}` the output of a role named in `after`
and `{role.key}` a field of that role's structured (schema) output.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..errors import InputError
from ..preflight import check_template
from ._template import Template

__all__ = ["RoleConfig", "RoleRef", "RolesFile", "load_roles_file", "role_order"]

_ROLE_NAME = r"^[A-Za-z_][A-Za-z0-9_-]*$"


class RoleConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=False)

    prompt: str = Field(min_length=1)
    model: str | None = None  # an alias or provider:model; default: the command's --model
    max_tokens: int | None = Field(default=None, ge=1)  # default: --max-tokens, else [job] max_tokens
    schema_file: str | None = Field(default=None, alias="schema")  # relative to the roles file
    system: str | None = None  # the role's fixed instructions, sent as a cacheable shared prefix
    after: list[str] = Field(default_factory=list)


class RolesFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    roles: dict[str, RoleConfig] = Field(min_length=1)


@dataclass(frozen=True, slots=True)
class RoleRef:
    """A placeholder of a role's prompt that names another role: `{summary}` or `{summary.key}`."""

    placeholder: str
    role: str
    key: str | None


def _describe(error: ValidationError) -> str:
    errors = error.errors()
    # A misspelt key also leaves its right spelling missing: name the misspelling.
    first = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
    where = ".".join(str(part) for part in first["loc"]) or "(top level)"
    if first["type"] == "extra_forbidden":
        return f"unknown key '{where}'"
    if first["type"] == "missing":
        return f"'{where}' is missing"
    return f"{where}: {first['msg']}"


def load_roles_file(path: Path) -> RolesFile:
    """Read and validate the roles file, its graph and its templates; one InputError line if wrong."""
    try:
        data: dict[str, Any] = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{path}: roles file not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{path}: not valid TOML: {exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read: {exc}") from None
    try:
        roles = RolesFile.model_validate(data)
    except ValidationError as exc:
        raise InputError(f"{path}: {_describe(exc)}") from None
    _check_graph(roles, path)
    return roles


def _check_graph(roles: RolesFile, path: Path) -> None:
    for name, role in roles.roles.items():
        if not re.match(_ROLE_NAME, name):
            raise InputError(
                f"{path}: role name '{name}' is not valid: use letters, digits, _ and -, "
                "not starting with a digit"
            )
        check_template(role.prompt, source=f"{path}: role '{name}' prompt")
        for dependency in role.after:
            if dependency == name:
                raise InputError(f"{path}: role '{name}' is after itself")
            if dependency not in roles.roles:
                raise InputError(f"{path}: role '{name}' is after '{dependency}', which is not a role")
    role_order(roles, source=path)
    for name, role in roles.roles.items():
        for ref in role_refs(role.prompt, roles):
            if ref.role not in role.after:
                raise InputError(
                    f"{path}: role '{name}' uses {{{ref.placeholder}}}, the output of role '{ref.role}', "
                    f"which is not in its after list; add after = {[*role.after, ref.role]!r}"
                )
            if ref.key is not None and roles.roles[ref.role].schema_file is None:
                raise InputError(
                    f"{path}: role '{name}' uses {{{ref.placeholder}}}, but role '{ref.role}' has no schema: "
                    f"its output is text; write {{{ref.role}}}"
                )


def role_refs(prompt: str, roles: RolesFile) -> list[RoleRef]:
    """The placeholders of `prompt` that name a role (all others are record fields)."""
    refs: list[RoleRef] = []
    for placeholder in Template(prompt).fields:
        head, dot, key = placeholder.partition(".")
        if head in roles.roles:
            refs.append(RoleRef(placeholder, head, key if dot else None))
    return refs


def role_order(roles: RolesFile, *, source: Path) -> list[str]:
    """The roles in dependency order (each after everything it needs), in file order otherwise.

    Raises InputError naming a cycle.
    """
    order: list[str] = []
    state: dict[str, int] = {}  # 1: being visited, 2: placed

    def visit(name: str, path: list[str]) -> None:
        if state.get(name) == 2:
            return
        if state.get(name) == 1:
            cycle = [*path[path.index(name) :], name]
            raise InputError(f"{source}: roles {' -> '.join(repr(n) for n in cycle)} form a cycle")
        state[name] = 1
        for dependency in roles.roles[name].after:
            visit(dependency, [*path, name])
        state[name] = 2
        order.append(name)

    for name in roles.roles:
        visit(name, [])
    return order
