"""The App Home inbox: what waits on each person, their requests, what was decided.

Who has a part in which request is kept in the engine's parties table (`DB.set_parties`),
indexed by person, so a Home is a few index ranges however many workflows the database
holds. The approval routine's steps write it, at the moments a request changes: started
(its card posted), each decision, an extension, the outcome, a cancel. Written there and
not derived from every checkpoint: the engine's steps cost what they did, and a step runs
at least once, so the write is an upsert of the same rows (`parties_of` renders them from
the approval's data alone).

Each change asks for the Home of the people it concerns to be published again; a
`Coalescer` keeps one `views.publish` per person in flight and folds a burst into one
more with the latest state. Those are background work for Slack's rate budget
(views.publish is Tier 4, about 100 a minute): put off, the publish waits its turn here
(a step is not held up for it), then goes; a view the same as the one this process last
published for the person is not sent again. Opening the Home (`app_home_opened`) publishes
at once: the person is looking. Only the Homes of people who have opened theirs at least
once are published again on a change (who has is recorded in the database, for every
process): a Home never opened shows nothing to refresh, and it is published in full when
it first is, so a workspace of people who use DMs alone spends no `views.publish` on
them. Publishing lives in the process that saw the change; one that dies first leaves a
Home one change behind until it is opened again.

The Home's Approve and Deny find the person's open wait in the approval when clicked
(a Home drawn before the wait was set up still works) and go on exactly as the DM's
buttons do (bot.actions: the same checks, refusals and Deny's modal); its Cancel, Extend
and Nudge are the request card's own buttons, answered by the card's listeners. Slack
gives a Home's clicks no `response_url` (nothing is ephemeral in a view): what those
listeners would say ephemerally is shown at the top of the Home instead, by publishing it
again (`HomeRespond`), until the person opens the Home anew.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncBoltContext
from slack_bolt.context.respond.async_respond import AsyncRespond
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook import WebhookResponse

from bot.actions import (
    FINISHED,
    STALE,
    ack_when_decided,
    ask_reason,
    decide,
    explain,
    tell,
)
from bot.coalesce import Coalescer
from bot.homeview import (
    APPROVE_ACTION,
    DENY_ACTION,
    PAGE_ACTION,
    RECENT,
    REQUESTS_PAGE,
    WAITING_PAGE,
    Inbox,
    Listing,
    decode_page,
    home_view,
)
from bot.messages import mention, mentions, preview, slack_date
from bot.routines.card import Ask, decode_value, settled_line
from callbacks.priority import background
from callbacks.slack import shown_digest
from callbacks.user_action import APPROVE, NOT_APPROVER, OWN_REQUEST
from workflows import CallbackRequest, RetryLater, WorkflowError
from workflows.state import TERMINAL
from workflows.types import Party

if TYPE_CHECKING:
    from bot.blueprint import Parts
    from bot.routines.approval import Approval
    from workflows import Engine, Workflow

log = logging.getLogger("bot.home")

APPROVER, REQUESTER = "approver", "requester"


def parties_of(ask: Ask, state: Approval, cancelled: tuple[str, str] | None = None) -> list[Party]:
    """Where the requester and each approver stand in the approval, as their Homes say it.
    An approver's part is open while the request waits on them; the requester's while
    the request is undecided."""
    ended = settled_line(ask, state, cancelled)  # its time is the decision's, stamped with it
    deadline = ask.deadline(state)
    expires = f" · expires {slack_date(deadline)}" if deadline is not None else ""
    progress = f"{len(state.approved_by)} of {ask.quorum} approved"
    title = preview(ask.text, 300)
    at = state.decided_at if ended else None
    pending = [u for u in ask.approvers if u not in state.approved_by and u != state.denied_by]
    waiting_for = f"Waiting for {mentions(pending)} · " if pending else ""
    requester = Party(
        ask.requester,
        ask.workflow_id,
        REQUESTER,
        ask.name,
        stand=ended or f"{waiting_for}{progress}{expires}",
        open=not ended,
        title=title,
        since=state.requested_at,
        updated_at=at,
    )
    parties = [requester]
    for user in ask.approvers:
        if user in state.approved_by:
            did = "You approved"
        elif user == state.denied_by:
            did = "You denied"
        else:
            did = "" if not ended else "You did not answer"
        stand = (
            f"{did} · {ended or 'still waiting for the others'}"
            if did
            else f"Requested by {mention(ask.requester)} · {progress}{expires}"
        )
        parties.append(
            Party(
                user,
                ask.workflow_id,
                APPROVER,
                ask.name,
                stand=stand,
                open=not did,
                title=title,
                since=state.requested_at,
                updated_at=at,
            )
        )
    return parties


async def show_on_home(
    workflow: Workflow,
    ask: Ask,
    state: Approval,
    cancelled: tuple[str, str] | None = None,
) -> None:
    """For the approval routine's steps: the Homes of the people of `ask` show `state`. An
    engine without the Home service (a test kit's) keeps no parties."""
    try:
        home = workflow.service(Home)
    except WorkflowError:
        return
    await home.changed(ask, state, cancelled)


@dataclass
class _Pages:
    waiting: int = 0
    requests: int = 0


class Home:
    """The Home service: the parties the routine's steps write, and each person's Home
    published from them."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self._engine: Engine | None = None
        self._pages: dict[str, _Pages] = {}
        self._notices: dict[str, str] = {}
        self._shown: dict[str, str] = {}  # user -> digest of the view last published here
        self._opened: set[str] = set()  # people known to have opened their Home
        self.publisher = Coalescer(self._publish)

    @classmethod
    def of(cls, parts: Parts) -> Home:
        return cls(parts.client)

    def attach(self, engine: Engine) -> None:
        self._engine = engine

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            raise RuntimeError("Home is not attached to the engine")
        return self._engine

    async def changed(
        self, ask: Ask, state: Approval, cancelled: tuple[str, str] | None = None
    ) -> None:
        """Store where everyone stands in the approval, then refresh their Homes."""
        parties = parties_of(ask, state, cancelled)
        await self.engine.db.set_parties(parties)
        for party in parties:
            if await self._has_opened(party.person):
                self.publisher.request(party.person)

    async def opened(self, user: str) -> None:
        """`user` opened the Home tab: show it as it stands, notices gone, at once; and
        from now on keep it in step with their requests."""
        self._notices.pop(user, None)
        self.publisher.request(user, urgent=True)
        if user not in self._opened:
            await self.engine.db.record_effect(_opened_key(user), True)
            self._opened.add(user)

    async def _has_opened(self, user: str) -> bool:
        if user not in self._opened and await self.engine.db.effect(_opened_key(user)):
            self._opened.add(user)  # once opened, always: no need to ask again
        return user in self._opened

    def tell(self, user: str, text: str) -> None:
        """Say `text` to `user` at the top of their Home (a click there has nowhere else)."""
        self._notices[user] = text
        self.publisher.request(user, urgent=True)

    def turn_page(self, user: str, name: str, offset: int) -> None:
        pages = self._pages.setdefault(user, _Pages())
        setattr(pages, name, offset)
        self.publisher.request(user, urgent=True)

    async def inbox(self, user: str) -> Inbox:
        """What `user`'s Home shows: a page of each open list, the latest decided."""
        db = self.engine.db
        pages = self._pages.get(user, _Pages())
        waiting = await _listing(db, user, APPROVER, pages.waiting, WAITING_PAGE)
        requests = await _listing(db, user, REQUESTER, pages.requests, REQUESTS_PAGE)
        recent = await db.parties(user, open=False, limit=RECENT)
        return Inbox(waiting, requests, recent, self._notices.get(user, ""))

    async def _publish(self, user: str, urgent: bool) -> None:
        view = home_view(await self.inbox(user))
        digest = shown_digest(view)
        if not urgent and self._shown.get(user) == digest:
            return  # it shows that already (an opened Home is published whatever it shows)
        while True:
            try:
                with contextlib.nullcontext() if urgent else background():
                    await self.client.views_publish(user_id=user, view=view)
                self._shown[user] = digest
                return
            except RetryLater as e:  # its turn comes later: wait for it, here
                await asyncio.sleep(e.delay.total_seconds())
            except SlackApiError as e:
                log.warning("could not publish the Home of %s: %s", user, e.response.get("error"))
                return

    async def close(self) -> None:
        await self.publisher.close()


def _opened_key(user: str) -> str:
    return f"home:opened:{user}"


async def _listing(db: Any, user: str, role: str, offset: int, size: int) -> Listing:
    total = await db.count_parties(user, open=True, role=role)
    if offset >= total:  # the list shrank under the page: its last page
        offset = max(0, (total - 1) // size * size)
    items = await db.parties(user, open=True, role=role, limit=size, offset=offset)
    return Listing(items, offset, total)


class HomeRespond(AsyncRespond):
    """`respond` for a click in the Home tab, which has no `response_url`: the listeners'
    ephemeral answers become the Home's notice."""

    def __init__(self, home: Home, user: str) -> None:
        super().__init__(response_url=None)
        self.home = home
        self.user = user

    async def __call__(self, text: str | dict[str, Any] = "", **_: Any) -> WebhookResponse:  # type: ignore[override]
        said = text if isinstance(text, str) else str(text.get("text", ""))
        if said:
            self.home.tell(self.user, said)
        return WebhookResponse(url="", status_code=200, body="ok", headers={})


async def answering(engine: Engine, workflow_id: str, approval: str, user: str) -> CallbackRequest:
    """The request answering `user`'s open wait in the approval (by the routine's names:
    `"<approval>: action U1"` in thread `"<approval>: ask-U1"`), which their DM's buttons
    carry; `LookupError` says why there is none, in the words a click on the DM would get."""
    prefix = f"{approval}: " if approval else ""
    try:
        return await engine.waiting_request(
            workflow_id, f"{prefix}action {user}", f"{prefix}ask-{user}"
        )
    except LookupError:
        pass
    try:
        info = await engine.get(workflow_id)
    except WorkflowError as e:
        raise LookupError(explain(e)) from None
    if info.status in TERMINAL:
        raise LookupError(FINISHED)
    summary = info.data.summary()
    if user not in summary.people:
        raise LookupError(OWN_REQUEST if user == summary.started_by else NOT_APPROVER)
    raise LookupError(STALE)


def register(app: AsyncApp, engine: Engine, parts: Parts) -> None:
    """The Home's listeners: opening it, its pager, its Approve and Deny (the requester's
    buttons are the card's: bot.requester answers them)."""
    home = next(s for s in engine.services.values() if isinstance(s, Home))
    requests_first = parts.requests_first

    async def pressed(body: dict[str, Any]) -> CallbackRequest:
        workflow_id, approval = decode_value(body["actions"][0]["value"])
        return await answering(engine, workflow_id, approval, str(body["user"]["id"]))

    @app.action(APPROVE_ACTION)
    async def approve(ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond) -> None:
        try:
            request = await pressed(body)
        except (KeyError, ValueError, TypeError):
            await ack()
            requests_first.later(tell(respond, "This button is not valid any more."))
            return
        except LookupError as e:
            await ack()
            requests_first.later(tell(respond, str(e)))
            return
        applying = asyncio.ensure_future(decide(engine, request, body["user"]["id"], APPROVE))
        await ack_when_decided(ack, applying)
        requests_first.later(tell(respond, applying))

    @app.action(DENY_ACTION)
    async def deny(
        ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond, client: AsyncWebClient
    ) -> None:
        await ack()
        requests_first.later(deny_form(body, respond, client), urgent=True)

    async def deny_form(
        body: dict[str, Any], respond: AsyncRespond, client: AsyncWebClient
    ) -> None:
        try:
            request = await pressed(body)
        except (KeyError, ValueError, TypeError):
            await tell(respond, "This button is not valid any more.")
            return
        except LookupError as e:
            await tell(respond, str(e))
            return
        await ask_reason(engine, request, body, respond, client)

    @app.middleware
    async def home_answers(body: dict[str, Any], context: AsyncBoltContext, next: Any) -> None:
        view = body.get("view") or {}
        home_click = body.get("type") == "block_actions" and view.get("type") == "home"
        if home_click and not context.response_url:
            context["respond"] = HomeRespond(home, str(body["user"]["id"]))
        await next()

    @app.event("app_home_opened")
    async def opened(event: dict[str, Any]) -> None:
        if event.get("tab", "home") == "home":
            await home.opened(str(event["user"]))

    @app.action(PAGE_ACTION)
    async def turn_page(ack: AsyncAck, body: dict[str, Any]) -> None:
        await ack()
        try:
            name, offset = decode_page(body["actions"][0]["value"])
        except (KeyError, ValueError, TypeError):
            return
        home.turn_page(str(body["user"]["id"]), name, offset)
