"""`kar98k validate`, `simulate` and `run` on files an unlucky or hostile user might pass:
exit 2 for unreadable input, a spec error with its path otherwise, never a traceback, bounded
time and memory (issue 12, section 2)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from kar98k.cli import main
from kar98k.spec import load
from kar98k.spec.load import MAX_ALIASES, MAX_MANIFEST_BYTES

VALID = """\
apiVersion: kar98k.dev/v1alpha1
kind: LoadTest
metadata:
  name: hostile
spec:
  duration: 1m
  pattern:
    baseTPS: 10
    timeZone: UTC
  targets:
    - name: api
      url: http://127.0.0.1:9/ping
"""


def with_line(old: str, new: str) -> str:
    assert old in VALID
    return VALID.replace(old, new)


def write(tmp_path: Path, content: str | bytes) -> Path:
    path = tmp_path / "lt.yaml"
    if isinstance(content, str):
        path.write_text(content, encoding="utf-8")
    else:
        path.write_bytes(content)
    return path


# (id, file content, expected exit code of validate, fragment of stderr)
CASES: list[tuple[str, str | bytes, int, str]] = [
    ("binary", bytes(range(256)) * 8, 2, "not UTF-8 text"),
    ("latin-1", VALID.replace("hostile", "caf\xe9").encode("latin-1"), 2, "not UTF-8 text"),
    ("utf-16", VALID.encode("utf-16"), 2, "not UTF-8 text"),
    ("nul bytes", VALID.encode() + b"\x00\x00", 2, "YAML syntax error"),
    (
        "zone is a tzdata directory",
        with_line("timeZone: UTC", "timeZone: America"),
        1,
        "spec.pattern.timeZone: unknown IANA time zone 'America'",
    ),
    (
        "zone of 300 characters",
        with_line("timeZone: UTC", "timeZone: " + "Europe/" * 42 + "Paris"),
        1,
        "spec.pattern.timeZone: must be at most 64 characters long",
    ),
    (
        "zone with dots",
        with_line("timeZone: UTC", "timeZone: ../../../etc/passwd"),
        1,
        "spec.pattern.timeZone: unknown IANA time zone",
    ),
    (
        "duration of 5,000 digits",
        with_line("duration: 1m", "duration: " + "9" * 5000),
        1,
        "spec.duration: must be a finite duration",
    ),
    (
        "negative duration of 5,000 digits",
        with_line("duration: 1m", "duration: -" + "9" * 5000),
        1,
        "spec.duration: must be >= 0",
    ),
    (
        "duration of 400 digits",
        with_line("duration: 1m", "duration: " + "9" * 400),
        1,
        "spec.duration: must be a finite duration",
    ),
    (
        "duration 1.0e+309",  # YAML 1.1 needs the dot to read a float: this is .inf
        with_line("duration: 1m", "duration: 1.0e+309"),
        1,
        "spec.duration: must be a finite duration",
    ),
    (
        "duration 1e309",  # ...and this is a string
        with_line("duration: 1m", "duration: 1e309"),
        1,
        "spec.duration: must be a duration such as",
    ),
    (
        "duration text of 5,000 digits",
        with_line("duration: 1m", "duration: " + "9" * 5000 + "s"),
        1,
        "spec.duration: must be a duration",
    ),
    (
        "baseTPS of 5,000 digits",
        with_line("baseTPS: 10", "baseTPS: " + "9" * 5000),
        1,
        "spec.pattern.baseTPS:",
    ),
    (
        "timeout .nan",
        with_line(
            "url: http://127.0.0.1:9/ping", "url: http://127.0.0.1:9/ping\n      timeout: .nan"
        ),
        1,
        "spec.targets[0].timeout: must be a finite duration",
    ),
    (
        "weight .inf",
        with_line(
            "url: http://127.0.0.1:9/ping", "url: http://127.0.0.1:9/ping\n      weight: .inf"
        ),
        1,
        "spec.targets[0].weight: input should be a finite number",
    ),
    (
        "baseTPS true",
        with_line("baseTPS: 10", "baseTPS: true"),
        1,
        "spec.pattern.baseTPS: input should be a valid number",
    ),
    (
        "replicas yes",
        VALID + "  loadPods:\n    replicas: yes\n",
        1,
        "spec.loadPods.replicas: input should be a valid integer",
    ),
    (
        "header with CR/LF",
        with_line(
            "url: http://127.0.0.1:9/ping",
            'url: http://127.0.0.1:9/ping\n      headers: {X-A: "s3cr3t\\r\\nX-Evil: 1"}',
        ),
        1,
        "spec.targets[0].headers: header 'X-A': value must not contain CR, LF or NUL",
    ),
    ("YAML nested 20,000 deep", VALID + "  extra: " + "[" * 20000 + "]" * 20000, 2, "nest"),
    (
        "alias bomb",
        VALID
        + "  loadPods:\n    affinity:\n      a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n"
        + "".join(f"      a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]\n" for i in range(1, 12)),
        2,
        f"more than {MAX_ALIASES} YAML aliases",
    ),
    ("empty", "", 2, "no YAML document found"),
]


@pytest.mark.parametrize(
    ("content", "code", "fragment"), [pytest.param(c, e, f, id=n) for n, c, e, f in CASES]
)
def test_validate_hostile_file(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    content: str | bytes,
    code: int,
    fragment: str,
) -> None:
    path = write(tmp_path, content)
    started = time.monotonic()
    assert main(["validate", str(path)]) == code
    assert time.monotonic() - started < 20
    err = capsys.readouterr().err
    assert fragment in err, err
    assert err.startswith(str(path))
    assert "s3cr3t" not in err  # a refused header value is never echoed


@pytest.mark.parametrize("command", ["simulate", "run"])
@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (bytes(range(256)), "not UTF-8 text"),
        (with_line("timeZone: UTC", "timeZone: America"), "spec.pattern.timeZone"),
        (with_line("duration: 1m", "duration: " + "9" * 5000), "spec.duration"),
        (VALID + "  extra: " + "[" * 20000 + "]" * 20000, "nest"),
    ],
)
def test_simulate_and_run_refuse_hostile_files(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    command: str,
    content: str | bytes,
    fragment: str,
) -> None:
    path = write(tmp_path, content)
    unreadable = isinstance(content, bytes) or fragment == "nest"
    # simulate: 1 for spec errors; run: 2 for any invalid input (1 is a failed verdict).
    expected = 2 if unreadable or command == "run" else 1
    assert main([command, str(path)]) == expected
    assert fragment in capsys.readouterr().err


def _fifo(tmp_path: Path) -> Path:
    path = tmp_path / "fifo.yaml"
    os.mkfifo(path)
    return path


def _directory(tmp_path: Path) -> Path:
    return tmp_path


def _huge(tmp_path: Path) -> Path:
    path = tmp_path / "huge.yaml"
    with path.open("wb") as fh:  # 31 MB, sparse: costs no disk
        fh.truncate(31 * 1024 * 1024)
    return path


@pytest.mark.parametrize(
    ("make", "fragment"),
    [
        (_fifo, "not a regular file"),
        (_directory, "not a regular file"),
        (_huge, f"larger than {MAX_MANIFEST_BYTES:,} bytes"),
        (lambda _: Path("/dev/zero"), "not a regular file"),
        (lambda p: p / "missing.yaml", "cannot read: No such file or directory"),
    ],
)
def test_special_and_huge_files_are_refused_unread(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    make: Callable[[Path], Path],
    fragment: str,
) -> None:
    path = make(tmp_path)
    started = time.monotonic()
    for command in ("validate", "simulate", "run"):
        assert main([command, str(path)]) == 2
        assert fragment in capsys.readouterr().err
    assert time.monotonic() - started < 5  # a FIFO with no writer used to block for ever


def test_a_max_size_manifest_is_refused_in_bounded_time(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = [VALID.rstrip("\n")]
    index = 0
    while sum(len(line) + 1 for line in lines) < MAX_MANIFEST_BYTES - 200:
        lines += [f"    - name: t{index}", f"      url: http://127.0.0.1:9/x{index}"]
        index += 1
    path = write(tmp_path, "\n".join(lines) + "\n")
    assert path.stat().st_size <= MAX_MANIFEST_BYTES
    started = time.monotonic()
    assert main(["validate", str(path)]) == 1
    elapsed = time.monotonic() - started
    assert f"spec.targets: at most 256 targets, got {index + 1}" in capsys.readouterr().err
    assert elapsed < 30  # ~1.5 s with libyaml; 620k targets ran past 120 s before


def test_three_mistakes_are_reported_in_one_pass(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    content = (
        VALID.replace("duration: 1m", "duration: 0s")
        .replace("timeZone: UTC", "timeZone: Mars/Olympus")
        .replace("http://127.0.0.1:9/ping", "ftp://127.0.0.1:9/ping")
        + "    - name: api\n      url: http://127.0.0.1:9/two\n      method: FETCH\n"
    )
    path = write(tmp_path, content)
    assert main(["validate", str(path)]) == 1
    lines = capsys.readouterr().err.splitlines()
    assert sorted(line.split(": ")[1] for line in lines) == [
        "spec.duration",
        "spec.pattern.timeZone",
        "spec.targets",
        "spec.targets[0].url",
        "spec.targets[1].method",
    ], lines


@pytest.mark.parametrize("command", ["validate", "simulate", "run"])
def test_no_traceback_from_the_real_process(tmp_path: Path, command: str) -> None:
    """End to end through the console script: a FIFO and binary input, stderr checked."""
    for path in (_fifo(tmp_path), write(tmp_path, VALID.encode("utf-16"))):
        proc = subprocess.run(
            [sys.executable, "-m", "kar98k.cli", command, str(path)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert proc.returncode == 2, proc.stderr
        assert "Traceback" not in proc.stderr
        assert proc.stderr.startswith(str(path)), proc.stderr


def test_a_header_value_is_never_echoed_in_spec_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An unquoted API key reads as a number: the error says what is wrong, not the value."""
    content = with_line(
        "url: http://127.0.0.1:9/ping",
        "url: http://127.0.0.1:9/ping\n      headers: {X-Key: 987654321, X-List: [s3cr3t]}",
    )
    assert main(["validate", str(write(tmp_path, content))]) == 1
    err = capsys.readouterr().err
    assert "spec.targets[0].headers.X-Key: input should be a valid string" in err
    assert "spec.targets[0].headers.X-List: input should be a valid string" in err
    assert "987654321" not in err
    assert "s3cr3t" not in err


FALLBACK_CASES = ("YAML nested 20,000 deep", "alias bomb", "duration of 5,000 digits", "utf-16")


@pytest.mark.parametrize(
    "case", [pytest.param((c, e, f), id=n) for n, c, e, f in CASES if n in FALLBACK_CASES]
)
def test_the_pure_python_yaml_fallback_holds_too(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    case: tuple[str | bytes, int, str],
) -> None:
    """Without libyaml, PyYAML's own parser: deep nesting ends in a caught RecursionError."""
    content, code, fragment = case
    monkeypatch.setattr(load, "_Loader", load.make_loader(yaml.SafeLoader))
    assert main(["validate", str(write(tmp_path, content))]) == code
    assert fragment in capsys.readouterr().err
