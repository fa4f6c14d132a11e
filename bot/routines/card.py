"""The request card: one message where the request was made, kept in step with the
approval, with the request's timeline in its thread; and the approvers' records.

Everything here is rendered from the approval's data (`Approval`) and what the routine
was asked (`Ask`), so rendering again gives the same card: a step that runs again (a retry,
a restart) updates the card to the same text and posts no thread line twice (each is
posted at most once by its number, `Posts.post_once`). Updates and thread lines are
background work for the rate limiter (a person waits for their DM, not for the card).

Where the card goes: the channel the request was made in; a DM (`D…`), no channel, or a
channel the bot is not in (`not_in_channel`) sends it to the requester's DM with the bot,
with a line saying how to invite the bot.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from slack_sdk.errors import SlackApiError

from bot.durations import format_duration
from bot.messages import (
    FALLBACK_TEXT_MAX,
    SECTION_TEXT_MAX,
    approval_request,
    button,
    context,
    cut,
    mention,
    mentions,
    preview,
    section,
    slack_date,
)
from callbacks.priority import background
from callbacks.slack import GONE, Posts, is_user, record_key, shown_digest, shown_key
from workflows import RetryLater

if TYPE_CHECKING:
    from bot.blueprint import Parts
    from bot.routines.approval import Approval
    from workflows import Engine

log = logging.getLogger("bot.routines.card")

CANCEL_ACTION = "request_cancel"
EXTEND_ACTION = "request_extend"
NUDGE_ACTION = "request_nudge"
CANCEL_VIEW = "request_cancel_reason"
EXTEND_VIEW = "request_extend_by"
OUTAGE_RETRY = timedelta(seconds=3)
"""How soon a card update Slack failed with a 5xx is tried again (never a failure: a
card is not worth failing the request for)."""
NOT_MEMBER = frozenset({"not_in_channel", "channel_not_found", "is_archived"})
WAITING, APPROVED_MARK, DENIED_MARK = (
    ":hourglass_flowing_sand:",
    ":white_check_mark:",
    ":x:",
)


@dataclass(frozen=True)
class Ask:
    """What the approval routine was asked: the parts of the card that are not data."""

    workflow_id: str
    name: str
    approvers: list[str]
    requester: str
    text: str
    quorum: int
    timeout: timedelta

    def deadline(self, state: Approval) -> datetime | None:
        if state.requested_at is None:
            return None
        return state.requested_at + self.timeout + state.extended

    @property
    def value(self) -> str:
        """What the card's buttons carry: the workflow and which approval of it."""
        return json.dumps({"w": self.workflow_id, "a": self.name}, separators=(",", ":"))


def decode_value(value: str) -> tuple[str, str]:
    """(workflow id, approval name) of a card button's value."""
    data = json.loads(value)
    return str(data["w"]), str(data.get("a", ""))


def _at(when: datetime | None) -> str:
    if when is None:
        return ""
    return f"<!date^{int(when.timestamp())}^{{time}}|{when.strftime('%H:%M')} UTC>"


def settled_line(
    ask: Ask,
    state: Approval,
    cancelled: tuple[str, str] | None = None,
    *,
    when: bool = True,
) -> str:
    """How the request ended, as the card (and a late click) says it; "" while open.
    `when`: with the time it was decided."""
    if cancelled is not None:
        actor, reason = cancelled
        who = mention(actor) if is_user(actor) else "an operator"
        return f"Cancelled by {who}" + (f": {reason}" if reason else "")
    outcome = state.outcome
    if outcome is None:
        return ""
    at = f" · {_at(state.decided_at)}" if state.decided_at and when else ""
    if outcome == "approved":
        return f"Approved by {mentions(state.approved_by)}{at}"
    if outcome == "denied":
        return f"Denied by {mention(state.denied_by)}: {state.reason}{at}"
    return f"Timed out · {len(state.approved_by)} of {ask.quorum} approved"


def card(ask: Ask, state: Approval, cancelled: tuple[str, str] | None = None) -> dict[str, Any]:
    """The card for the approval as it stands (`cancelled`: by whom, why)."""
    ended = settled_line(ask, state, cancelled)
    lines = []
    for user in ask.approvers:
        if user in state.approved_by:
            lines.append(f"{APPROVED_MARK} {mention(user)}")
        elif user == state.denied_by:
            lines.append(f"{DENIED_MARK} {mention(user)}: {cut(state.reason, 200)}")
        else:
            lines.append(f"{WAITING} {mention(user)}")
    progress = f"{len(state.approved_by)} of {ask.quorum} approved"
    details = f"Requested by {mention(ask.requester)} · {progress}"
    deadline = ask.deadline(state)
    if not ended and deadline is not None:
        details += f" · expires {slack_date(deadline)}"
    head = f"*{ended}*" if ended else "*Waiting for approval*"
    blocks: list[dict[str, Any]] = [
        section(head),
        section(preview(ask.text, SECTION_TEXT_MAX // 2)),
        section("\n".join(lines)),
        context(details),
    ]
    if state.card_note:
        blocks.append(context(state.card_note))
    if not ended:
        blocks.append(
            {
                "type": "actions",
                "block_id": "requester",
                "elements": [
                    button("Cancel", CANCEL_ACTION, ask.value, "danger"),
                    button("Extend", EXTEND_ACTION, ask.value),
                    button("Nudge", NUDGE_ACTION, ask.value),
                ],
            }
        )
    fallback = f"{ended or 'Waiting for approval'}: {ask.text}"
    return {"text": cut(fallback, FALLBACK_TEXT_MAX), "blocks": blocks}


def record(
    ask: Ask,
    state: Approval,
    user: str,
    permalink: str,
    cancelled: tuple[str, str] | None = None,
) -> dict[str, Any]:
    """What an approver keeps once their interactive DM goes: the request, what they did,
    how it ended (or that it is still open), and a link to the card."""
    if user in state.approved_by:
        did = "You approved"
    elif user == state.denied_by:
        did = "You denied"
    else:
        did = "You did not answer"
    # No time: the record reads the same whether it was left before or after the
    # decision's time was noted, so it is not sent again to add it.
    ended = settled_line(ask, state, cancelled, when=False) or "still waiting for the others"
    link = f" · <{permalink}|View the request>" if permalink else ""
    text = f"{did} {mention(ask.requester)}'s request · {ended}{link}\n>{preview(ask.text, 300)}"
    return {"text": cut(text, FALLBACK_TEXT_MAX), "blocks": [section(text)]}


class Cards:
    """The service the approval routine's card steps reach (with the engine attached, to
    find the approvers' open DMs when the deadline moves)."""

    def __init__(self, posts: Posts) -> None:
        self.posts = posts
        self._engine: Engine | None = None
        self._bot_name: str | None = None

    @classmethod
    def of(cls, parts: Parts) -> Cards:
        return cls(parts.posts)

    def attach(self, engine: Engine) -> None:
        self._engine = engine

    async def _name(self) -> str:
        """The bot's name in the workspace (what `/invite @…` takes), asked once."""
        if self._bot_name is None:
            self._bot_name = str((await self.client.auth_test()).get("user", ""))
        return self._bot_name

    @property
    def client(self) -> Any:
        return self.posts.client

    async def post(self, ask: Ask, state: Approval, channel: str) -> None:
        """Post the card (once) where the request was made, or in the requester's DM."""
        key = _card_key(ask)
        where = channel if channel[:1] in ("C", "G") else ask.requester
        try:
            posted = await self.posts.post_once(ask.workflow_id, where, key, card(ask, state))
        except SlackApiError as e:
            if e.response.get("error") not in NOT_MEMBER:
                raise
            state.card_note = (
                f"I could not post this in <#{channel}>: invite me there with "
                f"`/invite @{await self._name()}` to show requests in the channel."
            )
            posted = await self.posts.post_once(
                ask.workflow_id, ask.requester, f"{key}:dm", card(ask, state)
            )
        state.card = {"channel": posted["channel"], "ts": posted["ts"]}
        try:
            link = await self.client.chat_getPermalink(
                channel=posted["channel"], message_ts=posted["ts"]
            )
            state.card["permalink"] = str(link["permalink"])
        except SlackApiError as e:  # the records link nowhere; nothing else depends on it
            log.warning("no permalink for the card: %s", e.response.get("error"))

    async def settle(self, ask: Ask, state: Approval, channel: str, threads: str) -> None:
        """Show the outcome for good: on the card (posting it now if its turn never came),
        in its thread, and in the records approvers were left. From a teardown: what is
        posted or shown is recorded, so it may run again and again."""
        if not state.card:
            for key in (_card_key(ask), f"{_card_key(ask)}:dm"):
                posted = await self.posts.db.effect(f"slack:post:{key}")
                if isinstance(posted, dict) and posted.get("ts"):
                    state.card = {"channel": str(posted["channel"]), "ts": str(posted["ts"])}
                    break
            else:
                with background():
                    await self.post(ask, state, channel)
        await self.refresh(ask, state)
        await self.keep_records(ask, state, threads)

    async def refresh(
        self, ask: Ask, state: Approval, cancelled: tuple[str, str] | None = None
    ) -> None:
        """Show the approval as it stands on the card, and its new timeline lines, as
        background work (put off for its rate budget)."""
        if not state.card:
            return
        channel, ts = state.card["channel"], state.card["ts"]
        with background():
            if not await self._update(ask.workflow_id, channel, ts, card(ask, state, cancelled)):
                log.warning("the card of %s is gone", ask.workflow_id)
                return
            for number, moment in enumerate(state.timeline):
                await self.posts.post_once(
                    ask.workflow_id,
                    channel,
                    f"{ask.workflow_id}:card:{ask.name}:line:{number}",
                    {"text": cut(moment, SECTION_TEXT_MAX), "thread_ts": ts},
                )

    async def remind(self, ask: Ask, state: Approval, users: list[str]) -> None:
        """The nudge: a DM to each approver who has not answered yet."""
        link = state.card.get("permalink", "")
        where = f" <{link}|View the request>" if link else ""
        for user in users:
            await self.posts.post_once(
                ask.workflow_id,
                user,
                f"{ask.workflow_id}:card:{ask.name}:nudge:{state.nudges}:{user}",
                {
                    "text": cut(
                        f":bell: {mention(ask.requester)} is waiting for your decision:"
                        f"{where}\n>{preview(ask.text, 300)}",
                        FALLBACK_TEXT_MAX,
                    )
                },
            )

    async def show_deadline(self, ask: Ask, state: Approval, threads: str) -> None:
        """The approvers' open DMs show the (moved) deadline: each is updated in place.
        `threads`: the prefix of the approval's threads (one per approver)."""
        prefix = f"{ask.name}: " if ask.name else ""
        with background():
            for user in ask.approvers:
                try:
                    request = await self.engine.waiting_request(
                        ask.workflow_id, f"{prefix}action {user}", f"{threads}{user}"
                    )
                except LookupError:
                    continue  # answered already: no DM left
                shown = approval_request(
                    request,
                    requester=ask.requester,
                    text=ask.text,
                    deadline=ask.deadline(state),
                    quorum=ask.quorum,
                    approvers=len(ask.approvers),
                )
                for message in json.loads(request.setup_data or "{}").get("messages", []):
                    await self._update(ask.workflow_id, message["channel"], message["ts"], shown)

    async def keep_records(
        self,
        ask: Ask,
        state: Approval,
        threads: str,
        cancelled: tuple[str, str] | None = None,
    ) -> None:
        """The records approvers were left say how the request ended; on a cancel, every
        approver gets theirs (their DMs go without one)."""
        link = state.card.get("permalink", "")
        with background():
            for user in ask.approvers:
                key = record_key(ask.workflow_id, f"{threads}{user}")
                shown = record(ask, state, user, link, cancelled)
                kept = await self.posts.db.effect(f"slack:post:{key}")
                if isinstance(kept, dict) and kept.get("ts"):
                    await self._update(ask.workflow_id, kept["channel"], kept["ts"], shown)
                elif cancelled is not None:
                    await self.posts.post_once(ask.workflow_id, user, key, shown)

    async def _update(
        self, workflow_id: str, channel: str, ts: str, payload: dict[str, Any]
    ) -> bool:
        """Show `payload` in the message (False: it is gone). What a message shows is
        recorded, so showing it again asks Slack nothing: a step put off for its rate
        budget, or run again, goes on from the first message not yet updated."""
        key, digest = shown_key(channel, ts), shown_digest(payload)
        if await self.posts.db.effect(key) == digest:
            return True
        try:
            await self.client.chat_update(channel=channel, ts=ts, **payload)
        except SlackApiError as e:
            error = e.response.get("error")
            if error in GONE:
                return False
            if e.response.status_code >= 500:  # Slack's bad minute: again a little later
                raise RetryLater(OUTAGE_RETRY, f"chat.update answered {error}") from e
            # Refused for good (the message cannot be edited): the card stays as it was,
            # and nothing else waits on it.
            log.warning("could not update %s %s: %s", channel, ts, error)
            return True
        await self.posts.db.record_effect(key, digest, workflow_id)
        return True

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            raise RuntimeError("Cards is not attached to the engine")
        return self._engine


def _card_key(ask: Ask) -> str:
    return f"{ask.workflow_id}:card:{ask.name}"


def extension_line(requester: str, by: timedelta, deadline: datetime | None) -> str:
    until = f" (now {slack_date(deadline)})" if deadline else ""
    return f"{mention(requester)} extended the deadline by {format_duration(by)}{until}"
