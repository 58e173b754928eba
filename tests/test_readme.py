"""README's test command is the one CI runs, and README documents what exists."""

import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[1]


def readme():
    return (ROOT / "README.md").read_text()


def ci_test_command():
    lines = [ln.strip() for ln in (ROOT / ".ci" / "run").read_text().splitlines()]
    return [ln for ln in lines if ln and not ln.startswith("#")][-1]


def test_ci_runs_the_readme_test_command():
    command = ci_test_command()
    assert "pytest" in command
    code_lines = [ln.split("#")[0].strip() for ln in re.findall(r"^.*$", readme(), re.M)]
    assert command in code_lines


def test_readme_setup_runs_the_main_job():
    assert "pip install . && python -m hoi_fast.grid" in readme()
