"""The one escaping function for everything the agent writes to stdout or stderr.

Names, JSON keys, ARNs, parts of a reference, encryption contexts and AWS error codes come from
whoever can write a parameter or answer a request. Written raw, a newline forges a second log
line or ``check`` row, ESC or CSI (U+009B) drives the terminal, U+2028 / U+0085 split a line for
readers that follow Unicode, and bidi controls (U+202E) reorder what a reader sees.

``printable`` escapes every character that Python's ``str.isprintable`` calls non-printable
(categories Cc, Cf, Cs, Co, Cn, Zl, Zp, and Zs other than the ASCII space), and nothing else.
The escapes are JSON's (``\\n``, ``\\r``, ``\\t``, ``\\uXXXX``, a surrogate pair past U+FFFF),
so the result is both readable text and valid inside a JSON string: a JSON log line passes
through it unchanged in meaning and stays one line. It never adds a non-printable character and
leaves backslashes alone, so ``printable(printable(s)) == printable(s)``.
"""

from __future__ import annotations

_SHORT = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
# Bytes per line on stderr: half of Docker's 16 KiB line limit (longer lines are split in two).
MAX_LINE = 8192


def _escape_char(ch: str) -> str:
    short = _SHORT.get(ch)
    if short is not None:
        return short
    code = ord(ch)
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    code -= 0x10000
    return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"


def printable(text: str) -> str:
    """``text`` with every non-printable character (but the space) as a JSON-style escape."""
    if text.isprintable():
        return text
    return "".join(ch if ch == " " or ch.isprintable() else _escape_char(ch) for ch in text)


def capped(line: str, limit: int = MAX_LINE) -> str:
    """``line`` (escaped) cut to at most ``limit`` UTF-8 bytes, saying how much it left out."""
    data = line.encode("utf-8", "surrogatepass")
    if len(data) <= limit:
        return line
    head = data[: limit - 64].decode("utf-8", "ignore")
    return f"{head}... ({len(line) - len(head)} characters left out)"
