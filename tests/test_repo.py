"""Checks on the repository's entry points that the test suite itself does not go through.

`make test` is what CI ends with, but CI enters through `.ci/run`; a shell syntax error there
fails CI before a single test runs, so it is checked here.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
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


def test_plain_streamlit_run_serves_loopback_only_without_watching_files():
    """`streamlit run app.py` from the repository root reads .streamlit/config.toml: it must
    bind 127.0.0.1 (not every interface), watch no files, send no usage statistics and show
    viewers no developer toolbar ("Deploy", issue 18)."""
    code = ("from streamlit import config as c; c.get_config_options(force_reparse=True); "
            "print(c.get_option('server.address'), c.get_option('server.fileWatcherType'), "
            "c.get_option('browser.gatherUsageStats'), c.get_option('server.headless'), "
            "c.get_option('client.toolbarMode'))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["127.0.0.1", "none", "False", "True", "viewer"]


def test_xai_core_serve_passes_what_config_toml_sets():
    """`xai-core serve` runs Streamlit outside the repository root: its command line carries the
    same settings as .streamlit/config.toml (issue 18: no Deploy button for viewers)."""
    import tomllib

    from xai_core.dashboard_server import streamlit_command

    cmd = streamlit_command(ROOT, port=8501, host="127.0.0.1")
    opts = cmd[cmd.index("run") + 2: cmd.index("--")]
    flags = dict(zip(opts[::2], opts[1::2]))
    conf = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    for section, values in conf.items():
        for key, value in values.items():
            want = str(value).lower() if isinstance(value, bool) else str(value)
            assert flags.get(f"--{section}.{key}") == want, (section, key, flags)


def _module_imports(path: Path, module: str, modules: set[str]) -> set[str]:
    """The ``xai_core`` modules ``path`` imports anywhere (top level or inside functions: a
    lazy import still ties the two modules together)."""
    import ast

    package = path.name == "__init__.py"
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = module.split(".") if package else module.split(".")[:-1]
            base = base[:len(base) - node.level + 1] if node.level else []
            prefix = ".".join(base + ([node.module] if node.module else []))
            names = [prefix] + [f"{prefix}.{a.name}" for a in node.names]
        else:
            continue
        out.update(n for n in names if n in modules and n != module)
    return out


def test_xai_core_has_no_import_cycles():
    files = {}
    for f in (ROOT / "xai_core").rglob("*.py"):
        parts = list(f.relative_to(ROOT).with_suffix("").parts)
        files[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = f
    graph = {m: _module_imports(f, m, set(files)) for m, f in files.items()}
    cycles = []
    for start in graph:  # a path back to the start through the graph (the graph is small)
        seen, stack = set(), [(start, [start])]
        while stack:
            node, path = stack.pop()
            for nxt in graph[node]:
                if nxt == start:
                    cycles.append(" -> ".join(path + [start]))
                elif nxt not in seen:
                    seen.add(nxt)
                    stack.append((nxt, path + [nxt]))
    assert not cycles, "import cycles in xai_core:\n" + "\n".join(sorted(set(cycles)))
