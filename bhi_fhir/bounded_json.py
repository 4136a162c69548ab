"""JSON read within bounds, for input that may be hostile or huge.

Bounded: deep nesting, huge or infinite numbers, NaN/Infinity and endless records are refused
as :class:`OverBounds` (a message saying which bound), never a crash: nesting deeper than
``MAX_DEPTH``, a number literal longer than ``MAX_NUMBER_CHARS`` or outside the float range,
and a record longer than ``MAX_RECORD_BYTES``. :func:`decode` reads one document;
:class:`JsonText` reads a document a chunk at a time so its values (a Bundle's entries) can be
decoded one by one with flat memory, and says where in the file (line, column) it is.

Used by :mod:`bhi_fhir.sources`, which turns these into ``SourceError`` lines per record.
"""

from __future__ import annotations

import codecs
import json
import math
import re
from typing import Any, BinaryIO

__all__ = [
    "CHUNK",
    "MAX_DEPTH",
    "MAX_NUMBER_CHARS",
    "MAX_RECORD_BYTES",
    "JsonText",
    "OverBounds",
    "Unreadable",
    "decode",
    "too_deep",
]

MAX_DEPTH = 128  # arrays and objects nested, the resource itself included (serde_json's limit)
MAX_NUMBER_CHARS = 64  # one number literal; int64 has 19 digits, a double 17 significant
MAX_RECORD_BYTES = 64 << 20  # one NDJSON line, one non-Bundle file, one Bundle entry
CHUNK = 1 << 20  # bytes read at a time from a Bundle


class OverBounds(Exception):
    """A well-formed record over one of the bounds; the message says which."""


def _int(text: str) -> int:
    if len(text) > MAX_NUMBER_CHARS:
        raise OverBounds(f"number longer than {MAX_NUMBER_CHARS} characters")
    return int(text)


def _float(text: str) -> float:
    if len(text) > MAX_NUMBER_CHARS:
        raise OverBounds(f"number longer than {MAX_NUMBER_CHARS} characters")
    value = float(text)
    if not math.isfinite(value):
        raise OverBounds("number out of range")
    return value


def _constant(text: str) -> float:
    raise OverBounds(f"{text} is not a JSON number")


def _ignore(text: str) -> None:
    return None


# Strict: the bounds above. Lenient: numbers not converted, only to find where a rejected
# record ends so the read can go on after it.
_STRICT = json.JSONDecoder(parse_int=_int, parse_float=_float, parse_constant=_constant)
_LENIENT = json.JSONDecoder(parse_int=_ignore, parse_float=_ignore, parse_constant=_ignore)
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"')
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_AS_PARENS = str.maketrans("[{]}", "(())")
_WS = re.compile(r"[ \t\n\r]*")
_NUMBER_START = frozenset("-0123456789")
_NUMBER_ON = frozenset(["", *".eE+-0123456789"])  # what may follow a cut number
_TOKEN = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[{]+|[\]}]+')


def too_deep(text: str) -> bool:
    """Arrays/objects in ``text`` nested deeper than MAX_DEPTH (strings do not count)."""
    if text.count("[") + text.count("{") <= MAX_DEPTH:
        return False
    shape = _NOT_BRACKET.sub("", _STRING.sub("", text)).translate(_AS_PARENS)
    # Each pass removes the innermost level everywhere.
    for _ in range(MAX_DEPTH):
        inner = shape.replace("()", "")
        if inner == shape:
            return False  # empty, or unbalanced: the decoder reports it
        shape = inner
    return shape.replace("()", "") != shape


def decode(text: str) -> Any:
    """One JSON document within the bounds; raises OverBounds or json.JSONDecodeError."""
    if too_deep(text):
        raise OverBounds(f"nested deeper than {MAX_DEPTH}")
    try:
        return _STRICT.decode(text)
    except RecursionError:  # unbalanced and deep: "[[[[…" without its end
        raise OverBounds(f"nested deeper than {MAX_DEPTH}") from None


class Unreadable(Exception):
    """The document cannot be read on from here: the message says why."""


class JsonText:
    """A JSON document read a chunk at a time, for values to be decoded one by one.

    ``pos`` is the read position in ``buf``; text before it is dropped as the read goes on.
    """

    def __init__(self, handle: BinaryIO) -> None:
        self._handle = handle
        self._utf8 = codecs.getincrementaldecoder("utf-8")()
        self.buf = ""
        self.pos = 0
        self._eof = False
        self._mark, self._mark_line = 0, 1  # a position in buf and its line in the file
        self._column0 = 0  # characters on buf[0]'s line before it (in dropped text)

    def more(self, want: int) -> bool:
        """Read until ``want`` characters are held past ``pos``; False at the end."""
        if self._eof:
            return False
        if self.pos > len(self.buf) // 2:
            line = self.line(self.pos)
            newline = self.buf.rfind("\n", 0, self.pos)
            self._column0 = self.pos - newline - 1 if newline >= 0 else self._column0 + self.pos
            self.buf, self.pos = self.buf[self.pos:], 0
            self._mark, self._mark_line = 0, line
        while len(self.buf) - self.pos < want:
            raw = self._handle.read(CHUNK)
            try:
                self.buf += self._utf8.decode(raw, final=not raw)
            except UnicodeDecodeError:
                raise Unreadable("not UTF-8 text") from None
            if not raw:
                self._eof = True
                break
        return True

    def line(self, pos: int | None = None) -> int:
        """The line (from 1) in the file of ``pos`` (default: the read position)."""
        at = self.pos if pos is None else pos
        if at >= self._mark:
            self._mark_line += self.buf.count("\n", self._mark, at)
        else:
            self._mark_line -= self.buf.count("\n", at, self._mark)
        self._mark = at
        return self._mark_line

    def where(self, pos: int) -> str:
        newline = self.buf.rfind("\n", 0, pos)
        column = pos - newline if newline >= 0 else self._column0 + pos + 1
        return f"line {self.line(pos)} column {column}"

    def peek(self) -> str:
        """The next non-blank character ('' at the end), not consumed."""
        while True:
            blank = _WS.match(self.buf, self.pos)
            self.pos = blank.end() if blank else self.pos
            if self.pos < len(self.buf) or not self.more(1):
                return self.buf[self.pos:self.pos + 1]

    def take(self, allowed: str) -> str:
        char = self.peek()
        if not char or char not in allowed:
            expected = " or ".join(repr(c) for c in allowed)
            raise Unreadable(f"not JSON (Expecting {expected} at {self.where(self.pos)})")
        self.pos += 1
        return char

    def value(self) -> Any:
        """The next value within the bounds; one over them is skipped and raises OverBounds."""
        self.peek()
        try:
            value, end = self._decode_at(_STRICT)
        except (OverBounds, RecursionError) as exc:
            reason = str(exc) if isinstance(exc, OverBounds) else f"nested deeper than {MAX_DEPTH}"
            self.pos = self._end_of_value()
            raise OverBounds(reason) from None
        start, self.pos = self.pos, end
        if too_deep(self.buf[start:end]):
            raise OverBounds(f"nested deeper than {MAX_DEPTH}")
        return value

    def _decode_at(self, decoder: json.JSONDecoder) -> tuple[Any, int]:
        """The value at ``pos`` and where it ends; ``pos`` stays at its start."""
        while True:
            try:
                value, end = decoder.raw_decode(self.buf, self.pos)
            except json.JSONDecodeError as exc:
                if self._read_on():
                    continue
                raise Unreadable(f"not JSON ({exc.msg} at {self.where(exc.pos)})") from None
            # A number cut at the end of what is read ("-0" of "-0.5") may go on.
            if (self.buf[self.pos] in _NUMBER_START and self.buf[end:end + 1] in _NUMBER_ON
                    and self._read_on()):
                continue
            return value, end

    def _read_on(self) -> bool:
        """Read more for the value at ``pos``: False at the end of the file."""
        held = len(self.buf) - self.pos
        if held > MAX_RECORD_BYTES:
            raise Unreadable(f"a value at {self.where(self.pos)} is longer than "
                          f"{MAX_RECORD_BYTES} bytes; the rest of the file was not read")
        return self.more(held * 2 + 1)

    def _end_of_value(self) -> int:
        """Where the value at ``pos`` ends, for one the strict decoder rejected."""
        try:
            return self._decode_at(_LENIENT)[1]
        except RecursionError:
            pass
        while True:  # deeper than the decoder goes: match brackets, strings skipped
            depth = 0
            for token in _TOKEN.finditer(self.buf, self.pos):
                run = len(token[0])
                if token[0][0] in "[{":
                    depth += run
                elif token[0][0] in "]}":
                    depth -= run
                    if depth <= 0:
                        return token.end() + depth  # a run of closers may go on past it
            if not self._read_on():
                raise Unreadable(f"not JSON (unterminated value at {self.where(self.pos)})")
