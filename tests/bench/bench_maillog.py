"""How fast does mtarep read a Postfix log? Beside ``grep -cE`` with the same patterns.

Run from the repository root with the virtualenv active::

    python -m tests.bench.bench_maillog               # a 1 GB log, 3 repeats
    python -m tests.bench.bench_maillog --size 200MB  # smaller, quicker
    python -m tests.bench.bench_maillog --help

It writes a realistic Postfix log (``maillog_file`` stamps; per message the smtpd
connect/client/disconnect, cleanup, qmgr and smtp lines: 90% sent, 6% deferred, a
third of those with the Gmail, Yahoo or Microsoft texts of REFERENCE.md, 3% bounced
user unknown, 1% expired) into a temporary directory, and measures in one run:

- **mtarep**: the whole read of a cycle with the whole file as its budget: the
  reader (``sh`` + ``awk`` as a local subprocess, exactly what runs on an MTA) and
  the parse, counts and provider blocks (:func:`exporter.maillog_tally.tally_lines`);
- **ceiling**: ``grep -ciE`` over the same file with the built-in provider patterns
  (written as ERE: ``(?:`` as ``(``, the one look-ahead dropped), and for reference
  ``grep -ciP`` with the patterns exactly as mtarep has them;
- **increment**: 10 MB appended to the big log, read from where the full read stopped,
  beside the same 10 MB read as a file of its own: a cycle's cost must follow what
  was added, not the size of the log.

The counts mtarep finds are checked against what the generator wrote (every sent,
deferred, bounced and expired line, the three providers blocked), and grep's count
against the deferrals it wrote with a provider text, so nothing here is fast by
being wrong; a mismatch stops it (exit 1). Not part of the pytest suite.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from exporter.config_types import parse_size
from exporter.maillog_reader import LogRead, read_local
from exporter.maillog_tally import DeferredDomains, tally_lines
from exporter.postfix_log import ParseContext
from exporter.provider_patterns import BUILTIN_PATTERNS, ProviderMatcher
from exporter.snapshot import MaillogState

QUARTER = 0.25
"""mtarep must read at least this share of grep's throughput."""
OUR_IP = "192.0.2.10"
DOMAINS = ("gmail.com", "yahoo.com", "outlook.com", "aol.com", "comcast.net", "example.org")
GRAPH_DOMAINS = ("gmail.com", "yahoo.com")
PROVIDER_REPLIES = {
    "gmail.com": (
        "gmail",
        "host gmail-smtp-in.l.google.com[74.125.192.26] said: 421-4.7.28 [192.0.2.10 15] Our "
        "system has detected an unusual rate of 421-4.7.28 unsolicited mail originating from "
        "your IP address. (in reply to end of DATA command)",
    ),
    "yahoo.com": (
        "yahoo",
        "host mta5.am0.yahoodns.net[67.195.204.72] said: 421 4.7.0 [TSS04] Messages from "
        "192.0.2.10 temporarily deferred due to unexpected volume or user complaints - "
        "4.16.55.1; see https://postmaster.yahooinc.com/error-codes (in reply to MAIL FROM "
        "command)",
    ),
    "outlook.com": (
        "microsoft",
        "host outlook-com.olc.protection.outlook.com[52.101.40.29] said: 550 5.7.1 "
        "Unfortunately, messages from [192.0.2.10] weren't sent. Please contact your Internet "
        "service provider since part of their network is on our block list (S3150). (in "
        "reply to MAIL FROM command)",
    ),
}


@dataclass
class Written:
    """What the generator put in the log: the truth the readers are checked against."""

    bytes: int = 0
    lines: int = 0
    statuses: Counter[tuple[str, str]] = field(default_factory=Counter)
    provider_lines: int = 0
    providers: set[str] = field(default_factory=set)
    last_second: float = 0.0


def generate(path: Path, size: int, start: datetime, seed: int = 7) -> Written:
    """Append messages to ``path`` until it holds ``size`` more bytes."""
    rng = random.Random(seed)
    written = Written()
    second = int(start.timestamp())
    with path.open("ab") as out:
        n = 0
        while written.bytes < size:
            n += 1
            second += rng.random() < 0.3
            stamp = datetime.fromtimestamp(second, UTC).strftime("%b %d %H:%M:%S mta1")
            qid = f"{rng.getrandbits(44):011X}"
            domain = rng.choice(DOMAINS)
            label = domain if domain in GRAPH_DOMAINS else "other"
            pid = rng.randint(1000, 40000)
            client = f"app{n % 50}.internal[10.0.{n % 250}.{n % 200}]"
            relay = f"mx.{domain}[198.51.100.{n % 250}]:25"
            lines = [
                f"{stamp} postfix/smtpd[{pid}]: connect from {client}",
                f"{stamp} postfix/smtpd[{pid}]: {qid}: client={client}",
                f"{stamp} postfix/cleanup[{pid + 1}]: {qid}: message-id=<{n}.{qid}@example.com>",
                f"{stamp} postfix/qmgr[999]: {qid}: from=<bounce+{n}@example.com>, "
                f"size={rng.randint(2000, 90000)}, nrcpt=1 (queue active)",
                f"{stamp} postfix/smtpd[{pid}]: disconnect from {client} ehlo=1 mail=1 rcpt=1 "
                "data=1 quit=1 commands=5",
            ]
            head = f"{stamp} postfix/smtp[{pid + 2}]: {qid}: to=<user{n}@{domain}>, relay={relay}"
            roll = rng.random()
            if roll < 0.90:
                lines.append(
                    f"{head}, delay=0.{n % 9}, delays=0.1/0/0.1/0.2, dsn=2.0.0, "
                    f"status=sent (250 2.0.0 OK {qid})"
                )
                lines.append(f"{stamp} postfix/qmgr[999]: {qid}: removed")
                written.statuses[(label, "sent")] += 1
            elif roll < 0.96:
                provider, reply = PROVIDER_REPLIES.get(
                    domain,
                    (
                        "",
                        f"host {relay} said: 451 "
                        "4.3.0 Temporary failure (in reply to "
                        "RCPT TO command)",
                    ),
                )
                if rng.random() > 0.35:
                    provider, reply = "", f"host {relay} said: 450 4.2.0 Greylisted, try later"
                lines.append(
                    f"{head}, delay=1.{n % 9}, delays=0.1/0/0.5/0.6, dsn=4.7.0, "
                    f"status=deferred ({reply})"
                )
                written.statuses[(label, "deferred")] += 1
                if provider:
                    written.provider_lines += 1
                    written.providers.add(provider)
            elif roll < 0.99:
                lines.append(
                    f"{head}, delay=0.5, delays=0/0/0.2/0.3, dsn=5.1.1, status=bounced (host "
                    f"{relay} said: 550 5.1.1 <user{n}@{domain}>: Recipient address rejected: "
                    "User unknown (in reply to RCPT TO command))"
                )
                lines.append(
                    f"{stamp} postfix/bounce[{pid + 3}]: {qid}: sender non-delivery "
                    f"notification: {qid[::-1]}"
                )
                lines.append(f"{stamp} postfix/qmgr[999]: {qid}: removed")
                written.statuses[(label, "bounced")] += 1
            else:
                lines.append(
                    f"{stamp} postfix/qmgr[999]: {qid}: from=<bounce+{n}@example.com>, "
                    "status=expired, returned to sender"
                )
                written.statuses[("other", "expired")] += 1
            data = ("\n".join(lines) + "\n").encode()
            out.write(data)
            written.bytes += len(data)
            written.lines += len(lines)
    written.last_second = second
    return written


def ere(pattern: str) -> str:
    """A built-in (Python) pattern as GNU ERE, for grep -E."""
    return pattern.replace("(?:", "(").replace("(?![0-9])", "").replace("}?", "}")


@dataclass
class MtarepRun:
    seconds: float
    read_seconds: float
    read: LogRead
    state: MaillogState


async def mtarep_read(
    path: Path,
    now: float,
    position: tuple[str, int] = ("", 0),
    previous: MaillogState | None = None,
) -> MtarepRun:
    started = time.perf_counter()
    read = await read_local(str(path), position[0], position[1], 1 << 40)
    read_done = time.perf_counter()
    tally = tally_lines(
        previous or MaillogState(),
        read.lines,
        sent=read.sent,
        ips=[OUR_IP],
        matcher=ProviderMatcher(),
        graph_domains=GRAPH_DOMAINS,
        block_window=7200,
        context=ParseContext(now, UTC),
        deferred=DeferredDomains(),
    )
    finished = time.perf_counter()
    return MtarepRun(finished - started, read_done - started, read, tally.state)


def grep_count(path: Path, flags: str, patterns: Path) -> tuple[float, int]:
    started = time.perf_counter()
    done = subprocess.run(
        ["grep", flags, "-f", str(patterns), str(path)],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "LC_ALL": "C"},
    )
    seconds = time.perf_counter() - started
    if done.returncode not in (0, 1):
        raise SystemExit(f"grep failed: {done.stderr.strip()}")
    return seconds, int(done.stdout.strip() or 0)


def check(state: MaillogState, written: Written, what: str) -> None:
    found = Counter({(d, s): n for d, by in state.deliveries.items() for s, n in by.items()})
    if found != written.statuses:
        raise SystemExit(
            f"{what}: counts differ from what was written:\n{found}\n{written.statuses}"
        )
    if set(state.blocks) != written.providers:
        raise SystemExit(f"{what}: blocks {sorted(state.blocks)} != {sorted(written.providers)}")


def rate(size: float, seconds: float) -> str:
    return f"{size / seconds / 1e6:7.1f} MB/s"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", default="1GB", help="size of the big log [1GB]")
    parser.add_argument("--append", default="10MB", help="size added for the increment [10MB]")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    size, extra = parse_size(args.size), parse_size(args.append)
    if shutil.which("grep") is None:
        raise SystemExit("grep not found")
    print(f"# mtarep maillog benchmark: Python {platform.python_version()}, {os.cpu_count()} CPUs")
    start = datetime(2026, 12, 1, 0, 0, tzinfo=UTC)
    with tempfile.TemporaryDirectory(prefix="mtarep-bench-maillog-") as tmp:
        big, small = Path(tmp) / "mail.log", Path(tmp) / "added.log"
        began = time.perf_counter()
        written = generate(big, size, start)
        print(
            f"wrote {written.bytes / 1e6:.0f} MB, {written.lines:,} lines in "
            f"{time.perf_counter() - began:.0f}s; {written.provider_lines:,} provider deferrals"
        )
        patterns_ere, patterns_pcre = Path(tmp) / "ere.txt", Path(tmp) / "pcre.txt"
        patterns_ere.write_text("\n".join(ere(p.pattern) for p in BUILTIN_PATTERNS.values()))
        patterns_pcre.write_text("|".join(f"(?:{p.pattern})" for p in BUILTIN_PATTERNS.values()))
        now = written.last_second + 60  # a minute after the last line: every block is live
        ours: list[float] = []
        reads: list[float] = []
        greps: list[float] = []
        pcre: list[float] = []
        last: MtarepRun | None = None
        for repeat in range(args.repeats):  # interleaved: the same machine state for both
            last = asyncio.run(mtarep_read(big, now))
            check(last.state, written, "mtarep")
            ours.append(last.seconds)
            reads.append(last.read_seconds)
            seconds, count = grep_count(big, "-ciE", patterns_ere)
            if count != written.provider_lines:
                raise SystemExit(f"grep -E counted {count}, expected {written.provider_lines}")
            greps.append(seconds)
            if repeat == 0:
                pcre.append(grep_count(big, "-ciP", patterns_pcre)[0])
            print(
                f"  run {repeat + 1}: mtarep {last.seconds:6.2f}s "
                f"(reader {last.read_seconds:.2f}s), grep -E {seconds:6.2f}s"
            )
        assert last is not None
        mtarep_s, grep_s = statistics.median(ours), statistics.median(greps)
        print(f"\n{'':24} {'seconds':>8} {'lines/s':>14} {'throughput':>14}")
        for name, seconds in (
            ("mtarep (reader + parse)", mtarep_s),
            ("  of which the reader", statistics.median(reads)),
            ("grep -ciE (ceiling)", grep_s),
            ("grep -ciP (reference)", pcre[0]),
        ):
            print(
                f"{name:24} {seconds:8.2f} {written.lines / seconds:14,.0f} "
                f"{rate(written.bytes, seconds):>14}"
            )
        share = grep_s / mtarep_s
        print(f"\nmtarep reads at {share:.2f}x grep -E's throughput (target: at least {QUARTER})")

        # The increment: a cycle after 10 MB were added to the big log.
        position = last.read.position("", 0)
        later = datetime.fromtimestamp(written.last_second, UTC)
        added = generate(big, extra, later)
        small.write_bytes(b"")
        generate(small, extra, later)
        now = added.last_second + 60
        increments, alone = [], []
        for _ in range(args.repeats):
            run = asyncio.run(mtarep_read(big, now, position, MaillogState()))
            check(run.state, added, "increment")
            increments.append(run.seconds)
            alone.append(asyncio.run(mtarep_read(small, now)).seconds)
        inc, solo = statistics.median(increments), statistics.median(alone)
        print(
            f"\n{extra / 1e6:.0f} MB appended to the {written.bytes / 1e6:.0f} MB log: {inc:.3f}s "
            f"(the same {extra / 1e6:.0f} MB as a file of its own: {solo:.3f}s; "
            f"the whole log: {mtarep_s:.2f}s)"
        )
        print(
            f"an increment costs {inc / solo:.2f}x reading the added bytes alone, "
            f"{inc / mtarep_s * 100:.1f}% of reading the whole log"
        )
    ok = share >= QUARTER
    print("\nOK" if ok else "\nBELOW TARGET")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
