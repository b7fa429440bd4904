"""`kar98k validate` and `kar98k simulate`: exit codes, messages, and stable output."""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

import pytest
import yaml
from kar98k.cli import main
from kar98k.spec import load_manifest

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "loadtest.yaml"


@pytest.fixture
def manifest(tmp_path: Path) -> Path:
    path = tmp_path / "loadtest.yaml"
    shutil.copy(EXAMPLE, path)
    return path


def edited_example(tmp_path: Path, name: str, old: str, new: str) -> Path:
    """A copy of the example, as `name`, with the text `old` replaced by `new`."""
    text = EXAMPLE.read_text(encoding="utf-8")
    assert old in text
    path = tmp_path / name
    path.write_text(text.replace(old, new), encoding="utf-8")
    return path


def broken_copy(tmp_path: Path) -> Path:
    data = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    data["spec"]["pattern"]["spikes"]["factor"] = 0.5
    data["spec"]["targets"][1]["weight"] = -1
    path = tmp_path / "broken.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


# ---- validate ---------------------------------------------------------------------------


def test_validate_ok(manifest: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(manifest)]) == 0
    assert capsys.readouterr().out == f"{manifest}: valid\n"


def test_validate_lists_every_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = broken_copy(tmp_path)
    assert main(["validate", str(path)]) == 1
    err = capsys.readouterr().err.splitlines()
    assert f"{path}: spec.pattern.spikes.factor: must be >= 1, got 0.5" in err
    assert f"{path}: spec.targets[1].weight: must be >= 0, got -1" in err
    assert len(err) == 2


def test_validate_missing_file_is_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(tmp_path / "nope.yaml")]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_validate_yaml_syntax_error_is_2_with_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "syntax.yaml"
    path.write_text("apiVersion: kar98k.dev/v1alpha1\nkind: LoadTest\nspec:\n  a: [1, 2\n  b: 3\n")
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and "line 5" in err


def test_validate_many_files_returns_the_worst(
    manifest: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = broken_copy(tmp_path)
    assert main(["validate", str(manifest), str(broken)]) == 1
    assert main(["validate", str(manifest), str(broken), str(tmp_path / "gone.yaml")]) == 2
    out = capsys.readouterr().out
    assert out.count(f"{manifest}: valid") == 2


def test_validate_each_loadtest_of_a_multi_document_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = EXAMPLE.read_text(encoding="utf-8")
    bad = good.replace("factor: 3.0", "factor: 0.1")
    secret = "apiVersion: v1\nkind: Secret\nmetadata: {name: token}\n"
    path = tmp_path / "multi.yaml"
    path.write_text(f"{good}\n---\n{secret}---\n{bad}", encoding="utf-8")
    assert main(["validate", str(path)]) == 1
    captured = capsys.readouterr()
    assert f"{path} (document 1): valid" in captured.out
    assert f"{path} (document 3): spec.pattern.spikes.factor" in captured.err


# ---- simulate ---------------------------------------------------------------------------


def simulate_csv(manifest: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> str:
    code = main(["simulate", str(manifest), "--duration", "1h", "--step", "1s", *extra])
    assert code == 0
    return capsys.readouterr().out


def test_simulate_csv_one_row_per_step_identical_across_runs(
    manifest: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first = simulate_csv(manifest, capsys, "--format", "csv")
    second = simulate_csv(manifest, capsys, "--format", "csv")
    assert first == second
    rows = list(csv.DictReader(io.StringIO(first)))
    assert len(rows) == 3600
    assert list(rows[0]) == [
        "elapsed_s",
        "timestamp",
        "target_tps",
        "spike_active",
        "schedule_multiplier",
        "spike_multiplier",
        "noise_multiplier",
        "ramp",
    ]
    assert rows[0]["elapsed_s"] == "0" and rows[-1]["elapsed_s"] == "3599"
    assert rows[0]["timestamp"] == "2026-01-05T01:00:00+01:00"  # default start, Berlin time
    assert float(rows[0]["target_tps"]) == 0.0  # the ramp starts at 0


def test_simulate_spikes_reach_the_configured_factor_within_the_hour(
    manifest: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = list(csv.DictReader(io.StringIO(simulate_csv(manifest, capsys, "--format", "csv"))))
    factor = load_manifest(manifest).spec.pattern.spikes.factor
    at_peak = [r for r in rows if float(r["spike_multiplier"]) == factor]
    assert at_peak and all(r["spike_active"] == "true" for r in at_peak)
    peak = max(float(r["target_tps"]) for r in rows)
    base_at_night = 200 * 0.5  # baseTPS · the night multiplier in force at 01:00 Berlin
    assert peak >= base_at_night * factor * 0.9  # noise is within ±10 %


def test_simulate_seed_flag_applies_only_without_spec_seed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = edited_example(tmp_path, "unseeded.yaml", "    seed: 42", "    # no seed")
    base = ["simulate", str(path), "--duration", "10m", "--step", "5s", "--format", "csv"]
    assert main(base) == 0
    default = capsys.readouterr().out
    assert main([*base, "--seed", "0"]) == 0
    assert capsys.readouterr().out == default  # the default seed is 0
    assert main([*base, "--seed", "7"]) == 0
    assert capsys.readouterr().out != default


def test_simulate_warns_when_seed_flag_is_ignored(
    manifest: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["simulate", str(manifest), "--duration", "1m", "--format", "csv", "--seed", "3"]
    assert main(args) == 0
    assert "--seed 3 ignored" in capsys.readouterr().err


def test_simulate_json_and_start(manifest: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["simulate", str(manifest), "--duration", "1m", "--step", "500ms", "--format", "json"]
    assert main([*args, "--start", "2026-01-07T12:00:00+01:00"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 120
    assert rows[1]["elapsed_s"] == 0.5
    assert rows[0]["timestamp"] == "2026-01-07T12:00:00.000+01:00"
    assert rows[0]["schedule_multiplier"] == 2.0  # Wednesday lunch rush (priority 2)
    assert isinstance(rows[0]["spike_active"], bool)


def test_simulate_output_file_and_table(
    manifest: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "curve.csv"
    assert main(["simulate", str(manifest), "--duration", "2m", "--output", str(out)]) == 0
    assert out.read_text(encoding="utf-8").count("\n") == 121  # format from the extension
    assert main(["simulate", str(manifest), "--duration", "1h"]) == 0
    table = capsys.readouterr().out
    assert "checkout-soak" in table and "spikes" in table and "mean" in table


def test_simulate_png(manifest: Path, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    out = tmp_path / "curve.png"
    assert main(["simulate", str(manifest), "--duration", "30m", "--output", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--duration", "soon"], "--duration"),
        (["--duration", "1h", "--step", "0s"], "--step"),
        (["--duration", "1s", "--step", "2s"], "longer than --duration"),
        (["--duration", "1h", "--start", "yesterday"], "--start"),
        (["--duration", "1h", "--seed", "-4"], "--seed"),
        (["--duration", "1h", "--format", "xml"], "--format"),
        (["--duration", "1h", "--format", "png"], "needs --output"),
    ],
)
def test_simulate_bad_arguments_exit_2(
    manifest: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    assert main(["simulate", str(manifest), *args]) == 2
    assert message in capsys.readouterr().err


def test_simulate_needs_a_duration_when_the_spec_has_none(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = edited_example(tmp_path, "endless.yaml", "  duration: 2h\n", "")
    assert main(["simulate", str(path)]) == 2
    assert "--duration is required" in capsys.readouterr().err


def test_simulate_invalid_spec_is_1_and_unreadable_is_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["simulate", str(broken_copy(tmp_path)), "--duration", "1m"]) == 1
    assert "spec.pattern.spikes.factor" in capsys.readouterr().err
    assert main(["simulate", str(tmp_path / "gone.yaml"), "--duration", "1m"]) == 2


# ---- the command table ------------------------------------------------------------------


def test_no_command_or_unknown_command_is_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert main(["frobnicate"]) == 2
    assert main(["--version"]) == 0
    assert "kar98k" in capsys.readouterr().out
