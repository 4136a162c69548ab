"""Shared by every tier: each test starts from the same logging set-up, whatever an earlier
in-process command line (``-v``, ``-q``, ``--log-format``, ``serve``) configured."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from bhi_fhir import logs

# uvicorn's too: serve hands uvicorn a logging configuration that tests apply with dictConfig.
_LOGGERS = ("", *logs.PACKAGE_LOGGERS, *logs.URL_LOGGERS, "uvicorn", "uvicorn.error",
            "uvicorn.access")


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    saved = {
        name: (logging.getLogger(name).handlers[:], logging.getLogger(name).level,
               logging.getLogger(name).propagate)
        for name in _LOGGERS
    }
    yield
    for name, (handlers, level, propagate) in saved.items():
        logger = logging.getLogger(name)
        if name:
            logger.handlers[:] = handlers
        else:  # the root: pytest's own capture handlers come and go per phase; drop only ours
            for handler in logger.handlers[:]:
                if isinstance(handler, logs.StderrHandler) and handler not in handlers:
                    logger.removeHandler(handler)
        logger.setLevel(level)
        logger.propagate = propagate
