"""Read what a Postfix log gained since the last cycle, on the MTA or on this machine.

Both ways run the same small POSIX ``sh`` + ``awk`` program, :data:`READER`: over SSH
(paramiko, ``exec_command``) on the MTA, or as a local subprocess for
``maillog.source: local``. It is given the log's path, the file identity
(``device:inode``) and offset where the last read stopped, and a byte budget; it

- finds the file that was read last: the log itself, or after a rotation the
  rotated file with that identity next to it (``mail.log.1``, ``mail.log-20261201``),
  and first finishes that file's tail, then reads the new log from its start;
- starts again from 0 when the log shrank (``copytruncate``), and reads at most
  the budget from the end on the first read of a host;
- reads at most the budget per cycle (the next cycle goes on from there), only up to
  the last complete line (a line still being written is read next time);
- moves only what mtarep reads: Postfix lines with one of the parser's
  ``RECORD_MARKERS`` (delivery, expiry and remote-reply lines); ``status=sent``
  deliveries, most of a log, only as a count per recipient domain; everything else
  is counted, not sent. So the MTAs do the per-line work of their own logs, and the
  exporter parses only deferrals, bounces, expiries and replies.

Its output is line-based and a log line cannot pass for anything else in it: every
log line is sent as ``L <line>``, every count as ``S <count> <domain>``, every
control line starts with ``C``. A line only counts as ``sent`` when its header and
queue id lead to ``: to=<`` and its first ``(`` opens ``status=sent (``, so a
remote server's reply quoting such text stays a deferral and reaches the parser. Arguments
are passed as separate, quoted words (``shlex.quote``); nothing from the
configuration or a log is ever part of the program text.

The MTA needs a POSIX ``sh``, ``awk``, ``tail``, ``head`` and GNU ``stat`` (any Linux).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shlex
import signal
from dataclasses import dataclass, field
from pathlib import Path

from exporter.postfix_log import RECORD_MARKERS

__all__ = ["READER", "Chunk", "LogRead", "ReadFailed", "parse_output", "reader_argv"]

_READER = r"""
set -u
log=$1 last_id=$2 offset=$3 budget=$4
ident() { stat -L -c '%d:%i' -- "$1" 2>/dev/null; }
size() { stat -L -c '%s' -- "$1" 2>/dev/null; }
# whole FILE START LENGTH: LENGTH, less a last line still being written, found in the
# last 64 KiB, 1 MiB or 16 MiB; with no newline in them (nothing there, or an
# unfinished line longer than that) 0: the read waits until a newline comes.
whole() {
    for window in 65536 1048576 16777216; do
        [ "$3" -lt "$window" ] && window=$3
        found=$(tail -c "+$(($2 + $3 - window + 1))" -- "$1" 2>/dev/null | head -c "$window" |
            LC_ALL=C awk -v len="$3" -v window="$window" '
            { n += length($0) + 1; last = length($0) }
            END {
                if (NR == 0) print 0; else if (n == window) print len
                else if (NR > 1) print len - last; else print "more"
            }')
        [ "$found" = more ] || { echo "$found"; return; }
        [ "$window" -lt "$3" ] || break
    done
    echo 0
}
# chunk FILE START LENGTH DROP_FIRST: the lines of LENGTH bytes from START that
# mtarep reads, with "sent" deliveries only counted by recipient domain.
chunk() {
    echo "C FILE $(ident "$1") $2"
    complete=$(whole "$1" "$2" "$3")
    [ "$complete" -gt 0 ] || { echo "C END 0 0 0"; return; }
    tail -c "+$(($2 + 1))" -- "$1" 2>/dev/null | head -c "$complete" | LC_ALL=C awk \
        -v drop="$4" -v complete="$complete" '
        NR == 1 && drop { next }
        @MARKERS@ {
            # A "sent" delivery: the first "]: " of the line ends the program, a queue id
            # (no space) runs to ": to=<", and the first "(" opens "status=sent (". So
            # text a remote server wrote, after the first "(", never passes for one.
            if ((p = index($0, ", status=sent (")) && index($0, "(") == p + 14 &&
                (u = index($0, "]: ")) && (t = index($0, ": to=<")) > u + 3 &&
                index(substr($0, 1, u), " postfix") &&
                !index(substr($0, u + 3, t - u - 3), " ")) {
                kept++
                to = index($0, ": to=<")
                address = substr($0, to + 6)
                address = substr(address, 1, index(address, ">") - 1)
                parts = split(address, piece, "@")
                domain = parts > 1 && length(address) > length(piece[parts]) + 1 ? \
                    tolower(piece[parts]) : ""
                sub(/\.+$/, "", domain)
                sent[domain]++
            } else if ($0 ~ / postfix(-[^\/ ]+)?\/[^ ]*\[[0-9]+\]: /) {
                kept++
                print "L " $0
            }
        }
        END {
            for (domain in sent) print "S " sent[domain] " " domain
            print "C END " complete " " NR - (NR > 0 && drop) " " kept + 0
        }'
}
[ -e "$log" ] || { echo "C ERROR no such file"; exit 0; }
[ -r "$log" ] || { echo "C ERROR permission denied"; exit 0; }
id=$(ident "$log") && now=$(size "$log") || { echo "C ERROR cannot stat the file"; exit 0; }
echo "C NOW $id $now"
start=$offset drop=0
if [ -z "$last_id" ]; then
    # From one byte before the window: the line that byte ends is dropped, whole or not.
    if [ "$now" -gt "$budget" ]; then start=$((now - budget - 1)) drop=1 budget=$((budget + 1))
    else start=0; fi
elif [ "$last_id" != "$id" ]; then
    found=
    for old in "$log".* "$log"-*; do
        case "$old" in *.gz|*.bz2|*.xz|*.zst) continue ;; esac
        if [ -f "$old" ] && [ "$(ident "$old")" = "$last_id" ]; then found=$old; break; fi
    done
    if [ -n "$found" ]; then
        left=$(($(size "$found") - offset))
        [ "$left" -gt "$budget" ] && left=$budget
        [ "$left" -gt 0 ] && chunk "$found" "$offset" "$left" 0
        budget=$((budget - left))
        echo "C ROTATED"
    else
        echo "C LOST"
    fi
    start=0
elif [ "$now" -lt "$offset" ]; then
    echo "C TRUNCATED"
    start=0
fi
left=$((now - start))
[ "$left" -gt "$budget" ] && left=$budget
[ "$left" -gt 0 ] && chunk "$log" "$start" "$left" "$drop"
echo "C DONE"
"""


def _awk_literal(marker: bytes) -> str:
    text = marker.decode("ascii")
    if any(char in text for char in '"\\\n'):
        raise ValueError(f"{marker!r} cannot be an awk string literal as written")
    return f'"{text}"'


READER = _READER.replace(
    "@MARKERS@",
    "(" + " || ".join(f"index($0, {_awk_literal(marker)})" for marker in RECORD_MARKERS) + ")",
)
"""The reader program; it keeps exactly the lines that have one of the parser's
``RECORD_MARKERS`` (the parser reads no other line)."""


class ReadFailed(Exception):
    """The log could not be read; the message says why (safe to log and show)."""


@dataclass
class Chunk:
    """What was read of one file: its kept lines and how far the read got."""

    file_id: str
    start: int
    lines: list[bytes] = field(default_factory=list)
    """The lines to parse: every kept line but the ``sent`` deliveries."""
    sent: dict[str, int] = field(default_factory=dict)
    """Recipient domain (as logged, lower-case; "" for none) -> ``sent`` deliveries."""
    consumed: int = 0
    """Bytes from ``start`` up to the last complete line."""
    seen: int = 0
    """Lines in those bytes."""
    kept: int = 0


@dataclass
class LogRead:
    file_id: str
    """Identity of the log now."""
    size: int
    chunks: list[Chunk]
    rotated: bool = False
    """The log was rotated since the last read (and the old file's tail was read)."""
    lost: bool = False
    """The log was rotated and the old file is gone (compressed or deleted)."""
    truncated: bool = False

    @property
    def bytes_read(self) -> int:
        return sum(chunk.consumed for chunk in self.chunks)

    @property
    def lines(self) -> list[bytes]:
        return [line for chunk in self.chunks for line in chunk.lines]

    @property
    def sent(self) -> dict[str, int]:
        """``sent`` deliveries by recipient domain, over every chunk."""
        total: dict[str, int] = {}
        for chunk in self.chunks:
            for domain, count in chunk.sent.items():
                total[domain] = total.get(domain, 0) + count
        return total

    @property
    def lines_skipped(self) -> int:
        """Lines read but not Postfix lines mtarep reads (filtered on the MTA)."""
        return sum(chunk.seen - chunk.kept for chunk in self.chunks)

    def position(self, last_id: str, last_offset: int) -> tuple[str, int]:
        """Where the next read starts: the file and offset the last chunk reached.

        When a rotated file's tail could not all be read this cycle, the next read
        goes on in it; nothing is skipped.
        """
        read = [chunk for chunk in self.chunks if chunk.file_id]  # "": vanished meanwhile
        if not read:
            if self.rotated or self.lost or self.truncated or not last_id:
                return self.file_id, 0
            return last_id, last_offset
        last = read[-1]
        return last.file_id, last.start + last.consumed


def reader_argv(path: str, last_id: str, offset: int, budget: int) -> list[str]:
    """``sh -c READER`` with its arguments, as separate words."""
    return ["sh", "-c", READER, "mtarep-maillog", path, last_id, str(offset), str(budget)]


def remote_command(path: str, last_id: str, offset: int, budget: int) -> str:
    """The command line for an SSH ``exec``: every word quoted for the remote shell."""
    return " ".join(shlex.quote(word) for word in reader_argv(path, last_id, offset, budget))


def parse_output(output: bytes) -> LogRead:
    """Read :data:`READER`'s output; :class:`ReadFailed` when it reports an error or
    stops half-way (a dropped connection)."""
    result: LogRead | None = None
    current: Chunk | None = None
    done = False
    for raw in output.split(b"\n"):
        if raw.startswith(b"L "):
            if current is None:
                raise ReadFailed("the reader sent a line outside a file")
            current.lines.append(raw[2:])
            continue
        if raw.startswith(b"S "):
            count, _, domain = raw[2:].partition(b" ")
            if current is None or not count.isdigit():
                raise ReadFailed("the reader sent a count it should not have")
            name = domain.decode("utf-8", "replace")
            current.sent[name] = current.sent.get(name, 0) + int(count)
            continue
        words = raw.decode("ascii", "replace").split()
        if not words:
            continue
        match words:
            case ["C", "ERROR", *why]:
                raise ReadFailed(" ".join(why))
            case ["C", "NOW", file_id, size]:
                result = LogRead(file_id, int(size), [])
            case ["C", "FILE", file_id, start] if result is not None:
                current = Chunk(file_id, int(start))
                result.chunks.append(current)
            case ["C", "FILE", start] if result is not None:  # the old file vanished
                current = Chunk("", int(start))
                result.chunks.append(current)
            case ["C", "END", consumed, seen, kept] if current is not None:
                current.consumed, current.seen, current.kept = int(consumed), int(seen), int(kept)
                current = None
            case ["C", "ROTATED"] if result is not None:
                result.rotated = True
            case ["C", "LOST"] if result is not None:
                result.lost = True
            case ["C", "TRUNCATED"] if result is not None:
                result.truncated = True
            case ["C", "DONE"]:
                done = True
            case _:
                raise ReadFailed(f"unexpected output from the reader: {words[:4]}")
    if result is None or not done or current is not None:
        raise ReadFailed("the reader stopped before it finished (connection lost?)")
    return result


async def read_local(path: str, last_id: str, offset: int, budget: int) -> LogRead:
    """Run the reader on this machine (``maillog.source: local``)."""
    if not Path(path).is_absolute():
        raise ReadFailed(f"{path} is not an absolute path")
    process = await asyncio.create_subprocess_exec(
        *reader_argv(path, last_id, offset, budget),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,  # its own process group: tail | head | awk die with it
    )
    try:
        stdout, stderr = await process.communicate()
    except BaseException:  # cancelled (the per-host timeout): never leave any of it running
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(5):  # the group is gone: its pipes close at once
                await process.wait()
        raise
    if process.returncode != 0:
        why = stderr.decode(errors="replace").strip().splitlines()[-1:] or ["no message"]
        raise ReadFailed(f"the reader exited with {process.returncode}: {why[0][:200]}")
    return parse_output(stdout)
