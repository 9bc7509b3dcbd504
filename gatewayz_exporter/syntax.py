"""Small lexical rules used on several paths, written once: ASCII digits, bracketed IPv6 hosts."""

from __future__ import annotations

import re

_ASCII_DIGITS = re.compile(r"[0-9]+")


def is_ascii_digits(text: str, max_digits: int | None = None) -> bool:
    """True when ``text`` is one or more ASCII digits (``str.isdigit`` also takes '²' and '٣'), at most ``max_digits``."""
    return _ASCII_DIGITS.fullmatch(text) is not None and (max_digits is None or len(text) <= max_digits)


def unbracket(host: str) -> str:
    """``[::1]`` -> ``::1``; any other host unchanged."""
    return host[1:-1] if host.startswith("[") and host.endswith("]") else host
