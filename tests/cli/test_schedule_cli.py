"""`kar98k schedule next` and `kar98k validate` on LoadTestSchedule files."""

from __future__ import annotations

from pathlib import Path

import pytest
from kar98k.cli import main

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "loadtestschedule.yaml"


def edited(tmp_path: Path, old: str, new: str) -> Path:
    text = EXAMPLE.read_text(encoding="utf-8")
    assert old in text
    path = tmp_path / "edited.yaml"
    path.write_text(text.replace(old, new), encoding="utf-8")
    return path


def test_next_prints_weekday_slots_in_the_schedules_zone(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Friday 2026-12-04 08:00 KST: Friday 09:00, then Monday and Tuesday (weekend skipped).
    code = main(["schedule", "next", str(EXAMPLE), "--count", "3", "--from", "2026-12-03T23:00Z"])
    out = capsys.readouterr().out.splitlines()
    assert code == 0
    assert out[0] == "# checkout-weekday: '0 9 * * 1-5' in Asia/Seoul"
    assert out[1:] == [
        "2026-12-04T09:00:00+09:00  Fri  (2026-12-04T00:00Z)",
        "2026-12-07T09:00:00+09:00  Mon  (2026-12-07T00:00Z)",
        "2026-12-08T09:00:00+09:00  Tue  (2026-12-08T00:00Z)",
    ]


def test_next_across_a_dst_gap(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = edited(tmp_path, 'schedule: "0 9 * * 1-5"', 'schedule: "30 2 * * *"')
    zone = "timeZone: Asia/Seoul\n  concurrency"
    path.write_text(path.read_text().replace(zone, zone.replace("Asia/Seoul", "America/New_York")))
    assert main(["schedule", "next", str(path), "--count", "2", "--from", "2026-03-07T12:00"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[1].startswith("2026-03-08T03:00:00-04:00")  # 02:30 does not exist that day
    assert out[2].startswith("2026-03-09T02:30:00-04:00")


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--from", "yesterday"], 2, "not an ISO 8601 time"),
        (["--count", "0"], 2, "--count"),
    ],
)
def test_next_refuses_bad_options(
    args: list[str], code: int, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["schedule", "next", str(EXAMPLE), *args]) == code
    assert message in capsys.readouterr().err


def test_next_on_a_missing_or_invalid_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["schedule", "next", str(tmp_path / "nope.yaml")]) == 2
    bad = edited(tmp_path, 'schedule: "0 9 * * 1-5"', 'schedule: "0 9 * * mon-fri-sun"')
    assert main(["schedule", "next", str(bad)]) == 1
    assert "spec.schedule" in capsys.readouterr().err


def test_validate_accepts_schedules_and_names_their_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["validate", str(EXAMPLE)]) == 0
    assert f"{EXAMPLE}: valid" in capsys.readouterr().out
    bad = edited(
        tmp_path, "timeZone: Asia/Seoul\n  concurrency", "timeZone: Asia/Sejong\n  concurrency"
    )
    assert main(["validate", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "spec.timeZone" in err and "Asia/Sejong" in err
    # The template is validated as a LoadTest spec, with its paths.
    worse = edited(tmp_path, "baseTPS: 300", "baseTPS: 3000")
    assert main(["validate", str(worse)]) == 1
    assert "spec.template.spec.pattern.maxTPS" in capsys.readouterr().err
