"""Which mailbox provider a rejection or deferral comes from, when it blocks our IP.

No I/O here. :data:`BUILTIN_PROVIDERS` holds one pattern per provider, written from
the distinctive substrings of ../shared/REFERENCE.md ("What providers say when they
block or throttle an IP"). Each matches only text that means the *sending IP* (or its
reputation, or the mail stream's authentication) is blocked or throttled: a plain
"user unknown" (``550 5.1.1``), a full mailbox or greylisting matches none.

The configuration's ``provider_block_strings`` (``Config.provider_patterns``) is
merged over them by :func:`merged_patterns`: a configured provider replaces the
built-in of the same name, ``null`` switches a built-in off, a new name is added.
:meth:`ProviderMatcher.providers_matching` names every provider whose pattern is in a
reply (Cox quoting Cloudmark is both), in the merged order: built-ins in table order,
then the configured additions in the order written.

Multi-line SMTP replies reach the log joined with spaces, each line keeping its code
(``421-4.7.28 ... rate of 421-4.7.28 unsolicited mail ...``). A reply is searched as
logged and, when it differs, unfolded (:func:`unfold_reply`: the repeated codes
removed), so a pattern for a phrase matches wherever the provider broke its lines.

Bounded work: the built-in patterns are literals, alternations and bounded
repetitions (no nested quantifiers), and only the first :data:`MAX_MATCH_CHARS`
characters of a reply are searched. A configured pattern is the configuration's
own; a catastrophic one (``(a+)+$``) is slow on hostile text whatever we do.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

__all__ = [
    "BUILTIN_PATTERNS",
    "BUILTIN_PROVIDERS",
    "MAX_MATCH_CHARS",
    "BuiltinProvider",
    "ProviderMatcher",
    "merged_patterns",
    "providers_matching",
    "unfold_reply",
]

MAX_MATCH_CHARS: Final = 16 * 1024
"""Only this much of a reply is searched (real replies are well under 2 KB)."""


@dataclass(frozen=True)
class BuiltinProvider:
    name: str
    """Lower-case, as in ``provider_block_strings`` and the ``provider`` label."""
    pattern: re.Pattern[str]
    """Searched case-insensitively (ASCII letters)."""
    matches: str
    """What it recognises, for people (README table, ``--check-config``)."""
    hints: tuple[str, ...]
    """Lower-case words of which every match contains one: a reply (lower-cased) with
    none of them is not searched. Only speed depends on them, never the answer."""


def _provider(
    name: str, matches: str, hints: tuple[str, ...], *alternatives: str
) -> BuiltinProvider:
    # ASCII case folding only, so lower-casing a reply can never hide a hint.
    pattern = re.compile("|".join(alternatives), re.IGNORECASE | re.ASCII)
    return BuiltinProvider(name, pattern, matches, hints)


BUILTIN_PROVIDERS: Final[tuple[BuiltinProvider, ...]] = (
    _provider(
        "gmail",
        "4.7.28 / unusual rate of unsolicited mail from your IP; very low reputation of "
        "the sending domain or IP; likely unsolicited mail; 5.7.26 sender is unauthenticated",
        ("4.7.28", "unsolicited", "reputation", "unauthenticated"),
        r"\b4\.7\.28\b",
        r"unusual\s+rate\s+of\s+unsolicited\s+mail",
        r"very\s+low\s+reputation\s+of\s+the\s+sending\s+(?:domain|IP)",
        r"likely\s+unsolicited\s+mail",
        r"\b5\.7\.26\b[^()]{0,300}?\bunauthenticated\b",
        r"sender\s+is\s+unauthenticated",
    ),
    _provider(
        "microsoft",
        "(S3150), (S3140) and other (Snnnn) block codes; 5.7.606-5.7.649 banned sending IP; "
        "4.7.650/4.7.651 rate limited due to IP reputation",
        ("(s", "network", "5.7.6", "4.7.65", "banned"),
        r"\(S[0-9]{3,4}\)",
        r"part\s+of\s+their\s+network\s+is\s+on\s+our\s+block\s+list",
        r"\b5\.7\.6(?:0[6-9]|[1-4][0-9])\b",
        r"\b4\.7\.65[01]\b",
        r"banned\s+sending\s+IP",
    ),
    _provider(
        "yahoo",
        "Yahoo/AOL [TSSnn] deferrals (TSS04 volume or complaints, TSS09, TSS11) and "
        "[BL2n] IP blocks",
        ("[tss", "[bl2"),
        r"\[TSS[0-9]{2}\]",
        r"\[BL2[0-9]\]",
    ),
    _provider(
        "comcast",
        "smtp-error-codes.php#BLnnnnnn (blocked, DNSBL) and #RLnnnnnn (rate limits)",
        ("smtp-error-codes.php#",),
        r"smtp-error-codes\.php#(?:BL|RL)[0-9]{4,8}",
    ),
    _provider(
        "apple",
        "iCloud [CS01]; Blocked - see ipcheck.proofpoint.com from an icloud.com server",
        ("[cs01]", "ipcheck.proofpoint.com"),
        r"\[CS01\]",
        r"\.icloud\.com\.?\[[^\]\s]{1,64}\][^()]{0,120}?Blocked\s+-\s+see\s+"
        r"https?://ipcheck\.proofpoint\.com",
    ),
    _provider(
        "att",
        "att.net/blocks, ldap:ou=rblmx, dnsbl:attrbl",
        ("att.net/blocks", "ldap:ou=rblmx", "dnsbl:attrbl"),
        r"att\.net/blocks",
        r"ldap:ou=rblmx",
        r"dnsbl:attrbl",
    ),
    _provider(
        "spectrum",
        "Spectrum/Charter AUP#1000 (IP blocked), AUP#1200-1210 (Cloudmark), "
        "AUP#1220-1250 (Spamhaus), AUP#1300-1490 (connection and rate limits)",
        ("aup#",),
        r"AUP#(?:1000|120[0-9]|1210|12[2-4][0-9]|1250|13[0-9]{2}|14[0-8][0-9]|1490)(?![0-9])",
    ),
    _provider("cox", "Cox AUP#CDRBL", ("aup#cdrbl",), r"AUP#CDRBL\b"),
    _provider(
        "cloudmark",
        "csi.cloudmark.com (reset requests), Cloudmark Sender Intelligence",
        ("cloudmark",),
        r"csi\.cloudmark\.com",
        r"Cloudmark\s+Sender\s+Intelligence",
    ),
    _provider(
        "proofpoint",
        "ipcheck.proofpoint.com, prs.proofpoint.com, Proofpoint Dynamic Reputation",
        ("proofpoint",),
        r"ipcheck\.proofpoint\.com",
        r"prs\.proofpoint\.com",
        r"Proofpoint\s+Dynamic\s+Reputation",
    ),
    _provider(
        "mimecast", "Local CT IP Reputation", ("reputation",), r"Local\s+CT\s+IP\s+Reputation"
    ),
    _provider(
        "gmx",
        "GMX/web.de Nemesis ESMTP Service not available; IP address is block listed",
        ("nemesis", "block"),
        r"Nemesis\s+ESMTP\s+Service\s+not\s+available",
        r"IP\s+address\s+is\s+block\s?listed",
    ),
    _provider("orange", "OFR005_nnn, OFR006_nnn", ("ofr00",), r"\bOFR00[56]_[0-9]{3}\b"),
    _provider(
        "mailru",
        "help.mail.ru/notspam-support",
        ("help.mail.ru/notspam-support",),
        r"help\.mail\.ru/notspam-support",
    ),
    _provider(
        "yandex",
        "Message rejected under suspicion of SPAM",
        ("suspicion",),
        r"Message\s+rejected\s+under\s+suspicion\s+of\s+SPAM",
    ),
)

BUILTIN_PATTERNS: Final[Mapping[str, re.Pattern[str]]] = {
    provider.name: provider.pattern for provider in BUILTIN_PROVIDERS
}
_HINTS: Final[Mapping[re.Pattern[str], tuple[str, ...]]] = {
    provider.pattern: provider.hints for provider in BUILTIN_PROVIDERS
}


def merged_patterns(
    configured: Mapping[str, re.Pattern[str] | None] | None = None,
) -> dict[str, re.Pattern[str]]:
    """The built-in patterns with ``configured`` (``Config.provider_patterns``) over them.

    A configured name replaces the built-in of that name (in its place), ``None``
    removes it, a new name is appended.
    """
    merged = dict(BUILTIN_PATTERNS)
    for name, pattern in (configured or {}).items():
        if pattern is None:
            merged.pop(name, None)
        else:
            merged[name] = pattern
    return merged


_FIRST_CODE: Final = re.compile(r"(?<!\S)([2-5][0-9]{2})[ -]")


def unfold_reply(text: str) -> str:
    """``text`` with the repeated reply codes of a joined multi-line reply removed.

    The first ``NNN-`` of the reply stays; every later `` NNN-X.Y.Z `` or `` NNN ``
    with the same code becomes one space: ``421-4.7.28 rate of 421-4.7.28 unsolicited
    421 4.7.28 mail`` gives ``421-4.7.28 rate of unsolicited mail``.
    """
    first = _FIRST_CODE.search(text)
    if first is None:
        return text
    code = first.group(1)
    continuation = re.compile(r"\s" + code + r"[ -](?:[245]\.[0-9]{1,3}\.[0-9]{1,3}(?=\s))?\s*")
    head, tail = text[: first.end()], text[first.end() :]
    return head + continuation.sub(" ", tail)


class ProviderMatcher:
    """Names the providers whose pattern a reply matches (one per merged configuration)."""

    __slots__ = ("_any_hint", "_entries")

    def __init__(
        self, patterns: Mapping[str, re.Pattern[str]] | None = None, *, use_hints: bool = True
    ) -> None:
        given = BUILTIN_PATTERNS if patterns is None else patterns
        # A built-in pattern brings its hints; a configured one is always searched.
        self._entries = tuple(
            (name, pattern, _HINTS.get(pattern, ()) if use_hints else ())
            for name, pattern in given.items()
        )
        # When every pattern has hints, one search for any hint at all decides most
        # replies (greylisting, user unknown...) at once. Unfolding a reply removes
        # reply codes and puts a space in their place, so it never makes a hint (they
        # have no spaces) that the reply as logged does not have.
        hinted = all(hints for _, _, hints in self._entries)
        every_hint = sorted({hint for _, _, hints in self._entries for hint in hints})
        self._any_hint = (
            re.compile("|".join(re.escape(hint) for hint in every_hint))
            if hinted and every_hint
            else None
        )

    @classmethod
    def from_config(cls, configured: Mapping[str, re.Pattern[str] | None]) -> ProviderMatcher:
        """The built-ins merged with ``Config.provider_patterns`` (see :func:`merged_patterns`)."""
        return cls(merged_patterns(configured))

    @property
    def providers(self) -> tuple[str, ...]:
        return tuple(name for name, _, _ in self._entries)

    def providers_matching(self, reply: str) -> list[str]:
        """Every provider whose pattern is in ``reply`` (as logged, or unfolded), in order."""
        text = reply[:MAX_MATCH_CHARS]
        lowered = text.lower()
        if self._any_hint is not None and not self._any_hint.search(lowered):
            return []
        unfolded = unfold_reply(text)
        texts = [(text, lowered)]
        if unfolded != text:
            texts.append((unfolded, unfolded.lower()))
        found = []
        for name, pattern, hints in self._entries:
            for candidate, lowered in texts:
                if hints and not any(hint in lowered for hint in hints):
                    continue
                if pattern.search(candidate):
                    found.append(name)
                    break
        return found


_BUILTIN_MATCHER: Final = ProviderMatcher()


def providers_matching(reply: str) -> list[str]:
    """The built-in providers whose pattern is in ``reply`` (no configuration)."""
    return _BUILTIN_MATCHER.providers_matching(reply)
