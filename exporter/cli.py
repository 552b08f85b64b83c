"""``mtarep-exporter``: check the configuration, or run the exporter."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence

from exporter import __version__
from exporter.config import DEFAULT_CONFIG_PATH, ENV_CONFIG, ConfigError, LoadedConfig, load_config
from exporter.config_summary import summary
from exporter.service import build_app
from exporter.web import run_service


def argument_parser(prog: str, description: str) -> argparse.ArgumentParser:
    """The options every mtarep command has: --config, --log-level, --version."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument(
        "--config",
        default=os.environ.get(ENV_CONFIG, DEFAULT_CONFIG_PATH),
        help=f"configuration file (default: ${ENV_CONFIG} or {DEFAULT_CONFIG_PATH})",
    )
    parser.add_argument(
        "--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"]
    )
    parser.add_argument("--version", action="version", version=f"mtarep {__version__}")
    return parser


def load_or_report(path: str) -> LoadedConfig | None:
    """Load the configuration, or print every problem to stderr and return None."""
    try:
        return load_config(path)
    except ConfigError as error:
        print(f"{path}: {len(error.problems)} problem(s) in the configuration:", file=sys.stderr)
        for problem in error.problems:
            print(f"error: {problem}", file=sys.stderr)
        return None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argument_parser(
        "mtarep-exporter", "Prometheus exporter for the reputation of a fleet of Postfix MTAs."
    )
    parser.add_argument(
        "--check-config",
        action="store_true",
        help="validate the configuration, print every problem or a summary, and exit",
    )
    args = parser.parse_args(argv)
    loaded = load_or_report(args.config)
    if loaded is None:
        return 1
    if args.check_config:
        print(summary(loaded))
        return 0
    return asyncio.run(
        run_service(loaded, "exporter", loaded.config.listen, build_app, args.log_level)
    )


if __name__ == "__main__":
    sys.exit(main())
