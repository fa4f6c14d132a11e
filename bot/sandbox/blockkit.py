"""Block Kit checked as Slack checks it, so what the built-in Slack takes, Slack takes.

Every payload is parsed with slack_sdk's own models (`Block.parse`, `View`) and every object
in it is checked by the model's `validate_json()`. Slack also refuses what the models let
through, so this refuses it too: a block type or element the models do not know, a property
the model does not have ("invalid additional property"), a string where an object belongs,
mrkdwn where only plain_text is allowed, empty texts and lists, duplicate block IDs, and the
limits below that the models do not encode.
Messages name the offending part with Slack's `[json-pointer:...]`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from slack_sdk.errors import SlackObjectFormationError
from slack_sdk.models.basic_objects import EMPTY_ALLOWED_TYPE_AND_PROPERTY_LIST, JsonObject
from slack_sdk.models.blocks import (
    Block,
    ButtonElement,
    ContextBlock,
    HeaderBlock,
    InputBlock,
    InputInteractiveElement,
    Option,
    OptionGroup,
    PlainTextInputElement,
    SectionBlock,
    TextObject,
)
from slack_sdk.models.views import View

MESSAGE_BLOCKS = 50  # a view's 100 is the View model's own check
MESSAGE_TEXT = 40000
CONTEXT_TEXT = 2000
FIELD_TEXT = 2000
INPUT_LENGTH = 3000

# Where Slack takes plain_text only (the models accept any text object there).
PLAIN_ONLY: tuple[tuple[type[JsonObject], tuple[str, ...]], ...] = (
    (HeaderBlock, ("text",)),
    (ButtonElement, ("text",)),
    (InputBlock, ("label", "hint")),
    (InputInteractiveElement, ("placeholder",)),
    (View, ("title", "submit", "close")),
)
# Models with a `to_dict` of their own leave `attributes` empty: their keys, as in a block.
OWN_KEYS: dict[type[JsonObject], frozenset[str]] = {
    Option: frozenset({"text", "value", "description", "url"}),
    OptionGroup: frozenset({"label", "options"}),
}


class BlockKitError(ValueError):
    """`error` is the code Slack answers with; `messages` say what is wrong, where."""

    def __init__(self, error: str, messages: list[str]) -> None:
        super().__init__("; ".join(messages))
        self.error = error
        self.messages = messages

    def body(self) -> dict[str, Any]:
        """Slack's answer: `errors` for blocks, `response_metadata.messages` for both."""
        body: dict[str, Any] = {"ok": False, "error": self.error}
        if self.error.startswith("invalid_blocks"):
            body["errors"] = self.messages
        body["response_metadata"] = {"messages": [f"[ERROR] {m}" for m in self.messages]}
        return body


def check_blocks(blocks: Any, pointer: str = "/blocks") -> None:
    """A message's blocks (chat.postMessage, chat.update, chat.postEphemeral, response_url)."""
    if blocks is None:
        return
    if not isinstance(blocks, list):
        raise BlockKitError(
            "invalid_blocks_format", [f"must provide an array [json-pointer:{pointer}]"]
        )
    problems = list(_blocks(blocks, pointer))
    if len(blocks) > MESSAGE_BLOCKS:
        problems.insert(0, f"no more than {MESSAGE_BLOCKS} items allowed [json-pointer:{pointer}]")
    if problems:
        raise BlockKitError("invalid_blocks", problems)


def check_view(view: Any, kind: str = "modal") -> None:
    """A view of `kind` (`modal` for views.open/update/push, `home` for views.publish)."""
    if not isinstance(view, dict):
        raise BlockKitError("invalid_arguments", ["must provide an object [json-pointer:/view]"])
    problems: list[str] = []
    if view.get("type") != kind:
        problems.append(f"must be {kind} [json-pointer:/view/type]")
    if kind == "modal" and "title" not in view:
        problems.append("missing required field: title [json-pointer:/view]")
    blocks = view.get("blocks")
    inputs = isinstance(blocks, list) and any(
        isinstance(b, dict) and b.get("type") == "input" for b in blocks
    )
    if kind == "modal" and inputs and "submit" not in view:
        problems.append("submit is required when a modal has input blocks [json-pointer:/view]")
    fields = {k: v for k, v in view.items() if k != "blocks"}
    try:
        parsed = View(**fields)
    except Exception as e:  # whatever the model cannot be built from
        problems.append(f"failed to match all allowed schemas ({e}) [json-pointer:/view]")
    else:
        parsed.blocks = None  # type: ignore[assignment]  # checked below, each with its pointer
        problems += _object(parsed, fields, "/view")
    if not isinstance(blocks, list):
        problems.append("must provide an array [json-pointer:/view/blocks]")
    else:
        problems += _blocks(blocks, "/view/blocks")
        if not 0 < len(blocks) <= View.blocks_max_length:
            problems.append(
                f"must contain between 1 and {View.blocks_max_length} blocks "
                "[json-pointer:/view/blocks]"
            )
    if problems:
        raise BlockKitError("invalid_arguments", problems)


def _blocks(blocks: list[Any], pointer: str) -> Iterator[str]:
    seen: set[str] = set()
    for i, raw in enumerate(blocks):
        at = f"{pointer}/{i}"
        if not isinstance(raw, dict):
            yield f"must provide an object [json-pointer:{at}]"
            continue
        try:
            block = Block.parse(raw)
        except Exception as e:  # the model's constructor refused it
            yield f"failed to match all allowed schemas ({e}) [json-pointer:{at}]"
            continue
        if block is None:
            yield f"unsupported type: {raw.get('type')!r} [json-pointer:{at}/type]"
            continue
        yield from _object(block, raw, at)
        block_id = raw.get("block_id")
        if isinstance(block_id, str):
            if block_id in seen:
                yield f"duplicate block_id: {block_id} [json-pointer:{at}/block_id]"
            seen.add(block_id)


def _object(model: JsonObject, raw: dict[str, Any], at: str) -> list[str]:
    """`raw` against the model parsed from it, and everything inside it, recursively."""
    kind = getattr(model, "type", None)
    if "type" in raw and kind is not None and raw["type"] != kind:
        return [f"unsupported type: {raw['type']!r} [json-pointer:{at}/type]"]
    problems: list[str] = []
    try:
        model.validate_json()
    except SlackObjectFormationError as e:
        problems.append(f"{e} [json-pointer:{at}]")
    problems += _missed(model, raw, at)
    allowed = model.attributes or OWN_KEYS.get(type(model), frozenset())
    for key, value in raw.items():
        if key not in allowed:
            problems.append(f"invalid additional property: {key} [json-pointer:{at}]")
            continue
        parsed = getattr(model, key, None)
        if isinstance(parsed, JsonObject):
            problems += _nested(parsed, value, f"{at}/{key}")
        elif isinstance(parsed, list | tuple) and isinstance(value, list):
            for j, (item, raw_item) in enumerate(zip(parsed, value, strict=False)):
                problems += _nested(item, raw_item, f"{at}/{key}/{j}")
    return problems


def _nested(model: Any, raw: Any, at: str) -> list[str]:
    if model is None and isinstance(raw, dict):
        return [f"unsupported type: {raw.get('type')!r} [json-pointer:{at}/type]"]
    if isinstance(model, JsonObject):
        if not isinstance(raw, dict):
            return [f"must provide an object [json-pointer:{at}]"]
        return _object(model, raw, at)
    return []


def _missed(model: JsonObject, raw: dict[str, Any], at: str) -> list[str]:
    """What Slack refuses and the models let through."""
    problems = [
        f"must be plain_text [json-pointer:{at}/{key}/type]"
        for cls, keys in PLAIN_ONLY
        if isinstance(model, cls)
        for key in keys
        if isinstance(raw.get(key), dict) and raw[key].get("type") != "plain_text"
    ]
    problems += [
        f"must provide at least 1 item [json-pointer:{at}/{key}]"
        for key, value in raw.items()
        if value == []
        and {"type": raw.get("type"), "property": key} not in EMPTY_ALLOWED_TYPE_AND_PROPERTY_LIST
    ]
    if isinstance(model, TextObject) and raw.get("text") == "":
        problems.append(f"must be more than 0 characters [json-pointer:{at}/text]")
    if isinstance(model, ContextBlock):
        problems += _texts_over(model.elements, CONTEXT_TEXT, f"{at}/elements")
    if isinstance(model, SectionBlock) and model.fields:
        problems += _texts_over(model.fields, FIELD_TEXT, f"{at}/fields")
    if isinstance(model, PlainTextInputElement):
        for key in ("min_length", "max_length"):
            length = raw.get(key)
            if isinstance(length, int) and not 0 <= length <= INPUT_LENGTH:
                problems.append(f"must be between 0 and {INPUT_LENGTH} [json-pointer:{at}/{key}]")
    return problems


def _texts_over(items: Any, limit: int, at: str) -> list[str]:
    return [
        f"must be less than {limit + 1} characters [json-pointer:{at}/{i}/text]"
        for i, item in enumerate(items or [])
        if isinstance(item, TextObject) and len(item.text or "") > limit
    ]
