"""Block Kit validation as Slack does it: a request over a limit fails with Slack's error."""

from __future__ import annotations

from typing import Any

MAX_BLOCKS = 50
LIMITS = {"section": 3000, "header": 150, "context": 2000}
BUTTON_TEXT = 75
BUTTON_VALUE = 2000
MODAL_TITLE = 24
MESSAGE_TEXT = 40000


class BlockKitError(ValueError):
    """`error` is the code Slack answers with; the message says what is wrong."""

    def __init__(self, error: str, detail: str) -> None:
        super().__init__(detail)
        self.error = error


def check_blocks(blocks: Any) -> None:
    if blocks is None:
        return
    if not isinstance(blocks, list):
        raise BlockKitError("invalid_blocks_format", "blocks must be a list")
    if len(blocks) > MAX_BLOCKS:
        raise BlockKitError("invalid_blocks", f"no more than {MAX_BLOCKS} items allowed")
    for i, block in enumerate(blocks):
        if not isinstance(block, dict) or "type" not in block:
            raise BlockKitError("invalid_blocks", f"block {i} has no type")
        kind = block["type"]
        text = block.get("text")
        too_long = isinstance(text, dict) and len(str(text.get("text", ""))) > LIMITS.get(kind, 0)
        if kind in ("section", "header") and too_long:
            raise BlockKitError(
                "invalid_blocks",
                f"must be less than {LIMITS[kind] + 1} characters "
                f"[json-pointer:/blocks/{i}/text/text]",
            )
        if kind == "context":
            for element in block.get("elements", []):
                if len(str(element.get("text", ""))) > LIMITS["context"]:
                    raise BlockKitError("invalid_blocks", f"context text too long in block {i}")
        if kind == "actions":
            for element in block.get("elements", []):
                label = element.get("text", {}).get("text", "")
                if len(label) > BUTTON_TEXT:
                    raise BlockKitError("invalid_blocks", f"button text longer than {BUTTON_TEXT}")
                if len(str(element.get("value", ""))) > BUTTON_VALUE:
                    raise BlockKitError("invalid_blocks", f"button value over {BUTTON_VALUE}")


def check_view(view: Any) -> None:
    if not isinstance(view, dict) or view.get("type") != "modal":
        raise BlockKitError("invalid_arguments", "view must be a modal")
    title = view.get("title", {}).get("text", "")
    if not title or len(title) > MODAL_TITLE:
        raise BlockKitError(
            "invalid_arguments",
            f"title must be 1 to {MODAL_TITLE} characters [json-pointer:/view/title/text]",
        )
    check_blocks(view.get("blocks", []))
