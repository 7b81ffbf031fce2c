"""Structured logs: one JSON object a line on stderr, quiet (warnings) unless asked."""

from __future__ import annotations

import json
import logging
import sys

from models.redaction import mask_log

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out = {"ts": round(record.created, 3), "level": record.levelname.lower(), "logger": record.name, "msg": record.getMessage()}
        out.update({k: v for k, v in vars(record).items() if k not in _STANDARD})
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        # Card numbers never reach a log line, whatever CALMLINE_REDACT says.
        return mask_log(json.dumps(out, default=str))


def setup(level: str = "warning") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger("calmline")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False
    # uvicorn's access log would print every ?token= query string: keep it off.
    logging.getLogger("uvicorn.access").disabled = True
