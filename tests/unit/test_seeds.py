"""Seeds on the command line, and which k the joint reference is trained at."""

import pytest
from typer.testing import CliRunner

from lifelong.cli import app
from lifelong.config import ConfigError, ReferencesSpec, parse_seeds


@pytest.mark.parametrize("text, seeds", [("0-4", [0, 1, 2, 3, 4]), ("0,2,5", [0, 2, 5]), ("7", [7]),
                                         ("0-2, 7", [0, 1, 2, 7]), ("3,1-3", [3, 1, 2])])
def test_parse_seeds(text, seeds):
    assert parse_seeds(text) == seeds


@pytest.mark.parametrize("text", ["4-2", "a", "1-", "-1", ""])
def test_bad_seeds_say_how_to_write_them(text):
    with pytest.raises(ConfigError, match="seeds"):
        parse_seeds(text)


def test_cli_rejects_bad_seeds_before_running():
    result = CliRunner().invoke(app, ["run", "configs/quickstart.yaml", "--seeds", "4-2"])
    assert result.exit_code == 2 and "increasing range" in result.output


def test_joint_at():
    assert ReferencesSpec().joint_tasks(5) == [1, 2, 3, 4, 5]  # auto: all up to 10 tasks
    assert ReferencesSpec().joint_tasks(20) == [1, 4, 8, 12, 16, 20]  # auto: spread, always T
    assert ReferencesSpec(joint_at=[3, 1, 3]).joint_tasks(5) == [1, 3]
    with pytest.raises(ValueError, match="outside"):
        ReferencesSpec(joint_at=[6]).joint_tasks(5)
