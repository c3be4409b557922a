"""What every `shoal` start pays for: the HTTP fake server loads only for `shoal fake-server`."""

from __future__ import annotations

import subprocess
import sys


def test_the_cli_starts_without_loading_the_http_server() -> None:
    probe = (
        "import sys, shoal.cli; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'uvicorn', 'starlette'}))"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_the_fake_server_is_still_there_for_those_who_ask() -> None:
    from shoal import fake

    assert fake.FakeServer.__module__ == "shoal.fake._server" and callable(fake.serve)
