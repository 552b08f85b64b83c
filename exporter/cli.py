"""``mtarep-exporter``: check the configuration, or run the exporter."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Sequence

from exporter import __version__
from exporter.config import DEFAULT_CONFIG_PATH, ENV_CONFIG, ConfigError, LoadedConfig, load_config
from exporter.config_summary import summary
from exporter.cycle import Collection
from exporter.logs import event
from exporter.metrics import render_snapshot
from exporter.service import build_app, make_resolver
from exporter.store import StoreError
from exporter.web import StartupFailed, opened_store, run_service

_LOG = logging.getLogger("mtarep.exporter")


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
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments[:1] == ["demo"]:
        from exporter.demo.runner import main as demo  # noqa: PLC0415 - only the demo needs it

        return demo(arguments[1:])
    parser = argument_parser(
        "mtarep-exporter", "Prometheus exporter for the reputation of a fleet of Postfix MTAs."
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--check-config",
        action="store_true",
        help="validate the configuration, print every problem or a summary, and exit",
    )
    mode.add_argument(
        "--once",
        action="store_true",
        help="run one collection cycle, store it, print the metrics to stdout and exit",
    )
    args = parser.parse_args(arguments)
    loaded = load_or_report(args.config)
    if loaded is None:
        return 1
    if args.check_config:
        print(summary(loaded))
        return 0
    if args.once:
        return asyncio.run(run_once(loaded, args.log_level))
    return asyncio.run(
        run_service(
            loaded,
            "exporter",
            loaded.config.listen,
            lambda store: build_app(store, loaded),
            args.log_level,
        )
    )


async def run_once(loaded: LoadedConfig, log_level: str = "INFO") -> int:
    """One cycle, stored, with the text exposition on stdout (the old cron-style use).

    Exit 1 only when the store is unusable; a failing list or host is in the metrics.
    """
    try:
        async with opened_store(loaded, "exporter", log_level) as store:
            try:
                await store.ping()
            except StoreError as error:
                event(_LOG, "store.unusable", logging.ERROR, error=str(error))
                return 1
            resolver = make_resolver(loaded.config)
            try:
                collection = Collection(loaded.config, resolver, store, snds_key=loaded.snds_key)
                try:
                    await collection.restore()
                    snapshot = await collection.run()
                finally:
                    collection.close()
            finally:
                await resolver.close()
    except StartupFailed:
        return 1
    sys.stdout.write(render_snapshot(snapshot).decode())
    return 0 if snapshot.sources["store"].success else 1


if __name__ == "__main__":
    sys.exit(main())
