"""Settings a user might write that the shell must take as data: quotes, $(), backticks, spaces, and
%-escapes in the DSN. Any of them run as code creates the canary file."""
from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

import pytest

# Our range for extra stacks is 15000-15999.
PG_PORT, S3_PORT = 15433, 15901


@pytest.fixture
def canary(tmp_path):
    """A file that only a value run as code would create; its path comes from the environment, since
    an S3 access key may not hold a slash."""
    path = tmp_path / "CANARY"
    yield path
    assert not path.exists(), "a setting ran as shell code"


def hostile(canary: Path) -> tuple[dict[str, str], dict[str, str]]:
    """The settings as a user writes them (CANARY_FILE in the environment too), and what each shell
    variable must hold."""
    run = '$(touch "$CANARY_FILE")'
    user, password, database = "us@er", f"p@ss' {run} \"q\" `touch \"$CANARY_FILE\"`", f"db \"x\" {run}"
    settings = {
        "CANARY_FILE": str(canary),
        "DATABASE_URL": f"postgresql://{quote(user, safe='')}:{quote(password, safe='')}@localhost:{PG_PORT}/"
                        f"{quote(database, safe='')}",
        "S3_ENDPOINT": f"localhost:{S3_PORT}",
        "S3_ACCESS_KEY": f"ac'c{run}",
        "S3_SECRET_KEY": f"x'; touch \"$CANARY_FILE\"; ' {run} \"q\" \\ end",
    }
    expected = {"PG_USER": user, "PG_PASSWORD": password, "PG_DATABASE": database, "PG_PORT": str(PG_PORT),
                "S3_PORT": str(S3_PORT), "S3_ACCESS_KEY": settings["S3_ACCESS_KEY"],
                "S3_SECRET_KEY": settings["S3_SECRET_KEY"], "DATABASE_URL": settings["DATABASE_URL"]}
    assert "%40" in settings["DATABASE_URL"]
    return settings, expected
