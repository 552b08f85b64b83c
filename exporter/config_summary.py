"""The short, secret-free summary ``mtarep-exporter --check-config`` prints."""

from __future__ import annotations

from exporter.config import LoadedConfig
from exporter.config_types import format_duration


def _listed(names: list[str], limit: int = 6) -> str:
    if not names:
        return "0"
    shown = ", ".join(names[:limit])
    more = len(names) - limit
    return f"{len(names)} ({shown}{f', and {more} more' if more > 0 else ''})"


def enabled_sources(loaded: LoadedConfig) -> list[str]:
    config = loaded.config
    checks = ["senderscore", "fcrdns"]
    if config.rbl_zones:
        checks.insert(0, "rbl")
    if config.helo_check.enabled:
        checks.append("helo")
    sources = [f"dns ({', '.join(checks)})"]
    sources.append("snds" if loaded.snds_key else "snds off (no key)")
    if config.reputation:
        sources.append(f"reputation ({', '.join(s.name for s in config.reputation)})")
    if any(host.maillog_path for host in config.hosts):
        sources.append(f"maillog ({config.maillog.source})")
    else:
        sources.append("maillog off (no maillog_path)")
    prefixes = config.mailflow.prefixes
    sources.append(f"mailflow ({', '.join(prefixes) if prefixes else 'prefixes found with SCAN'})")
    return sources


def summary(loaded: LoadedConfig) -> str:
    config = loaded.config
    lines = [
        f"{loaded.path}: configuration OK",
        f"  hosts:     {_listed([host.fqdn for host in config.hosts])}",
        f"  rbl zones: {_listed([rbl.zone for rbl in config.rbl_zones])}",
        f"  sources:   {', '.join(enabled_sources(loaded))}",
        f"  redis:     {loaded.redis_description}",
        f"  listen:    exporter {config.listen}, ackservice {config.ackservice.listen}",
        f"  interval:  {format_duration(config.interval)}, "
        f"block window {format_duration(config.block_window)}",
    ]
    if config.shard.count > 1:
        lines.append(f"  shard:     {config.shard.index + 1} of {config.shard.count}")
    lines.extend(f"warning: {warning}" for warning in loaded.warnings)
    return "\n".join(lines)
