"""Logging: plain text or JSON lines, every line carrying the workflow id it concerns."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

from workflows.observer import WorkflowIdFilter

TEXT = "%(asctime)s %(levelname)s %(name)s [%(workflow_id)s] %(message)s"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "workflow_id": getattr(record, "workflow_id", "") or None,
        }
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line)


def configure_logging(level: str, fmt: str = "text") -> None:
    handler = logging.StreamHandler()
    handler.addFilter(WorkflowIdFilter())
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # APScheduler logs every sweep at INFO.
    logging.getLogger("apscheduler").setLevel(max(logging.WARNING, root.level))
