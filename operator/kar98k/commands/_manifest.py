"""Reading manifests for commands: every LoadTest in a file, errors as `FILE: path: message`."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any, TextIO

from ..spec import (
    KIND,
    SCHEDULE_KIND,
    LoadTest,
    LoadTestSchedule,
    ManifestReadError,
    SpecError,
    load_manifest,
    parse_manifest,
    parse_schedule,
    read_documents,
)
from . import EXIT_USAGE


@dataclass(frozen=True)
class Checked:
    """One LoadTest or LoadTestSchedule document of a file: the parsed model or its errors."""

    label: str  # "FILE" or "FILE (document N)" when the file holds several documents
    loadtest: LoadTest | LoadTestSchedule | None
    error: SpecError | None


def check_file(path: str) -> list[Checked]:
    """Validate each LoadTest and LoadTestSchedule document (or the first document when none
    says either kind; it is read as a LoadTest).

    Raises ManifestReadError when the file cannot be read or is not YAML.
    """
    docs = read_documents(path)
    picked: list[tuple[int, Any]] = [
        (index, doc)
        for index, doc in enumerate(docs, start=1)
        if isinstance(doc, dict) and doc.get("kind") in (KIND, SCHEDULE_KIND)
    ] or [(1, docs[0])]
    out: list[Checked] = []
    for index, doc in picked:
        label = path if len(picked) == 1 else f"{path} (document {index})"
        try:
            is_schedule = isinstance(doc, dict) and doc.get("kind") == SCHEDULE_KIND
            model = parse_schedule(doc) if is_schedule else parse_manifest(doc)
            out.append(Checked(label, model, None))
        except SpecError as exc:
            out.append(Checked(label, None, exc))
    return out


def print_errors(label: str, error: SpecError, stream: TextIO) -> None:
    for field_error in error.errors:
        print(f"{label}: {field_error}", file=stream)


def load_or_exit_code(path: str, *, invalid: int) -> LoadTest | int:
    """The file's LoadTest (see load_manifest), or, after printing why not to stderr, the exit
    code to return: EXIT_USAGE when the file is unreadable or not YAML, `invalid` when the
    LoadTest has errors (each printed as `FILE: path: message`)."""
    try:
        return load_manifest(path)
    except ManifestReadError as exc:
        print(exc, file=sys.stderr)
        return EXIT_USAGE
    except SpecError as exc:
        print_errors(path, exc, sys.stderr)
        return invalid
