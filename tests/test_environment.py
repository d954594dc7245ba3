"""Set-up files agree: environment.yml and pyproject.toml list the same dependencies; the README's
commands, flags and stated durations are those of tasks.py; CI runs the README's test command."""

from __future__ import annotations

import importlib.util
import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def _tasks():
    """tasks.py as a module (it runs nothing on import)."""
    spec = importlib.util.spec_from_file_location("dlcourse_tasks", ROOT / "tasks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _norm(req: str) -> tuple[str, str]:
    m = re.match(r"\s*([A-Za-z0-9_.\-]+)(\[[^\]]*\])?\s*(.*)", req)
    assert m, req
    return m.group(1).lower().replace("_", "-"), m.group(3).replace(" ", "")


def test_conda_environment_matches_pyproject():
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pip_reqs = list(meta["dependencies"])
    for extra in ("course", "dev"):
        pip_reqs += [r for r in meta["optional-dependencies"][extra] if not r.startswith("dlcourse")]
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    conda = [d for d in env["dependencies"] if isinstance(d, str) and not d.startswith(("python", "pip"))]
    assert dict(map(_norm, conda)) == dict(map(_norm, pip_reqs))


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    commands = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()
                if line.strip() and not line.lstrip().startswith("#")]
    assert "python3 tasks.py test" in readme
    assert "python3 tasks.py lab" in readme
    assert commands[-1] == "python3 tasks.py test", commands  # CI ends by running exactly the README's command


def test_every_readme_command_and_flag_exists_in_tasks_py():
    tasks = _tasks()
    readme = (ROOT / "README.md").read_text()
    used = re.findall(r"python3 tasks\.py (\w+)((?: --[\w-]+)*)", readme)
    assert {"lab", "test", "fresh"} <= {name for name, _ in used}
    for name, flags in used:
        assert name in tasks.TASKS, f"README uses `python3 tasks.py {name}`, which tasks.py does not have"
        for flag in flags.split():
            assert f'"{flag}"' in (ROOT / "tasks.py").read_text(), f"tasks.py {name} has no {flag}"


def test_readme_states_the_durations_that_tasks_py_prints():
    tasks = _tasks()
    lines = (ROOT / "README.md").read_text().splitlines()
    assert set(tasks.DURATIONS) >= {"lab", "test --fast", "test"}
    for command, duration in tasks.DURATIONS.items():
        assert any(f"`python3 tasks.py {command}`" in line and duration in line for line in lines), (
            f"README has no line with `python3 tasks.py {command}` and its duration {duration!r}")
        assert f"python3 tasks.py {command}: {duration}" in tasks.usage()


def test_fast_flag_deselects_the_slow_tests_and_the_full_suite_runs_them(monkeypatch):
    tasks = _tasks()
    calls: list[list[str]] = []
    monkeypatch.setattr(tasks, "ensure_venv", lambda extra: None)
    monkeypatch.setattr(tasks, "_run", lambda *cmd, env=None: calls.append([str(c) for c in cmd]) or 0)
    assert tasks.test(["--fast", "-k", "conv"]) == 0
    lint, pytest_cmd = calls
    assert lint[1:4] == ["-m", "ruff", "check"]
    assert pytest_cmd[1:3] == ["-m", "pytest"] and "--fast" not in pytest_cmd
    assert pytest_cmd[pytest_cmd.index("not slow") - 1] == "-m" and pytest_cmd[-2:] == ["-k", "conv"]
    calls.clear()
    assert tasks.test([]) == 0
    assert "not slow" not in calls[-1] and calls[-1][1:3] == ["-m", "pytest"]
    markers = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]["markers"]
    assert any(m.startswith("slow:") for m in markers)


def test_license_is_an_spdx_expression_with_a_setuptools_that_reads_it():
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert meta["project"]["license"] == "MIT"  # a table here is deprecated by setuptools >= 77
    assert any(re.fullmatch(r"setuptools>=(7[7-9]|[89]\d)(\.\d+)*", r) for r in meta["build-system"]["requires"])
