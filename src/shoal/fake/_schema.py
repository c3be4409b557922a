"""A JSON value that validates against a JSON schema, for fake structured answers.

Covers what pydantic's `model_json_schema()` and the providers' strict modes produce: objects, arrays,
scalars with bounds, enums, consts, type lists, anyOf/oneOf/allOf and `$ref` into `$defs`. A string
`pattern` is met only when one of a few stock samples happens to match it. Constraints that a
provider's strict mode moved into the description ("{minimum: 1, maximum: 5}", as Anthropic's SDK
writes them) are honoured too, as a real model reading the description would.
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Mapping
from typing import Any

__all__ = ["SchemaFaker"]

Schema = Mapping[str, Any]

# Below this depth optional and repeated parts are left out, so recursive schemas end.
_MAX_DEPTH = 6
_GIVE_UP_DEPTH = 4 * _MAX_DEPTH

_FORMATS = {
    "date": "2024-01-15",
    "date-time": "2024-01-15T12:00:00Z",
    "time": "12:00:00",
    "email": "rehearsal@example.com",
    "uri": "https://example.com/rehearsal",
    "url": "https://example.com/rehearsal",
    "hostname": "example.com",
    "ipv4": "192.0.2.1",
    "ipv6": "2001:db8::1",
    "uuid": "00000000-0000-4000-8000-000000000000",
    "duration": "P1D",
}


# Tried in turn against a string `pattern`; generating from arbitrary regexes is out of scope.
_PATTERN_SAMPLES = (
    *_FORMATS.values(),
    "rehearsal",
    "Rehearsal",
    "REHEARSAL",
    "12345",
    "a1",
    "A1",
    "abc-123",
    "x",
)


# Keywords Anthropic's transform_schema() moves into a description, as "{minimum: 1, maximum: 5}".
_DESCRIBED = (
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "multipleOf",
    "minLength",
    "maxLength",
    "pattern",
    "format",
    "minItems",
    "maxItems",
    "uniqueItems",
)
_DESCRIBED_SPLIT = re.compile(", (?=(?:" + "|".join(_DESCRIBED) + "|default):)")
_DESCRIBED_BLOCK = re.compile(r"\{([^{}]*(?:\{[^{}]*\}[^{}]*)*)\}\s*$")


class SchemaFaker:
    """Makes values for one root schema; `rng` is seeded per prompt so answers are repeatable."""

    def __init__(self, root: Schema, label: str, rng: random.Random) -> None:
        self._root = root
        self._label = label
        self._rng = rng

    def value(self) -> Any:
        return self._make(self._root, "answer", 0)

    # -- structure -------------------------------------------------------------------------

    def _resolve(self, schema: Schema) -> Schema:
        """Follow `$ref`s and merge `allOf`, keeping sibling keywords."""
        for _ in range(32):  # a loop of plain references would otherwise never end
            ref = schema.get("$ref")
            if not isinstance(ref, str):
                break
            rest = {k: v for k, v in schema.items() if k != "$ref"}
            schema = {**self._lookup(ref), **rest}
        parts = schema.get("allOf")
        if isinstance(parts, list) and parts:
            merged: dict[str, Any] = {k: v for k, v in schema.items() if k != "allOf"}
            for part in parts:
                merged = _merge(merged, self._resolve(part))
            schema = merged
        return schema

    def _lookup(self, ref: str) -> Schema:
        if not ref.startswith("#"):
            return {}  # remote references cannot be followed offline
        node: Any = self._root
        for token in ref[1:].split("/"):
            if not token:
                continue
            token = token.replace("~1", "/").replace("~0", "~")
            node = node.get(token) if isinstance(node, Mapping) else None
            if node is None:
                return {}
        return node if isinstance(node, Mapping) else {}

    def _make(self, schema: Any, name: str, depth: int) -> Any:
        if not isinstance(schema, Mapping):
            return f"{self._label} {name}"  # `true` or a malformed schema: anything goes
        if depth > _GIVE_UP_DEPTH:
            return None  # a schema that requires itself forever has no finite instance
        schema = _with_described_constraints(self._resolve(schema))
        if "const" in schema:
            return schema["const"]
        enum = schema.get("enum")
        if isinstance(enum, list) and enum:
            return self._rng.choice(enum)
        options = schema.get("anyOf") or schema.get("oneOf")
        if isinstance(options, list) and options:
            return self._make(self._pick_option(options, schema, depth), name, depth)
        return self._by_type(schema, _type_of(schema, depth), name, depth)

    def _pick_option(self, options: list[Any], schema: Schema, depth: int) -> Any:
        """The first option, or null once deep enough that recursion must stop."""
        siblings = {k: v for k, v in schema.items() if k not in ("anyOf", "oneOf")}
        chosen = options[0]
        if depth >= _MAX_DEPTH:
            nulls = [o for o in options if isinstance(o, Mapping) and o.get("type") == "null"]
            chosen = nulls[0] if nulls else chosen
        if isinstance(chosen, Mapping) and siblings:
            return {**siblings, **chosen}
        return chosen

    def _by_type(self, schema: Schema, kind: str, name: str, depth: int) -> Any:
        if kind == "object":
            return self._object(schema, depth)
        if kind == "array":
            return self._array(schema, name, depth)
        if kind == "integer":
            return self._integer(schema)
        if kind == "number":
            return self._number(schema)
        if kind == "boolean":
            return self._rng.random() < 0.5
        if kind == "null":
            return None
        return self._string(schema, name)

    def _object(self, schema: Schema, depth: int) -> dict[str, Any]:
        properties = schema.get("properties")
        result: dict[str, Any] = {}
        if isinstance(properties, Mapping):
            required = schema.get("required") or []
            for key, sub in properties.items():
                # Strict modes require every property; deep down only the required ones, to end recursion.
                if depth < _MAX_DEPTH or key in required:
                    result[key] = self._make(sub, key, depth + 1)
        extra = schema.get("additionalProperties")
        if not result and isinstance(extra, Mapping) and depth < _MAX_DEPTH:
            result["key_1"] = self._make(extra, "value", depth + 1)  # a dict[str, X] gets one entry
        return result

    def _array(self, schema: Schema, name: str, depth: int) -> list[Any]:
        low = _int(schema.get("minItems"), 0)
        high = _int(schema.get("maxItems"), max(low, 3))
        prefix = schema.get("prefixItems")
        items = schema.get("items")
        if isinstance(items, list):  # the draft-4 tuple form
            prefix, items = items, schema.get("additionalItems")
        result = [self._make(s, f"{name} {i + 1}", depth + 1) for i, s in enumerate(prefix or [])][:high]
        if items is False or (items is None and prefix):
            return result
        wanted = (
            low if depth >= _MAX_DEPTH else self._rng.randint(min(max(low, 1), high), min(max(low, 3), high))
        )
        unique = bool(schema.get("uniqueItems"))
        seen = {_key(v) for v in result}
        attempts = 0
        while len(result) < wanted and attempts < wanted + 20:
            attempts += 1
            value = self._make(items if items is not None else {}, f"{name} {len(result) + 1}", depth + 1)
            if unique and _key(value) in seen:
                continue
            seen.add(_key(value))
            result.append(value)
        return result

    # -- scalars ---------------------------------------------------------------------------

    def _string(self, schema: Schema, name: str) -> str:
        fmt = schema.get("format")
        text = _FORMATS.get(fmt, "") if isinstance(fmt, str) else ""
        if not text:
            text = f"{self._label} {name}"
        pattern = schema.get("pattern")
        if isinstance(pattern, str):
            text = _matching(pattern, text)
        low = _int(schema.get("minLength"), 0)
        high = _int(schema.get("maxLength"), max(low, len(text)))
        if len(text) < low:
            text = (text + " " + "x" * low)[:low]
        return text[:high]

    def _integer(self, schema: Schema) -> int:
        low, high = _bounds(schema, integer=True)
        low_i, high_i = math.ceil(low), math.floor(high)
        step = schema.get("multipleOf")
        if isinstance(step, int) and step > 0:
            first = math.ceil(low_i / step) * step
            count = max(0, (high_i - first) // step)
            return first + step * self._rng.randint(0, count)
        return self._rng.randint(low_i, max(low_i, high_i))

    def _number(self, schema: Schema) -> float:
        low, high = _bounds(schema, integer=False)
        value = round(self._rng.uniform(low, high), 2)
        return min(max(value, low), high)


def _with_described_constraints(schema: Schema) -> Schema:
    """Constraints from a trailing "{key: value, ...}" in the description, where the schema lacks them."""
    description = schema.get("description")
    found = _DESCRIBED_BLOCK.search(description) if isinstance(description, str) else None
    if found is None:
        return schema
    extra: dict[str, Any] = {}
    for item in _DESCRIBED_SPLIT.split(found.group(1)):
        key, _, text = item.partition(": ")
        if key in _DESCRIBED and key not in schema:
            extra[key] = _described_value(key, text)
    return {**schema, **extra} if extra else schema


def _described_value(key: str, text: str) -> Any:
    if key in ("pattern", "format"):
        return text
    if key == "uniqueItems":
        return text == "True"
    try:
        number = float(text)
    except ValueError:
        return None
    return int(number) if number.is_integer() and "." not in text else number


def _matching(pattern: str, text: str) -> str:
    """`text` if it matches, else the first stock sample that does (JSON Schema patterns search)."""
    try:
        regex = re.compile(pattern)
    except re.error:
        return text
    if regex.search(text):
        return text
    return next((sample for sample in _PATTERN_SAMPLES if regex.search(sample)), text)


def _type_of(schema: Schema, depth: int) -> str:
    kind = schema.get("type")
    if isinstance(kind, list):
        kinds = [k for k in kind if isinstance(k, str)]
        usable = [k for k in kinds if k != "null"]
        if depth >= _MAX_DEPTH and "null" in kinds:
            return "null"
        return usable[0] if usable else "null"
    if isinstance(kind, str):
        return kind
    if "properties" in schema or "additionalProperties" in schema:
        return "object"
    if "items" in schema or "prefixItems" in schema:
        return "array"
    return "string"


def _bounds(schema: Schema, *, integer: bool) -> tuple[float, float]:
    """Inclusive [low, high] from minimum/maximum and both spellings of exclusive bounds."""
    nudge = 1.0 if integer else 0.01
    low = _num(schema.get("minimum"))
    high = _num(schema.get("maximum"))
    ex_low, ex_high = schema.get("exclusiveMinimum"), schema.get("exclusiveMaximum")
    if ex_low is True and low is not None:  # draft 4: a flag on minimum
        low += nudge
    elif (bound := _num(ex_low)) is not None:
        low = max(low, bound + nudge) if low is not None else bound + nudge
    if ex_high is True and high is not None:
        high -= nudge
    elif (bound := _num(ex_high)) is not None:
        high = min(high, bound - nudge) if high is not None else bound - nudge
    if low is None:
        low = 1.0 if high is None or high >= 1.0 else high - 100.0
    if high is None:
        high = max(low, 100.0) if low <= 100.0 else low + 100.0
    return low, max(low, high)


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _int(value: Any, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else default


def _key(value: Any) -> str:
    return repr(value)


def _merge(left: Mapping[str, Any], right: Mapping[str, Any]) -> dict[str, Any]:
    """allOf: properties and required lists are united, other keywords from the later part win."""
    merged = {**left, **right}
    if isinstance(left.get("properties"), Mapping) and isinstance(right.get("properties"), Mapping):
        merged["properties"] = {**left["properties"], **right["properties"]}
    if isinstance(left.get("required"), list) and isinstance(right.get("required"), list):
        merged["required"] = list(dict.fromkeys([*left["required"], *right["required"]]))
    return merged
