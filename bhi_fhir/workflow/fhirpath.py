"""FHIRPath expressions for the protocol: compiled once, evaluated many times. Pure.

fhirpathpy is a tree-walking interpreter: parsing costs milliseconds and even a compiled
expression costs ~100 µs. Three things keep the engine fast without changing any result:

1. **Compile once, cache by text** (:func:`expression`): every PlanDefinition condition and
   dynamicValue is parsed once per process.
2. **Fast paths** for the two shapes most dynamicValues take: a literal (``'requested'``,
   ``7``, ``true``) is folded at compile time; a plain member path (``%facts.patient``,
   ``%item.source``) is walked directly over the JSON, with FHIRPath's flattening semantics.
3. **Memoisation on inputs**: an expression reads only the variables and member chains that
   appear in its text (``%facts.latest.phq2``, ``%plan.screening.phq2_positive``). The result is
   cached by the JSON of those values, so patients in the same situation share one
   evaluation; the key of each chain is itself computed once per variable object.
   Expressions that could read anything else (backtick names, ``today()``, ``now()``,
   ``%context``/``%resource``) are never memoised. ``$this`` inside ``where()``
   only sees items of a chain that is part of the key.

Results are plain Python values: FHIRPath decimals become ``int``/``float``, dates and times
become ISO strings.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any, Final

import fhirpathpy
from antlr4 import CommonTokenStream, InputStream, Token
from antlr4.error.ErrorListener import ErrorListener
from fhirpathpy.parser.generated.FHIRPathLexer import FHIRPathLexer
from fhirpathpy.parser.generated.FHIRPathParser import FHIRPathParser

__all__ = ["Expression", "ExpressionError", "clear_caches", "expression", "truthy"]

Context = Mapping[str, Any]

_IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
_FIRST = "first()"  # a path segment: the first item of the collection so far
_SEGMENT = rf"(?:\.first\(\)|\.{_IDENT})"
_SIMPLE_PATH = re.compile(rf"%({_IDENT})({_SEGMENT}*)")
_PATH_TEST = re.compile(rf"%({_IDENT})((?:\.{_IDENT})*)\.(exists|empty|not)\(\)")
_CHAIN = re.compile(rf"%({_IDENT})({_SEGMENT}*)(\s*\()?")
# `%a.b.where(<criteria>) | %c.where(<criteria>) | ...` with criteria over the item's own
# members and %-chains only (no functions, no $this): filtered item by item (see _Filter).
_WHERE = re.compile(rf"%({_IDENT})((?:\.{_IDENT})*)\.where\(([^()$`]*)\)")
_BARE = re.compile(rf"(?<![%.\w])({_IDENT})")
_KEYWORDS = frozenset(
    {"and", "or", "xor", "implies", "div", "mod", "in", "contains", "is", "as", "true", "false"}
)
_STRING = re.compile(r"'((?:[^'\\]|\\.)*)'")
_INTEGER = re.compile(r"-?\d+")
_UNSAFE_FOR_MEMO = re.compile(r"`|today\(\)|now\(\)|timeOfDay\(\)|%context|%resource|%rootResource")
_MEMO_LIMIT: Final = 200_000


class ExpressionError(ValueError):
    """An expression that does not parse or fails to evaluate; names the expression."""


class _Collect(ErrorListener):  # type: ignore[misc]
    def __init__(self) -> None:
        self.problems: list[str] = []

    def syntaxError(
        self, recognizer: Any, symbol: Any, line: int, column: int, msg: str, e: Any
    ) -> None:
        self.problems.append(f"column {column + 1}: {msg}")


def _syntax_problems(text: str) -> list[str]:
    """fhirpathpy's parser recovers from syntax errors silently; check the grammar strictly."""
    listener = _Collect()
    lexer = FHIRPathLexer(InputStream(text))
    lexer.removeErrorListeners()
    lexer.addErrorListener(listener)
    tokens = CommonTokenStream(lexer)
    parser = FHIRPathParser(tokens)
    parser.removeErrorListeners()
    parser.addErrorListener(listener)
    parser.expression()
    if not listener.problems and tokens.LA(1) != Token.EOF:
        listener.problems.append(f"unexpected {tokens.LT(1).text!r}")
    return listener.problems


def _plain(value: Any) -> Any:
    if isinstance(value, bool | int | float | str | type(None)):
        return value
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return str(value)  # FP_DateTime, FP_Time, FP_Quantity: their FHIRPath string form


_SCALARS = (str, int, float, bool)


def _key(values: list[Any]) -> Any:
    """A hashable stand-in for ``values``: equal keys only for equal values (the type is part
    of ``repr``, so 1, 1.0, True and '1' differ); unequal orderings merely miss the cache."""
    if all(type(v) in _SCALARS for v in values):
        return (len(values), *((type(v).__name__, v) for v in values))
    return repr(values)


def _walk(root: Any, segments: tuple[str, ...]) -> list[Any]:
    """``%var.a.b`` over JSON, as FHIRPath navigates it: collections flatten, missing is empty.
    A ``first()`` segment keeps the first item of the collection so far."""
    if type(root) is dict:  # the usual case: a chain of objects, no collection on the way
        node: Any = root
        for position, segment in enumerate(segments):
            if segment == _FIRST:
                continue  # one object is a collection of one: first() is itself
            value = node.get(segment)
            if value is None:
                return []
            if type(value) is not dict:
                return _walk_all(value, segments[position + 1 :])
            node = value
        return [node]
    return _walk_all(root, segments)


def _walk_all(root: Any, segments: tuple[str, ...]) -> list[Any]:
    nodes: list[Any] = root if isinstance(root, list) else ([] if root is None else [root])
    for segment in segments:
        if segment == _FIRST:
            nodes = nodes[:1]
            continue
        following: list[Any] = []
        for node in nodes:
            if isinstance(node, dict):
                value = node.get(segment)
                if isinstance(value, list):
                    following.extend(value)
                elif value is not None:
                    following.append(value)
        nodes = following
    return nodes


class _NotSimple(Exception):
    """A criteria result that is not a plain true/false/empty: evaluate the whole expression."""


class _Filter:
    """One ``%var.a.b.where(criteria)`` term, filtered item by item.

    The criteria reads only the item's own members (bare names) and ``%`` chains, so its
    result is memoised by those values: patients whose latest PHQ-9 has the same total and age
    share one evaluation, whatever their response ids (which the item also carries).
    """

    __slots__ = ("_compiled", "_deps", "_memo", "_names", "segments", "variable")

    def __init__(self, variable: str, segments: tuple[str, ...], criteria: str | None) -> None:
        self.variable = variable
        self.segments = segments
        self._compiled: Callable[..., list[Any]] | None = None
        self._memo: dict[tuple[Any, ...], bool] = {}
        self._names: tuple[str, ...] = ()
        self._deps: tuple[tuple[str, tuple[str, ...]], ...] = ()
        if criteria is None:
            return  # a plain path in a union: every item is kept
        outside = _STRING.sub("''", criteria)
        self._names = tuple(dict.fromkeys(n for n in _BARE.findall(outside) if n not in _KEYWORDS))
        self._deps = tuple(
            dict.fromkeys(
                (m.group(1), tuple(filter(None, m.group(2).split("."))))
                for m in _CHAIN.finditer(outside)
            )
        )
        if any(m.group(3) for m in _CHAIN.finditer(outside)):
            raise _NotSimple  # a function call on a %-chain: not a plain member chain
        self._compiled = fhirpathpy.compile(criteria)

    def keep(self, item: Any, variables: Context) -> bool:
        if self._compiled is None:
            return True
        key = (
            *(_key(_walk(item, (name,))) for name in self._names),
            *(_key(_walk(variables.get(var), segments)) for var, segments in self._deps),
        )
        found = self._memo.get(key)
        if found is None:
            result = _plain(self._compiled(item, dict(variables)))
            if result not in ([], [True], [False]):
                raise _NotSimple
            found = result == [True]
            if len(self._memo) >= _MEMO_LIMIT:
                self._memo.clear()
            self._memo[key] = found
        return found


class Expression:
    """One compiled ``text/fhirpath`` expression over ``%``-variables."""

    __slots__ = ("_compiled", "_constant", "_deps", "_filters", "_memo", "_path", "_test", "text")

    def __init__(self, text: str) -> None:
        self.text = text.strip()
        self._constant: list[Any] | None = None
        self._path: tuple[str, tuple[str, ...]] | None = None
        self._test: str | None = None  # exists / empty / not applied to ``_path``
        self._compiled: Callable[..., list[Any]] | None = None
        self._deps: tuple[tuple[str, tuple[str, ...]], ...] | None = None
        self._memo: dict[tuple[Any, ...], list[Any]] = {}
        self._filters: tuple[_Filter, ...] | None = None
        literal = self._literal(self.text)
        if literal is not None:
            self._constant = literal
            return
        simple = _SIMPLE_PATH.fullmatch(self.text)
        if simple:
            self._path = (simple.group(1), tuple(filter(None, simple.group(2).split("."))))
            return
        test = _PATH_TEST.fullmatch(self.text)
        if test:
            self._path = (test.group(1), tuple(filter(None, test.group(2).split("."))))
            self._test = test.group(3)
            if self._test != "not":
                return
        problems = _syntax_problems(self.text)
        if problems:
            raise ExpressionError(f"cannot parse FHIRPath {self.text!r}: {'; '.join(problems)}")
        try:
            self._compiled = fhirpathpy.compile(self.text)
        except Exception as exc:  # fhirpathpy raises bare Exceptions from its parser
            raise ExpressionError(f"cannot parse FHIRPath {self.text!r}: {exc}") from None
        if not _UNSAFE_FOR_MEMO.search(self.text):
            self._filters = self._where_terms()
            deps = []
            for match in _CHAIN.finditer(self._outside_strings()):
                segments = tuple(filter(None, match.group(2).split(".")))
                if match.group(3) and segments:
                    segments = segments[:-1]  # `.where(` / `.exists(`: the chain ends before it
                deps.append((match.group(1), segments))
            self._deps = tuple(dict.fromkeys(deps))

    def _where_terms(self) -> tuple[_Filter, ...] | None:
        """The terms of ``%a.where(c) | %b.where(d) | ...`` or of a union of plain paths
        ``%a.b | %c.first().d`` (a filter that keeps everything), or None for other shapes."""
        terms = []
        parts = self.text.split("|")
        for part in parts:
            match = _WHERE.fullmatch(part.strip())
            path = _SIMPLE_PATH.fullmatch(part.strip()) if len(parts) > 1 else None
            if match is None and path is None:
                return None
            found = match or path
            assert found is not None
            segments = tuple(filter(None, found.group(2).split(".")))
            try:
                terms.append(_Filter(found.group(1), segments, match.group(3) if match else None))
            except Exception:  # criteria fhirpathpy cannot compile alone, or not simple
                return None
        return tuple(terms)

    def _filter(self, filters: tuple[_Filter, ...], variables: Context) -> list[Any] | None:
        """The where-union evaluated item by item, or None when it must be evaluated whole."""
        found: list[Any] = []
        try:
            for term in filters:
                if term.variable not in variables:
                    return None
                for item in _walk(variables[term.variable], term.segments):
                    if term.keep(item, variables):
                        found.append(item)
        except _NotSimple:
            return None
        except Exception:  # an evaluation error: let the whole expression report it
            return None
        if len(filters) > 1:  # `|` is a union: duplicates (by equality) appear once
            unique: list[Any] = []
            for item in found:
                if not any(item == seen for seen in unique):
                    unique.append(item)
            return unique
        return found

    @staticmethod
    def _literal(text: str) -> list[Any] | None:
        if _STRING.fullmatch(text):
            return [text[1:-1].replace("\\'", "'").replace("\\\\", "\\")]
        if _INTEGER.fullmatch(text):
            return [int(text)]
        if text in ("true", "false"):
            return [text == "true"]
        return None

    def _outside_strings(self) -> str:
        return _STRING.sub("''", self.text)

    @property
    def memoised(self) -> bool:
        return self._deps is not None

    def evaluate(self, variables: Context) -> list[Any]:
        """The result collection. ``variables`` are the ``%`` variables (not modified)."""
        if self._constant is not None:
            return list(self._constant)
        if self._path is not None:
            name, segments = self._path
            if name not in variables:
                raise ExpressionError(f"{self.text!r}: unknown variable %{name}")
            found = _walk(variables[name], segments)
            if self._test is None:
                return found
            if self._test == "exists":
                return [bool(found)]
            if self._test == "empty":
                return [not found]
            if not found:  # not(): empty stays empty, a single boolean is negated
                return []
            if len(found) == 1 and isinstance(found[0], bool):
                return [not found[0]]
        if self._filters is not None:
            filtered = self._filter(self._filters, variables)
            if filtered is not None:
                return filtered
        key: tuple[Any, ...] | None = None
        deps = self._deps
        if deps is not None:
            parts = []
            known_keys = _DEP_KEYS
            for dep in deps:
                root = variables.get(dep[0])
                known = known_keys.get(dep)
                if known is not None and known[0] is root:
                    parts.append(known[1])
                else:
                    part = _key(_walk(root, dep[1]))
                    known_keys[dep] = (root, part)
                    parts.append(part)
            key = tuple(parts)
            hit = self._memo.get(key)
            if hit is not None:
                return hit.copy()
        assert self._compiled is not None
        try:
            result = _plain(self._compiled({}, dict(variables)))
        except Exception as exc:
            raise ExpressionError(f"cannot evaluate FHIRPath {self.text!r}: {exc}") from None
        if key is not None:
            if len(self._memo) >= _MEMO_LIMIT:
                self._memo.clear()
            self._memo[key] = result
        return list(result)

    def first(self, variables: Context) -> Any:
        result = self.evaluate(variables)
        return result[0] if result else None


_CACHE: dict[str, Expression] = {}
# The key of one dependency (``%facts.latest.phq9``) for the variable object it was computed
# from. Many expressions share a dependency (engage, consent and enroll all read
# ``%facts.latest.*`` and ``%plan.screening.*``), so it is computed once per variable object.
# The entry holds that object, so an identity match can only be the very same object; inputs
# are never modified while the engine runs (tests/workflow/test_differential.py checks it).
# Bounded by the number of distinct dependencies in the protocol.
_DEP_KEYS: dict[tuple[str, tuple[str, ...]], tuple[Any, Any]] = {}


def expression(text: str) -> Expression:
    """The compiled expression for ``text``, compiled on first use and cached."""
    found = _CACHE.get(text)
    if found is None:
        found = _CACHE[text] = Expression(text)
    return found


def clear_caches() -> None:
    _CACHE.clear()
    _DEP_KEYS.clear()


def truthy(result: list[Any]) -> bool:
    """A condition holds when it yields exactly ``true`` (FHIRPath: empty is not true)."""
    return len(result) == 1 and result[0] is True
