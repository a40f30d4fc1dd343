"""structlog configuration: console output in development, JSON lines elsewhere.

Standard-library loggers (uvicorn, psycopg, ...) are routed through the same processors, so
every line a service prints has one format. The request id of the current request is added
to every line logged while it is handled (``request_id``; a consumer's lines carry the id of
the request that raised the event under the same key), and with tracing on, the trace id
(``trace_id``). Phone numbers never reach the output: anything
shaped like an E.164 number, in any field or exception text, is masked (``+91******7373``).
"""

from __future__ import annotations

import logging
import re
import sys
from typing import Any, TextIO

import orjson
import structlog
from asgi_correlation_id.context import correlation_id
from structlog.typing import EventDict

from shared import tracing

_E164 = re.compile(r"\+[1-9]\d{7,14}")


def mask_phone(e164: str) -> str:
    """``+917373737373`` → ``+91******7373``."""
    return e164[:3] + "*" * max(0, len(e164) - 7) + e164[-4:]


def mask_phone_numbers(value: Any) -> Any:
    """``value`` with every E.164-shaped number in it masked (strings, dicts, lists)."""
    if isinstance(value, str):
        return _E164.sub(lambda m: mask_phone(m.group()), value)
    if isinstance(value, dict):
        return {k: mask_phone_numbers(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(mask_phone_numbers(v) for v in value)
    return value


def _mask_phone_numbers(_: Any, __: str, event_dict: EventDict) -> EventDict:
    # Every log line passes here: the plain values (no "+", numbers) are left untouched
    # without a call. The dict is the line's own (structlog builds one per call).
    for key, value in event_dict.items():
        if isinstance(value, str):
            if "+" in value:
                event_dict[key] = mask_phone_numbers(value)
        elif isinstance(value, dict | list | tuple):
            event_dict[key] = mask_phone_numbers(value)
    return event_dict


def _add_request_id(_: Any, __: str, event_dict: EventDict) -> EventDict:
    request_id = correlation_id.get()
    if request_id and "request_id" not in event_dict:
        event_dict["request_id"] = request_id
    return event_dict


def _add_trace_id(_: Any, __: str, event_dict: EventDict) -> EventDict:
    """The trace of the span the line is written in, when tracing is on."""
    trace_id = tracing.current_trace_id()
    if trace_id:
        event_dict.setdefault("trace_id", trace_id)
    return event_dict


class _NamedWriteLogger(structlog.WriteLogger):
    """The console's logger, with the ``name`` add_logger_name reads (the JSON one,
    BytesLogger, has its own)."""

    def __init__(self, file: TextIO, *, name: str | None) -> None:
        super().__init__(file)
        self.name = name


def configure_logging(service: str, *, level: str = "INFO", json: bool = False) -> None:
    """Our own log lines go straight from structlog to stderr (a level check that costs
    nothing below the level, the processors, one write): no stdlib ``LogRecord`` and
    handler on the way, which doubled the cost of the access log line every request
    writes. Standard-library loggers (uvicorn, psycopg, aiohttp, ...) reach the same stream
    through a ``ProcessorFormatter`` with the same processors, so every line has one format.
    """

    def add_service(_: Any, __: str, event_dict: EventDict) -> EventDict:
        event_dict.setdefault("service", service)
        return event_dict

    shared_processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        add_service,
        structlog.processors.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _add_request_id,
        _add_trace_id,
        structlog.processors.StackInfoRenderer(),
        # Tracebacks become text here, so the masking below reaches them too.
        structlog.processors.format_exc_info,
    ]
    stream = sys.stderr
    renderer: Any
    logger_factory: Any
    if json:
        renderer = structlog.processors.JSONRenderer()
        fast_renderer: Any = structlog.processors.JSONRenderer(serializer=orjson.dumps)

        def logger_factory(*args: Any) -> structlog.BytesLogger:
            return structlog.BytesLogger(stream.buffer, name=args[0] if args else None)

    else:
        renderer = fast_renderer = structlog.dev.ConsoleRenderer(colors=stream.isatty())

        def logger_factory(*args: Any) -> structlog.WriteLogger:
            return _NamedWriteLogger(stream, name=args[0] if args else None)

    structlog.configure(
        processors=[*shared_processors, _mask_phone_numbers, fast_renderer],
        logger_factory=logger_factory,
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared_processors,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            _mask_phone_numbers,
            renderer,
        ],
    )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # uvicorn installs its own handlers; route its loggers through ours instead.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        uv_logger = logging.getLogger(name)
        uv_logger.handlers[:] = []
        uv_logger.propagate = True
    # Our middleware logs every request; uvicorn's access log would say it twice.
    logging.getLogger("uvicorn.access").disabled = True
