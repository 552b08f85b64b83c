"""Locate the server binaries the integration tests need, failing loudly when missing."""

import os
import shutil
from pathlib import Path

import pytest

ALLOW_MISSING_ENV = "MTAREP_ALLOW_MISSING_SERVERS"
_EXTRA_DIRS = ("/usr/sbin", "/usr/bin", "/sbin", "/usr/local/sbin", "/usr/local/bin")


def find_binary(name: str) -> str | None:
    """Absolute path of ``name`` from PATH or the usual sbin/bin directories, or None."""
    found = shutil.which(name)
    if found is not None:
        return str(Path(found).absolute())
    for directory in _EXTRA_DIRS:
        candidate = Path(directory) / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def require_binary(name: str, package: str) -> str:
    """Return the absolute path of ``name``.

    When it is missing the test fails (``apt-get install <package>`` in the message);
    only with ``MTAREP_ALLOW_MISSING_SERVERS=1`` in the environment is it skipped instead.
    """
    path = find_binary(name)
    if path is not None:
        return path
    message = f"{name} not found: apt-get install {package}"
    if os.environ.get(ALLOW_MISSING_ENV) == "1":
        pytest.skip(message)
    pytest.fail(message)
