"""scripts/soak, a long conversation at the pipeline's own pace, on a few turns: it runs, and
every question it speaks is heard and answered. Its memory figures are for runs by hand."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "soak"


def test_a_short_soak_answers_every_question(tmp_path):
    done = subprocess.run([sys.executable, str(SCRIPT), "--turns", "3"], capture_output=True, text=True,
                          timeout=300, env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "XDG_DATA_HOME": str(tmp_path)})
    assert done.returncode == 0, done.stderr[-2000:]
    turns = re.search(r"turns\s+(\d+) asked, (\d+) detected, (\d+) answered, (\d+) dropped, (\d+) failed", done.stdout)
    assert turns and turns.groups() == ("3", "3", "3", "0", "0"), done.stdout
    assert re.search(r"peak\s+RSS \d+ MB", done.stdout) and done.stdout.rstrip().endswith("soak: ok"), done.stdout
