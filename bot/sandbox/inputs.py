"""A person's entries in a modal, as Slack's client checks them and sends them to the app.

Slack's client refuses to submit a modal whose required input is empty, whose number is
not a number or outside the element's bounds, or whose text is longer or shorter than
allowed; the person sees the error under the input and the app hears nothing. What it
sends, `view.state.values`, holds every input block, each in its element's own shape
(`value`, `selected_option`, `selected_users`, `selected_date_time`, ...), unfilled
inputs as null. The built-in Slack does the same (`submission_state`), so an app is never
handed a submission Slack would not have sent.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

REQUIRED = "Please complete this required field."
TEXT_SHAPES = {
    "plain_text_input": "value",
    "number_input": "value",
    "email_text_input": "value",
    "url_text_input": "value",
    "users_select": "selected_user",
    "conversations_select": "selected_conversation",
    "channels_select": "selected_channel",
    "datepicker": "selected_date",
    "timepicker": "selected_time",
}
LIST_SHAPES = {
    "multi_users_select": "selected_users",
    "multi_conversations_select": "selected_conversations",
    "multi_channels_select": "selected_channels",
}
OPTION_ELEMENTS = frozenset({"static_select", "radio_buttons"})
OPTIONS_ELEMENTS = frozenset({"multi_static_select", "checkboxes"})


def submission_state(
    view: dict[str, Any], values: dict[str, dict[str, Any]]
) -> tuple[dict[str, Any], dict[str, str]]:
    """`view.state.values` for the person's `values`, and the errors Slack's client would
    show instead of sending (block id -> message). A value for a block or action the
    view does not have is a mistake of the caller: `ValueError`."""
    inputs = {
        str(block.get("block_id", "")): block
        for block in view.get("blocks", [])
        if block.get("type") == "input"
    }
    for block_id, actions in values.items():
        block = inputs.get(block_id)
        if block is None:
            raise ValueError(f"the view has no input block {block_id!r}")
        unknown = set(actions) - {block["element"].get("action_id")}
        if unknown:
            raise ValueError(f"block {block_id!r} has no input {sorted(unknown)}")
    state: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for block_id, block in inputs.items():
        element = block["element"]
        action = str(element.get("action_id", ""))
        given = values.get(block_id, {}).get(action)
        entry, error = _entry(element, given)
        if error is None and _empty(entry) and not block.get("optional", False):
            error = REQUIRED
        if error is not None:
            errors[block_id] = error
        state[block_id] = {action: entry}
    return state, errors


def _empty(entry: dict[str, Any]) -> bool:
    return all(value in (None, "", []) for key, value in entry.items() if key != "type")


def _entry(element: dict[str, Any], given: Any) -> tuple[dict[str, Any], str | None]:
    kind = str(element.get("type", ""))
    entry: dict[str, Any] = {"type": kind}
    if kind in TEXT_SHAPES:
        if isinstance(given, list | tuple):
            raise ValueError(f"a {kind} holds one value, not a list")
        text = None if given in (None, "") else str(given)
        entry[TEXT_SHAPES[kind]] = text
        if text is None:
            return entry, None
        if kind == "number_input":
            return entry, _number_error(element, text)
        if kind == "plain_text_input":
            return entry, _length_error(element, text)
        return entry, None
    if kind in LIST_SHAPES:
        chosen = [str(v) for v in _listed(given)]
        entry[LIST_SHAPES[kind]] = chosen
        limit = element.get("max_selected_items")
        if limit and len(chosen) > int(limit):
            return entry, f"Select at most {limit}."
        return entry, None
    if kind == "datetimepicker":
        if given in (None, ""):
            entry["selected_date_time"] = None
            return entry, None
        try:
            entry["selected_date_time"] = int(given)
        except (TypeError, ValueError):
            raise ValueError(f"a datetimepicker takes a Unix time, not {given!r}") from None
        return entry, None
    if kind in OPTION_ELEMENTS or kind in OPTIONS_ELEMENTS:
        offered = {str(o["value"]): o for o in _options(element)}
        chosen = [str(v) for v in _listed(given)]
        for value in chosen:
            if value not in offered:
                raise ValueError(f"the {kind} offers no option {value!r}")
        if kind in OPTION_ELEMENTS:
            if len(chosen) > 1:
                raise ValueError(f"a {kind} takes one option")
            entry["selected_option"] = offered[chosen[0]] if chosen else None
        else:
            entry["selected_options"] = [offered[v] for v in chosen]
        return entry, None
    raise ValueError(f"the built-in Slack cannot fill a {kind!r} input")


def _listed(given: Any) -> list[Any]:
    if given in (None, ""):
        return []
    return list(given) if isinstance(given, list | tuple) else [given]


def _options(element: dict[str, Any]) -> list[dict[str, Any]]:
    options = list(element.get("options", []))
    for group in element.get("option_groups", []):
        options.extend(group.get("options", []))
    return options


def _number_error(element: dict[str, Any], text: str) -> str | None:
    decimal = bool(element.get("is_decimal_allowed"))
    try:
        number = Decimal(text)
    except InvalidOperation:
        return "Enter a number." if decimal else "Enter a whole number."
    if not number.is_finite() or (not decimal and number != number.to_integral_value()):
        return "Enter a number." if decimal else "Enter a whole number."
    low, high = element.get("min_value"), element.get("max_value")
    if (low is not None and number < Decimal(str(low))) or (
        high is not None and number > Decimal(str(high))
    ):
        if low is not None and high is not None:
            return f"Enter a number between {low} and {high}."
        if low is not None:
            return f"Enter a number of at least {low}."
        return f"Enter a number of at most {high}."
    return None


def _length_error(element: dict[str, Any], text: str) -> str | None:
    low, high = element.get("min_length"), element.get("max_length")
    if high is not None and len(text) > int(high):
        return f"Use at most {high} characters."
    if low is not None and len(text) < int(low):
        return f"Use at least {low} characters."
    return None
