"""``mtarep-ackservice``: serve issue detail and acknowledgements from the shared store.

It refuses to start (exit 1, the reason on stderr) when it could not tell who is
logged in: no ``http_auth_file`` and no explicit ``ackservice.anonymous: true``, or
an ``http_auth_file`` that cannot be read.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Sequence

from ackservice.app import AuthNotConfigured, create_app
from ackservice.auth import PasswordFileError
from exporter.cli import argument_parser, load_or_report
from exporter.config import LoadedConfig
from exporter.web import run_service


def login_problem(loaded: LoadedConfig) -> str | None:
    """Why the service cannot know who is logged in, or None."""
    config = loaded.config
    if config.http_auth_file is None:
        if config.ackservice.anonymous:
            return None
        return (
            f"{loaded.path}: http_auth_file: not set. The ackservice needs logins: set "
            "http_auth_file to an htpasswd file (user:{SHA}... or bcrypt $2y$ lines), or "
            "set ackservice.anonymous: true to serve without logins."
        )
    try:
        with config.http_auth_file.open("rb"):
            pass
    except OSError as error:
        reason = error.strerror or type(error).__name__
        return f"{loaded.path}: http_auth_file: cannot read {config.http_auth_file}: {reason}"
    return None


def main(argv: Sequence[str] | None = None) -> int:
    args = argument_parser("mtarep-ackservice", __doc__ or "").parse_args(argv)
    loaded = load_or_report(args.config)
    if loaded is None:
        return 1
    problem = login_problem(loaded)
    if problem is not None:
        print(f"error: {problem}", file=sys.stderr)
        return 1
    listen = loaded.config.ackservice.listen
    try:
        return asyncio.run(
            run_service(
                loaded,
                "ackservice",
                listen,
                lambda store: create_app(store, loaded.config),
                args.log_level,
            )
        )
    except (AuthNotConfigured, PasswordFileError) as error:  # changed since the check above
        print(f"error: {loaded.path}: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
