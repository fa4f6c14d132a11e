"""Wait conditions: handlers and the callback managers that make them real."""

from __future__ import annotations

from callbacks.controls import ControlsManager, RequesterControl
from callbacks.timeout import Timeout, TimeoutManager
from workflows import CallbackManager

__all__ = ["Timeout", "TimeoutManager", "default_callbacks"]


def default_callbacks() -> dict[str, CallbackManager]:
    """Managers for the wait conditions that need nothing but the engine (a
    `RequesterControl` needs nothing at all: the request card shows its buttons)."""
    return {Timeout.type: TimeoutManager(), RequesterControl.type: ControlsManager()}
