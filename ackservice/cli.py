"""``mtarep-ackservice``: serve issue detail and acknowledgements from the shared store."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Sequence

from ackservice.app import create_app
from exporter.cli import argument_parser, load_or_report
from exporter.web import run_service


def main(argv: Sequence[str] | None = None) -> int:
    args = argument_parser("mtarep-ackservice", __doc__ or "").parse_args(argv)
    loaded = load_or_report(args.config)
    if loaded is None:
        return 1
    listen = loaded.config.ackservice.listen
    return asyncio.run(run_service(loaded, "ackservice", listen, create_app, args.log_level))


if __name__ == "__main__":
    sys.exit(main())
