"""The benchmark harness's smoke mode runs end to end and reports every figure.

No timing is asserted (machines are noisy; the figures are read by people, not by CI): the
test only keeps the harness from rotting.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


def test_quick_mode_writes_every_figure_with_numeric_metrics(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "bench", "--quick", "--out", str(tmp_path)],
                          cwd=ROOT, capture_output=True, text=True, timeout=290, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:] + proc.stdout[-2000:]
    latest = tmp_path / "latest.json"
    doc = json.loads(latest.read_text())
    stamped = [p for p in tmp_path.glob("*.json") if p.name != "latest.json"]
    assert len(stamped) == 1 and json.loads(stamped[0].read_text()) == doc
    assert doc["quick"] is True
    for key in ("cpu_model", "cores_logical", "ram_bytes", "python", "os", "git_commit"):
        assert doc["machine"][key], key
    assert sorted(doc["figures"], key=int) == [str(n) for n in range(1, 13)]
    for number, figure in doc["figures"].items():
        assert figure["status"] in ("ok", "pending"), (number, figure["reason"])
        if figure["status"] == "pending":
            assert figure["reason"], number  # a pending figure says why
            continue
        assert figure["metrics"], number
        for name, value in figure["metrics"].items():
            assert isinstance(value, int | float) and not isinstance(value, bool), (number, name)
            assert not math.isnan(value), (number, name)
    # The figures that need no dashboard are always measured.
    for number in ("1", "3", "4", "7", "8", "11", "12"):
        assert doc["figures"][number]["status"] == "ok", number
    # The table names every figure.
    for number in range(1, 13):
        assert f"[{number}]" in proc.stdout


def test_tree_is_refused_for_figures_that_cannot_measure_another_tree(
        capsys: pytest.CaptureFixture[str]) -> None:
    from bench.__main__ import main

    with pytest.raises(SystemExit) as exit_:
        main(["--tree", str(ROOT), "--only", "2,9"])
    assert exit_.value.code == 2
    assert "figure 9 only" in capsys.readouterr().err
