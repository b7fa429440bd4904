"""Reading manifests for commands: every LoadTest in a file, errors as `FILE: path: message`."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any, TextIO

from ..spec import (
    KIND,
    LoadTest,
    ManifestReadError,
    SpecError,
    load_manifest,
    parse_manifest,
    read_documents,
)
from . import EXIT_USAGE


@dataclass(frozen=True)
class Checked:
    """One LoadTest document of a file: the parsed model or its errors."""

    label: str  # "FILE" or "FILE (document N)" when the file holds several LoadTests
    loadtest: LoadTest | None
    error: SpecError | None


def check_file(path: str) -> list[Checked]:
    """Validate each LoadTest document (or the first document when none says kind: LoadTest).

    Raises ManifestReadError when the file cannot be read or is not YAML.
    """
    docs = read_documents(path)
    picked: list[tuple[int, Any]] = [
        (index, doc)
        for index, doc in enumerate(docs, start=1)
        if isinstance(doc, dict) and doc.get("kind") == KIND
    ] or [(1, docs[0])]
    out: list[Checked] = []
    for index, doc in picked:
        label = path if len(picked) == 1 else f"{path} (document {index})"
        try:
            out.append(Checked(label, parse_manifest(doc), None))
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
