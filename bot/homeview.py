"""The App Home inbox as Block Kit: pure functions of what the Home service read.

Three lists, for the person looking: *Waiting on you* (oldest first, each with Approve
and Deny, which find the person's open wait when clicked and go on as their DM's buttons
do), *Your requests* (where each stands, with the request card's Cancel, Extend and
Nudge) and *Recently decided*. A Home view holds at most 100 blocks, so the two open
lists are paged: each page's items, and "Previous" / "Next" buttons that republish it
with the page asked for. The pages are sized so a full Home stays under the limit:
1 notice, 3 headers, 2 dividers, 2 for each of 20 waiting, 2 for the pager, 2 for each of
10 requests, 2 for their pager, 20 recent: 90 blocks.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bot.messages import HEADER_TEXT_MAX, button, context, cut, section
from bot.routines.card import CANCEL_ACTION, EXTEND_ACTION, NUDGE_ACTION
from workflows.types import Party

WAITING_PAGE = 20
REQUESTS_PAGE = 10
RECENT = 20
HOME_BLOCKS_MAX = 100
PAGE_ACTION = "home_page"
APPROVE_ACTION = "home_approve"
DENY_ACTION = "home_deny"
WAITING, REQUESTS = "waiting", "requests"


@dataclass
class Listing:
    """One page of a list: its items, where the page starts, how many there are in all."""

    items: list[Party] = field(default_factory=list)
    offset: int = 0
    total: int = 0


@dataclass
class Inbox:
    """What one person's Home shows."""

    waiting: Listing
    requests: Listing
    recent: list[Party]
    notice: str = ""


def home_view(inbox: Inbox) -> dict[str, Any]:
    """The Home tab (views.publish's `view`)."""
    blocks: list[dict[str, Any]] = []
    if inbox.notice:
        blocks.append(context(inbox.notice))
    blocks += _open_list(
        f"Waiting on you ({inbox.waiting.total})",
        inbox.waiting,
        _waiting,
        "_Nothing waits on you._",
        WAITING,
        WAITING_PAGE,
    )
    blocks.append({"type": "divider"})
    blocks += _open_list(
        f"Your requests ({inbox.requests.total})",
        inbox.requests,
        _request,
        "_You have no open requests._",
        REQUESTS,
        REQUESTS_PAGE,
    )
    blocks += [{"type": "divider"}, _header("Recently decided")]
    blocks += [section(f"*{_title(p)}*\n{p.stand}") for p in inbox.recent]
    if not inbox.recent:
        blocks.append(section("_Nothing yet._"))
    return {"type": "home", "blocks": blocks[:HOME_BLOCKS_MAX]}


def _header(text: str) -> dict[str, Any]:
    return {"type": "header", "text": {"type": "plain_text", "text": cut(text, HEADER_TEXT_MAX)}}


def _title(party: Party) -> str:
    first = party.title.strip().split("\n", 1)[0] or "(no text)"
    return cut(first, 300).replace("*", "")


def _value(party: Party) -> str:
    """What the buttons carry: the workflow and which approval of it (as the card's)."""
    return json.dumps({"w": party.workflow_id, "a": party.part}, separators=(",", ":"))


def _open_list(
    title: str,
    listing: Listing,
    item: Callable[[Party], list[dict[str, Any]]],
    empty: str,
    name: str,
    size: int,
) -> list[dict[str, Any]]:
    """One of the open lists: its header, the page's items (or `empty`), its pager."""
    blocks = [_header(title)]
    for party in listing.items:
        blocks += item(party)
    if not listing.items:
        blocks.append(section(empty))
    return blocks + _pager(name, listing, size)


def _waiting(party: Party) -> list[dict[str, Any]]:
    value = _value(party)
    return _item(
        party,
        "decide",
        button("Approve", APPROVE_ACTION, value, "primary"),
        button("Deny", DENY_ACTION, value, "danger"),
    )


def _request(party: Party) -> list[dict[str, Any]]:
    value = _value(party)
    return _item(
        party,
        "request",
        button("Cancel", CANCEL_ACTION, value, "danger"),
        button("Extend", EXTEND_ACTION, value),
        button("Nudge", NUDGE_ACTION, value),
    )


def _item(party: Party, kind: str, *buttons: dict[str, Any]) -> list[dict[str, Any]]:
    """A request as a list shows it: its title, where it stands, its buttons."""
    return [
        section(f"*{_title(party)}*\n{party.stand}"),
        {
            "type": "actions",
            "block_id": f"{kind}:{party.workflow_id}:{party.part}"[:255],
            "elements": list(buttons),
        },
    ]


def _pager(name: str, listing: Listing, size: int) -> list[dict[str, Any]]:
    """Which items of how many the page shows, and the buttons to the pages around it,
    when there are more than one."""
    if listing.total <= size and listing.offset == 0:
        return []
    first, last = listing.offset + 1, listing.offset + len(listing.items)
    buttons = []
    if listing.offset > 0:
        back = max(0, listing.offset - size)
        buttons.append(button("Previous", PAGE_ACTION, _page(name, back)))
    if last < listing.total:
        buttons.append(button(f"Next {size}", PAGE_ACTION, _page(name, last)))
    pager: list[dict[str, Any]] = [context(f"Showing {first} to {last} of {listing.total}")]
    if buttons:
        pager.append({"type": "actions", "block_id": f"pages:{name}", "elements": buttons})
    return pager


def _page(name: str, offset: int) -> str:
    return json.dumps({"list": name, "offset": offset}, separators=(",", ":"))


def decode_page(value: str) -> tuple[str, int]:
    """(list, offset) of a pager button's value."""
    data = json.loads(value)
    name, offset = str(data["list"]), int(data["offset"])
    if name not in (WAITING, REQUESTS) or offset < 0:
        raise ValueError(f"no page {value!r}")
    return name, offset
