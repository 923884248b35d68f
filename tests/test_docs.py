"""The README is part of the interface: its commands, methods table and test command are checked."""

import re
from pathlib import Path

from edgekd.cli import app

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def _commands():
    import typer.main

    group = typer.main.get_command(app)
    for name, cmd in group.commands.items():
        subs = getattr(cmd, "commands", None)
        if subs:
            yield from (f"{name} {sub}" for sub in subs)
        else:
            yield name


def test_every_command_is_in_the_readme_and_has_an_example():
    import typer.main

    group = typer.main.get_command(app)
    for command in _commands():
        assert f"edgekd {command}" in README, command
        parts = command.split()
        cmd = group.commands[parts[0]]
        if len(parts) > 1:
            cmd = cmd.commands[parts[1]]
        assert "Example: edgekd" in (cmd.help or ""), f"{command} has no Example: in its help"


def test_methods_table_in_readme_is_the_registry(cli):
    code, out, err = cli("methods", "--markdown")
    assert code == 0, err
    block = re.search(r"<!-- methods-table[^>]*-->\n(.*?)\n<!-- /methods-table -->", README, re.S).group(1)
    assert block.strip() == out.strip()


def test_every_model_family_is_in_the_readme():
    from edgekd.models import families

    table = README.split("\n## Model families\n", 1)[1].split("\n## ", 1)[0]
    for family in families():
        assert f"| `{family}` |" in table, family


def test_readme_opens_with_the_two_commands_and_ci_runs_the_test_one():
    first_block = README.split("```bash\n", 1)[1].split("```", 1)[0]
    assert first_block.splitlines()[0].startswith("make demo") and "make test" in first_block
    assert "edgekd distill --chain 3" in (ROOT / "Makefile").read_text()
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_contributing_names_the_fast_tests_and_ci_lints_before_testing():
    contributing = README.split("\n## Contributing\n", 1)[1]
    assert 'pytest -m "not slow"' in contributing and "make lint" in contributing
    ci = (ROOT / ".ci" / "run").read_text()
    assert ci.index("make lint") < ci.index("make test")
