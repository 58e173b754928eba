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


def test_readme_configuration_file_is_valid():
    """The TOML example of "Configuration file" loads into a GridConfig (every table, every key)."""
    import tomllib

    from hoi_fast.config import GridConfig, settings_from_toml

    text = readme()
    block = text[text.index("### Configuration file"):]
    start = block.index("```toml") + len("```toml")
    data = tomllib.loads(block[start:block.index("```", start)])
    assert {"grid", "gmm", "ngram", "gaussian", "categorical", "regression", "sweep"} <= set(data)
    config = GridConfig(**settings_from_toml(data))
    assert config.experiment_config("gmm").truth()[0].tolist() == [0.97, 0.03]


def test_readme_names_every_builtin_experiment_and_reproduction():
    from hoi_fast.experiments import BUILTIN
    from hoi_fast.reproductions import REPRODUCTIONS

    text = readme()
    assert all(f"`{name}`" in text for name in BUILTIN)
    assert all(f"`{name}`" in text for name in REPRODUCTIONS)
