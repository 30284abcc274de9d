"""What the CLI tests share."""

import pytest

from semcom_jax.cli.main import main as cli


@pytest.fixture
def cli_error(capsys):
    """``cli_error(argv) -> str``: runs the CLI, which must exit 2 with one line on stderr and
    no traceback; returns that line."""

    def run(argv) -> str:
        assert cli(argv) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("semcom-jax: error:") and "\n" not in err and "Traceback" not in err
        return err

    return run
