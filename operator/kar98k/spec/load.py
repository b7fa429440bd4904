"""Read and validate LoadTest manifests from YAML files or parsed documents."""

from __future__ import annotations

import math
import os
import stat
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from .errors import FieldError, SpecError, field_errors
from .loadtestschedule import SCHEDULE_KIND, LoadTestSchedule
from .model import LoadTest, LoadTestSpec

MAX_MANIFEST_BYTES = 1024 * 1024
"""A manifest larger than this is refused unread: 256 targets fit in a fraction of it."""
MAX_ALIASES = 100
"""YAML alias references per file; more is refused (a few nested aliases expand to billions)."""

M = TypeVar("M", bound=BaseModel)


class ManifestReadError(Exception):
    """The file could not be read or is not YAML (exit code 2 territory, not a spec error)."""


def make_loader(base: Any) -> Any:
    """A safe loader on `base` (libyaml's or PyYAML's) that counts aliases and turns integers
    too long to convert into infinity, which the model then refuses with a path, like 1e309
    (the YAML float overflowing to .inf)."""

    class Loader(base):  # type: ignore[misc]
        def __init__(self, stream: str) -> None:
            super().__init__(stream)
            self.aliases = 0

        def construct_object(self, node: Any, deep: bool = False) -> Any:
            if node in self.constructed_objects:  # a node met again: an alias
                self.aliases += 1
                if self.aliases > MAX_ALIASES:
                    raise ManifestReadError(f"more than {MAX_ALIASES} YAML aliases")
            return super().construct_object(node, deep)

        def construct_yaml_int(self, node: Any) -> Any:
            try:
                return super().construct_yaml_int(node)
            except ValueError:  # beyond Python's 4,300-digit limit for int(str)
                text = str(self.construct_scalar(node)).strip()
                return -math.inf if text.startswith("-") else math.inf

    Loader.add_constructor("tag:yaml.org,2002:int", Loader.construct_yaml_int)
    return Loader


# libyaml's parser is ~3x faster than PyYAML's (a 1 MiB file: ~1.3 s instead of ~4 s) and
# refuses nesting beyond 1,000 levels itself; the pure-Python one is the fallback (its
# RecursionError on deep nesting is caught below).
_Loader: Any = make_loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader))


def _parse(model: type[M], kind: str, data: Any) -> M:
    if not isinstance(data, dict):
        raise SpecError([FieldError("", f"a {kind} must be a mapping, got {type(data).__name__}")])
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise SpecError(field_errors(exc, model)) from None


def parse_manifest(data: Any) -> LoadTest:
    """Validate one parsed LoadTest document; raise SpecError listing every problem."""
    return _parse(LoadTest, "LoadTest", data)


def parse_schedule(data: Any) -> LoadTestSchedule:
    """Validate one LoadTestSchedule document; raise SpecError listing every problem."""
    return _parse(LoadTestSchedule, SCHEDULE_KIND, data)


def load_schedule(path: str | Path) -> LoadTestSchedule:
    """The first LoadTestSchedule of a file (the first document if none says so)."""
    docs = read_documents(path)
    for doc in docs:
        if isinstance(doc, dict) and doc.get("kind") == SCHEDULE_KIND:
            return parse_schedule(doc)
    return parse_schedule(docs[0])


def parse_spec(data: Any) -> LoadTestSpec:
    """Validate a bare `spec` mapping (as the operator receives it); paths start at `spec`."""
    try:
        return LoadTestSpec.model_validate(data)
    except ValidationError as exc:
        raise SpecError(field_errors(exc, LoadTestSpec, prefix=("spec",))) from None


def read_text(path: str | Path) -> str:
    """The file as UTF-8 text: a regular file of at most MAX_MANIFEST_BYTES.

    Opened non-blocking and checked before reading, so a FIFO, a device or a directory is
    refused at once instead of blocking or reading for ever.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise ManifestReadError(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ManifestReadError(f"{path}: not a regular file")
        if info.st_size > MAX_MANIFEST_BYTES:
            raise ManifestReadError(
                f"{path}: larger than {MAX_MANIFEST_BYTES:,} bytes ({info.st_size:,})"
            )
        with os.fdopen(os.dup(fd), "rb") as fh:
            data = fh.read(MAX_MANIFEST_BYTES + 1)
    except OSError as exc:
        raise ManifestReadError(f"{path}: cannot read: {exc.strerror or exc}") from None
    finally:
        os.close(fd)
    if len(data) > MAX_MANIFEST_BYTES:  # grew while we looked
        raise ManifestReadError(f"{path}: larger than {MAX_MANIFEST_BYTES:,} bytes")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ManifestReadError(
            f"{path}: not UTF-8 text (byte {exc.start}: {data[exc.start : exc.start + 1]!r})"
        ) from None


def read_documents(path: str | Path) -> list[Any]:
    """YAML documents of a file; ManifestReadError names the line of a syntax error."""
    text = read_text(path)
    try:
        docs = [d for d in yaml.load_all(text, Loader=_Loader) if d is not None]
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ManifestReadError(f"{path}:{where}: YAML syntax error: {problem}") from None
    except RecursionError:
        raise ManifestReadError(f"{path}: YAML nested too deeply") from None
    except ManifestReadError as exc:
        raise ManifestReadError(f"{path}: {exc}") from None
    if not docs:
        raise ManifestReadError(f"{path}: no YAML document found")
    return docs


def load_manifest(path: str | Path) -> LoadTest:
    """The single LoadTest in a file (the first LoadTest document if there are several)."""
    docs = read_documents(path)
    for doc in docs:
        if isinstance(doc, dict) and doc.get("kind") == "LoadTest":
            return parse_manifest(doc)
    return parse_manifest(docs[0])
