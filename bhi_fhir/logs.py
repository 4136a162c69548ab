"""Logging for the command line and the app, set up once per process.

An operator reads the package's warnings (a retried request, a scope the token lacks, a
notification queue overflowing) on stderr; ``-v`` adds the run's events (INFO), ``-vv`` the
per-request timings (DEBUG), ``-q`` leaves errors only. The format (``--log-format``) is
``auto`` by default: Rich's console lines for a person at a terminal, one JSON object per line
(time, level, logger, message) for an unattended run (stderr not a terminal: a scheduler, a
pipe, a container) and for ``serve``, its own and uvicorn's lines alike. ``text`` and ``json``
force one or the other.

The package's log lines name resource types, statuses and counts — never ids, tokens or
values. The HTTP libraries' loggers stay at WARNING whatever the verbosity: their lines carry
URLs, and URLs carry patient ids in search queries and OAuth codes on the callback.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, TextIO

from rich.console import Console
from rich.logging import RichHandler

PACKAGE_LOGGERS = ("bhi_fhir", "smart_app")
URL_LOGGERS = ("httpx", "httpcore")  # their lines carry URLs: ids and OAuth codes


class LogFormat(StrEnum):
    auto = "auto"  # text at a terminal, JSON lines otherwise and for serve
    text = "text"
    json = "json"


def resolve(fmt: LogFormat, *, service: bool = False) -> LogFormat:
    """``auto`` made concrete: JSON lines for a service (``serve``) and whenever stderr is not a
    terminal (nobody reads it as it is written), text for a person at a terminal."""
    if fmt is not LogFormat.auto:
        return fmt
    return LogFormat.json if service or not sys.stderr.isatty() else LogFormat.text


TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def level_for(verbosity: int) -> int:
    """The package loggers' level: 0 → WARNING, 1 (-v) → INFO, 2+ → DEBUG, -1 (-q) → ERROR."""
    if verbosity < 0:
        return logging.ERROR
    return (logging.WARNING, logging.INFO)[verbosity] if verbosity < 2 else logging.DEBUG


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``time`` (UTC, ISO 8601), ``level``, ``logger``, ``message``
    and, for an exception, ``exception`` (its traceback)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


class StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is at the time of the record (a test runner or a
    daemon may replace it after set-up), never to a stream closed since."""

    def __init__(self) -> None:
        super().__init__()

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, value: TextIO) -> None:
        pass  # always the current sys.stderr


class RichStderrHandler(RichHandler):
    """Rich's console lines (time, level, message) on the current ``sys.stderr``: for a person
    at a terminal. Messages are printed as they are, never read as markup or emoji codes."""

    def __init__(self) -> None:
        super().__init__(console=Console(stderr=True), show_path=False, markup=False,
                         rich_tracebacks=False, omit_repeated_times=False)


def formatter(fmt: LogFormat) -> logging.Formatter:
    return JsonFormatter() if fmt is LogFormat.json else logging.Formatter(TEXT_FORMAT)


def handler_for(fmt: LogFormat) -> logging.Handler:
    """JSON lines, or text: Rich's lines at a terminal, plain ``TEXT_FORMAT`` lines when stderr
    is a file or a pipe (``--log-format text`` of an unattended run)."""
    if fmt is LogFormat.text and sys.stderr.isatty():
        return RichStderrHandler()
    handler = StderrHandler()
    handler.setFormatter(formatter(fmt))
    return handler


_chosen: dict[str, Any] = {"verbosity": 0, "format": LogFormat.text}


def chosen() -> tuple[int, LogFormat]:
    """The verbosity and format asked for by the last :func:`configure` (``serve`` hands them
    on; ``auto`` still unresolved: a service resolves it to JSON)."""
    return _chosen["verbosity"], _chosen["format"]


def configure(verbosity: int = 0, fmt: LogFormat = LogFormat.text) -> None:
    """Send log records to stderr at the verbosity's level for the package's loggers (WARNING
    for everyone else, the URL loggers included). Calling it again replaces the handler it
    installed before: one set-up per process, however many commands a test runs."""
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, StderrHandler | RichStderrHandler)]:
        root.removeHandler(old)
    _chosen.update(verbosity=verbosity, format=fmt)
    root.addHandler(handler_for(resolve(fmt)))
    if root.level == logging.NOTSET or root.level > logging.WARNING:
        root.setLevel(logging.WARNING)
    for name in PACKAGE_LOGGERS:
        package = logging.getLogger(name)
        # The default (WARNING) is the root's: left unset, so a host that logs more (a test
        # harness, an embedding service) still gets the package's records.
        package.setLevel(logging.NOTSET if verbosity == 0 else level_for(verbosity))
        package.handlers.clear()  # e.g. left by an earlier serve's uvicorn set-up
        package.propagate = True
    quiet_url_loggers()


def quiet_url_loggers() -> None:
    """httpx logs every URL at INFO and httpcore every header event at DEBUG; keep both at
    WARNING (the package logs method, resource type and status itself)."""
    for name in URL_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


def uvicorn_config(base: dict[str, Any], level: int, fmt: LogFormat) -> dict[str, Any]:
    """uvicorn's logging configuration (``base``, its ``LOGGING_CONFIG``) with the package
    loggers added at ``level`` on stderr and, for JSON (``auto`` included: a service's log is
    read by a collector), uvicorn's own lines as JSON too."""
    fmt = resolve(fmt, service=True)
    formatters: dict[str, Any] = {**base["formatters"]}
    if fmt is LogFormat.json:
        json_formatter = {"()": f"{__name__}.JsonFormatter"}
        formatters = {name: json_formatter for name in formatters}
        formatters["app"] = json_formatter
    else:
        formatters["app"] = {"format": TEXT_FORMAT}
    return {
        **base,
        "formatters": formatters,
        "handlers": {
            **base["handlers"],
            "app": {"formatter": "app", "class": "logging.StreamHandler",
                    "stream": "ext://sys.stderr"},
        },
        "loggers": {
            **base["loggers"],
            **{
                name: {"handlers": ["app"], "level": logging.getLevelName(level),
                       "propagate": False}
                for name in PACKAGE_LOGGERS
            },
        },
    }
