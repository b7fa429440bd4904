"""Turn pydantic's errors into `path: message` lines users can act on, all at once."""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from kar98k_loadpod.targets import DNS1123_LABEL, GRPC_METHOD
from pydantic import BaseModel, ValidationError

# Regular expressions users should not have to read: what they mean, in words.
_PATTERN_WORDS = {
    DNS1123_LABEL: (
        "must be a DNS-1123 label (lowercase letters, digits and '-', "
        "starting and ending with a letter or digit)"
    ),
    GRPC_METHOD: "must be a full gRPC method name like '/package.Service/Method'",
    "^/": "must start with '/'",
}
_LEADING_FIELD = re.compile(r"^([A-Za-z][A-Za-z0-9]*): (.*)$", re.DOTALL)


@dataclass(frozen=True)
class FieldError:
    """One problem: where (`spec.targets[0].url`) and what was expected."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class SpecError(ValueError):
    """Every problem found in a manifest."""

    def __init__(self, errors: Sequence[FieldError]) -> None:
        self.errors = list(errors)
        super().__init__("\n".join(str(e) for e in self.errors))


def format_path(loc: Sequence[str | int]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _num(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _count(number: Any, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


def _aliases_at(model: type[BaseModel], loc: Sequence[str | int]) -> list[str]:
    """The field aliases accepted at `loc` (for did-you-mean), walking nested models."""
    current: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return []
        field = next(
            (f for n, f in current.model_fields.items() if part in (f.alias or n, n)),
            None,
        )
        if field is None:
            return []
        current = _model_in(field.annotation)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return [f.alias or n for n, f in current.model_fields.items()]
    return []


def _model_in(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def _message(err: dict[str, Any], model: type[BaseModel]) -> tuple[list[str | int], str]:
    loc: list[str | int] = list(err["loc"])
    kind = err["type"]
    ctx = err.get("ctx", {})
    got = err.get("input")
    if kind == "missing":
        return loc, "required field is missing"
    if kind == "extra_forbidden":
        known = _aliases_at(model, loc[:-1])
        close = difflib.get_close_matches(str(loc[-1]), known, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        return loc, f"unknown field{hint}"
    bounds = {
        "greater_than_equal": (">=", "ge"),
        "greater_than": (">", "gt"),
        "less_than_equal": ("<=", "le"),
        "less_than": ("<", "lt"),
    }
    if kind in bounds:
        op, key = bounds[kind]
        return loc, f"must be {op} {_num(ctx.get(key))}, got {_num(got)}"
    if kind == "string_pattern_mismatch":
        pattern = str(ctx.get("pattern"))
        words = _PATTERN_WORDS.get(pattern, f"must match {pattern}")
        return loc, f"{words}, got {_short(got)}"
    if kind in ("literal_error", "enum"):
        return loc, f"must be one of {ctx.get('expected')}, got {_short(got)}"
    if kind in ("too_short", "too_long", "string_too_short", "string_too_long"):
        least = kind.endswith("too_short")
        limit = ctx.get("min_length" if least else "max_length")
        bound = "at least" if least else "at most"
        if isinstance(got, str):
            return loc, f"must be {bound} {_count(limit, 'character')} long, got {len(got)}"
        return loc, f"must have {bound} {_count(limit, 'item')}, got {ctx.get('actual_length')}"
    if kind in ("value_error", "assertion_error"):
        text = str(ctx.get("error", err["msg"]))
        match = _LEADING_FIELD.match(text)
        # Validators on a whole model name the sub-field they mean with a "field: " prefix.
        if match and match.group(1) in _aliases_at(model, loc):
            return [*loc, match.group(1)], match.group(2)
        return loc, text
    msg = err["msg"]
    return loc, f"{msg[0].lower()}{msg[1:]}, got {_short(got)}"


def field_errors(
    exc: ValidationError, model: type[BaseModel], prefix: Sequence[str | int] = ()
) -> list[FieldError]:
    """All of pydantic's errors as FieldErrors, de-duplicated, in document order."""
    out: list[FieldError] = []
    seen: set[str] = set()
    for err in exc.errors(include_url=False):
        loc, message = _message(dict(err), model)
        if "headers" in err["loc"]:
            # Header values may be secrets (an unquoted API key reads as a number): say what is
            # wrong, never what was given.
            message = message.split(", got ", 1)[0]
        # Drop pydantic's union/type tags (e.g. 'int', 'str', 'function-after[...]').
        clean = [p for p in loc if isinstance(p, int) or not _is_tag(p)]
        fe = FieldError(format_path([*prefix, *clean]), message)
        if str(fe) not in seen:
            seen.add(str(fe))
            out.append(fe)
    return out


def _is_tag(part: str) -> bool:
    return part in ("int", "str", "float", "bool") or "[" in part
