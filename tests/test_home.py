"""The App Home inbox through the real app and the strict built-in Slack: an approver's
three pending requests oldest first, one approved from the Home exactly as from the DM,
Deny's modal from the Home, refusals said on the Home (it has no ephemeral messages), the
requester's requests with their state and buttons, the pager under Block Kit's 100
blocks with 150 pending, and one publish per person in flight, bursts coalesced."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot import messages
from bot.actions import STALE
from bot.coalesce import Coalescer
from bot.homeview import APPROVE_ACTION, DENY_ACTION, PAGE_ACTION
from bot.routines.card import CANCEL_ACTION, NUDGE_ACTION
from bot.sandbox.slack import View
from tests.processes import poll
from tests.slackbot import ALICE, BOB, EVE, RITA, Bot, at, running_bot, standin

GENERAL = "C0GENERAL"


def texts(view: View | None) -> list[str]:
    """What a person reads on a view, block by block (buttons as `[label]`)."""
    if view is None:
        return []
    shown: list[str] = []
    for block in view.view.get("blocks", []):
        if "text" in block:
            shown.append(str(block["text"]["text"]))
        for element in block.get("elements", []):
            if element.get("type") == "button":
                shown.append(f"[{element['text']['text']}]")
            elif "text" in element:
                shown.append(str(element["text"]))
    return shown


def reads(view: View | None) -> str:
    return "\n".join(texts(view))


async def home_showing(bot: Bot, user: str, *parts: str, timeout: float = 15) -> View:
    """`user`'s Home once it shows every one of `parts`."""
    await poll(
        lambda: all(p in reads(bot.slack.home(user)) for p in parts),
        timeout,
        f"the Home of {user} never showed {parts}: it shows {reads(bot.slack.home(user))!r}",
    )
    home = bot.slack.home(user)
    assert home is not None
    return home


def titles(view: View) -> list[str]:
    """The items' titles, in the order shown."""
    return [t.split("\n")[0].strip("*") for t in texts(view) if t.startswith("*")]


def stale(view: View) -> View:
    """The view as a screen that has not caught up with it shows it (a publish replaces
    what `view` holds)."""
    return View(view.id, view.user, copy.deepcopy(view.view))


def block_for(view: View, title: str, prefix: str) -> str:
    """The block id of the buttons (`decide:` or `request:`) under the item `title`."""
    blocks = view.view["blocks"]
    for i, block in enumerate(blocks):
        if title in block.get("text", {}).get("text", "") and i + 1 < len(blocks):
            following = str(blocks[i + 1].get("block_id", ""))
            if following.startswith(prefix):
                return following
    raise AssertionError(f"no {prefix} buttons under {title!r}")


async def requested(bot: Bot, user: str, text: str, approvers: str) -> None:
    """`user` asks for `text`, and waits for the first approver's DM."""
    await bot.slack.slash_command(user, f"{approvers} {text}", channel=GENERAL)
    first = approvers.split()[0].split("|")[0].removeprefix("<@")
    await bot.dm(first, text)


async def test_three_pending_oldest_first_and_one_approved_from_the_home(bot: Bot) -> None:
    for text in ("First: deploy api", "Second: rotate keys", "Third: drop cache"):
        await requested(bot, RITA, text, at(ALICE))
    second_dm = await bot.dm(ALICE, "Second: rotate keys")
    assert await bot.slack.open_home(ALICE) is not None  # app_home_opened, signed, delivered
    home = await home_showing(bot, ALICE, "Waiting on you (3)")
    shown = reads(home)
    assert shown.index("First") < shown.index("Second") < shown.index("Third")  # oldest first
    assert "Requested by <@U0RITA>" in shown
    assert "expires <!date^" in shown
    assert shown.count("[Approve]") == 3
    assert shown.count("[Deny]") == 3

    answer = await bot.slack.click_view(
        ALICE, home, APPROVE_ACTION, block_for(home, "Second", "decide:")
    )
    assert answer.status == 200
    # As from the DM: the requester is told, the DM goes, the record stays.
    await bot.dm(RITA, "approved")
    await bot.gone(second_dm)
    home = await home_showing(
        bot,
        ALICE,
        "Thanks, your approval is recorded.",  # what the DM's click says ephemerally
        "Waiting on you (2)",
        "You approved · Approved by <@U0ALICE>",
    )
    waiting = reads(home).split("Your requests")[0]
    assert "Second" not in waiting
    assert "First" in waiting
    assert "Third" in waiting

    # The requester's Home: their open requests with where they stand, the decided one.
    await bot.slack.open_home(RITA)
    rita = await home_showing(
        bot, RITA, "Your requests (2)", "Waiting for <@U0ALICE> · 0 of 1 approved"
    )
    mine = reads(rita)
    assert "[Cancel]" in mine
    assert "[Extend]" in mine
    assert "[Nudge]" in mine
    decided = mine.split("Recently decided")[1]
    assert "*Second: rotate keys*\nApproved by <@U0ALICE> · <!date^" in decided
    assert "Waiting on you (0)" in mine


async def test_only_a_home_once_opened_is_kept_in_step(bot: Bot) -> None:
    await bot.slack.open_home(ALICE)
    await home_showing(bot, ALICE, "Waiting on you (0)")
    opened = len(bot.slack.calls_of("views.publish"))
    await requested(bot, RITA, "Deploy web 1.0", f"{at(ALICE)} {at(BOB)}")
    # Alice opened hers once: it follows the new request without being opened again.
    await home_showing(bot, ALICE, "Waiting on you (1)", "Deploy web 1.0")
    await bot.dm(BOB, "Deploy web 1.0")
    # Neither Bob nor Rita ever opened theirs: no publish is spent on them.
    publishes = bot.slack.calls_of("views.publish")
    assert {c["user_id"] for c in publishes} == {ALICE}
    assert len(publishes) > opened


async def test_refusals_on_the_home_say_what_the_dm_would(bot: Bot) -> None:
    await requested(bot, RITA, "Two to approve", f"{at(ALICE)} {at(BOB)} --quorum 2")
    await bot.slack.open_home(ALICE)
    home = stale(await home_showing(bot, ALICE, "Waiting on you (1)"))
    block = block_for(home, "Two to approve", "decide:")
    workflow_id = await bot.only_workflow()

    # Someone else's click on alice's Home (a forged or passed-on view) changes nothing.
    await bot.slack.click_view(EVE, home, APPROVE_ACTION, block)
    await home_showing(bot, EVE, "You are not an approver of this request.")
    await bot.slack.click_view(RITA, home, APPROVE_ACTION, block)
    await home_showing(bot, RITA, "You cannot approve or deny your own request.")
    info = await bot.service.engine.get(workflow_id)
    assert info.data.approved_by == []  # type: ignore[attr-defined]

    # A double click: the second finds the wait answered.
    await bot.slack.click_view(ALICE, home, APPROVE_ACTION, block)
    await home_showing(bot, ALICE, "Thanks, your approval is recorded.", "Waiting on you (0)")
    await bot.slack.click_view(ALICE, home, APPROVE_ACTION, block)  # the same view again
    await home_showing(bot, ALICE, STALE)
    info = await bot.service.engine.get(workflow_id)
    assert info.data.approved_by == [ALICE]  # type: ignore[attr-defined]
    assert info.status in ("running", "waiting")


async def test_deny_from_the_home_asks_why_and_ends_the_request(bot: Bot) -> None:
    await requested(bot, RITA, "Give eve admin", at(ALICE))
    await bot.slack.open_home(ALICE)
    home = await home_showing(bot, ALICE, "Waiting on you (1)")
    await bot.slack.click_view(ALICE, home, DENY_ACTION, block_for(home, "Give eve", "decide:"))
    await poll(lambda: bot.slack.open_views(ALICE), 10, "the deny form did not open")
    (form,) = bot.slack.open_views(ALICE)
    assert "Give eve admin" in reads(form)
    await bot.slack.submit_view(
        ALICE, form, {messages.REASON_BLOCK: {messages.REASON_INPUT: "Not without a ticket"}}
    )
    await bot.dm(RITA, "Not without a ticket")
    await home_showing(
        bot, ALICE, "Waiting on you (0)", "You denied · Denied by <@U0ALICE>: Not without a ticket"
    )


async def test_the_requester_nudges_from_the_home(bot: Bot) -> None:
    await requested(bot, RITA, "Ping from home", f"{at(ALICE)} {at(BOB)} --quorum 2")
    await bot.slack.open_home(RITA)
    home = await home_showing(bot, RITA, "Your requests (1)", "[Nudge]")
    await bot.slack.click_view(RITA, home, NUDGE_ACTION, block_for(home, "Ping", "request:"))
    await bot.dm(BOB, ":bell: <@U0RITA> is waiting for your decision")
    await home_showing(bot, RITA, "The approvers who have not answered are reminded.")
    await bot.slack.open_home(RITA)  # opened again: the notice is gone
    await poll(lambda: "reminded" not in reads(bot.slack.home(RITA)), 10, "the notice stayed")


async def test_a_cancel_from_the_home_closes_it_for_everyone(bot: Bot) -> None:
    await requested(bot, RITA, "Wrong one", f"{at(ALICE)} {at(BOB)}")
    await bot.slack.open_home(ALICE)
    await home_showing(bot, ALICE, "Waiting on you (1)")
    await bot.slack.open_home(RITA)
    home = await home_showing(bot, RITA, "Your requests (1)")
    await bot.slack.click_view(RITA, home, CANCEL_ACTION, block_for(home, "Wrong one", "request:"))
    await poll(lambda: bot.slack.open_views(RITA), 10, "the cancel form did not open")
    (form,) = bot.slack.open_views(RITA)
    await bot.slack.submit_view(RITA, form, {"reason": {"reason_input": "Submitted in error"}})
    await home_showing(bot, RITA, "Your requests (0)", "Cancelled by <@U0RITA>: Submitted in error")
    await home_showing(
        bot,
        ALICE,
        "Waiting on you (0)",
        "You did not answer · Cancelled by <@U0RITA>: Submitted in error",
    )
    assert await bot.status(await bot.only_workflow()) == "cancelled"


MINUTE = 0.6  # a Slack minute of 0.6 s: 150 requests' posts within seconds, limits held


@pytest.fixture
async def fast_bot(tmp_path: Path) -> AsyncIterator[Bot]:
    async with (
        standin(minute=MINUTE) as slack,
        running_bot(slack, f"sqlite:///{tmp_path / 'bot.db'}", slack_minute_seconds=MINUTE) as b,
    ):
        yield b


async def test_150_pending_are_paged_under_100_blocks_and_publishes_coalesce(
    fast_bot: Bot,
) -> None:
    bot = fast_bot
    for person in (ALICE, RITA):
        await bot.slack.open_home(person)
        await home_showing(bot, person, "Waiting on you (0)")
    for i in range(150):
        await bot.slack.slash_command(RITA, f"{at(ALICE)} Request {i:03}", channel=GENERAL)
    home = await home_showing(bot, ALICE, "Waiting on you (150)", timeout=120)
    assert len(home.view["blocks"]) <= 100
    assert "Showing 1 to 20 of 150" in reads(home)
    # Oldest first: in the order the requests were made (their executions interleave).
    records = await bot.service.engine.db.list_workflows()  # type: ignore[attr-defined]
    made = sorted(records, key=lambda r: (r.data["requested_at"], r.id))
    order = [r.data["text"] for r in made]
    assert titles(home) == order[:20]
    await poll(lambda: "Your requests (150)" in reads(bot.slack.home(RITA)), 60, "rita's Home lags")
    # Each request changed alice's Home once (at least) and rita's at every step: the
    # publishes in flight folded the bursts together.
    published = [c for c in bot.slack.calls_of("views.publish") if c.get("user_id") == ALICE]
    assert len(published) < 150

    await bot.slack.click_view(ALICE, home, PAGE_ACTION, "pages:waiting")
    home = await home_showing(bot, ALICE, "Showing 21 to 40 of 150")
    assert titles(home) == order[20:40]
    assert "[Previous]" in reads(home)
    assert "[Next 20]" in reads(home)
    for view in (bot.slack.home(ALICE), bot.slack.home(RITA)):
        assert view is not None
        assert len(view.view["blocks"]) <= 100


async def test_one_run_per_key_in_flight_and_a_burst_is_one_more() -> None:
    started: list[tuple[str, int]] = []
    release = asyncio.Event()
    state = {"version": 0}
    running = {"now": 0, "most": 0}

    async def work(key: str, urgent: bool) -> None:
        running["now"] += 1
        running["most"] = max(running["most"], running["now"])
        started.append((key, state["version"]))
        await release.wait()
        running["now"] -= 1

    coalescer = Coalescer(work)
    coalescer.request("alice")
    await asyncio.sleep(0)
    for version in range(1, 11):  # ten changes while the first run is in flight
        state["version"] = version
        coalescer.request("alice")
    coalescer.request("bob")
    release.set()
    await coalescer.idle()
    assert [v for k, v in started if k == "alice"] == [0, 10]  # exactly one more, the latest
    assert [k for k, _ in started].count("bob") == 1
    assert running["most"] == 2  # alice and bob at once; never two for one key
