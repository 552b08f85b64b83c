"""The systemd units in contrib/systemd pass ``systemd-analyze verify`` (Debian's systemd)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.harness.binaries import require_binary

pytestmark = pytest.mark.integration

UNITS = Path(__file__).parent.parent.parent / "contrib" / "systemd"


@pytest.mark.parametrize("unit", ["mtarep-exporter.service", "mtarep-ackservice.service"])
def test_the_unit_verifies(unit: str, tmp_path: Path) -> None:
    analyze = require_binary("systemd-analyze", "systemd")
    text = (UNITS / unit).read_text()
    assert "/opt/mtarep/venv/bin/" in text
    # The commands must exist to verify: point them at this checkout's virtualenv.
    copy = tmp_path / unit
    copy.write_text(text.replace("/opt/mtarep/venv/bin/", f"{Path(sys.executable).parent}/"))
    result = subprocess.run(
        [analyze, "verify", "--man=no", str(copy)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (result.returncode, result.stdout + result.stderr) == (0, "")
