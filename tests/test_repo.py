"""Checks on the repository's entry points that the test suite itself does not go through.

`make test` is what CI ends with, but CI enters through `.ci/run`; a shell syntax error there
fails CI before a single test runs, so it is checked here.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash not installed")
def test_ci_entry_point_is_valid_bash_and_ends_with_make_test():
    script = ROOT / ".ci" / "run"
    assert os.access(script, os.X_OK), ".ci/run must be executable"
    check = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    commands = [
        line.strip()
        for line in script.read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    assert commands[0] == "set -euo pipefail"
    assert commands[-1] == "make test"


def test_makefile_has_the_two_commands():
    makefile = (ROOT / "Makefile").read_text()
    for target in ("setup:", "demo:", "test:"):
        assert any(line.startswith(target) for line in makefile.splitlines()), target
