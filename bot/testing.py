"""A test kit for blueprints: launch a blueprint's command as a person would, answer its
approvals and buttons, read what people were told and what its webhooks delivered, on the
engine's test kit (a clock moved by hand, a resumer drained until idle), without Slack.

    async with BlueprintKit(refund.blueprint) as kit:
        wid = await kit.launch("/refund", "customer=acme amount=120 approvers=<@U0ALICE>")
        assert kit.asked("U0ALICE") == ["Refund 120 EUR to acme"]
        await kit.approve(wid, "U0ALICE")
        assert kit.told(kit.requester) == ["Refund 120 EUR to acme: approved"]
        assert kit.delivered("refund") == [{"customer": "acme", "amount": "120"}]

What stands in for Slack: the prompts people get (`WaitForUserAction`'s Approve / Deny,
`WaitForButton`'s button) are kept while their wait is open (`asked`), and `notify` posts
are kept per recipient, once per step as in Slack (`told`). What is real: the engine on a
SQLite file, the launch with its form, the approval routine's rules, `Timeout`'s durable
timers on the kit's clock (`advance`), and the webhooks, signed and POSTed over HTTP to a
receiver the kit runs (`delivered`; `fail_next(n)` makes it answer 500 n times, and the
engine's retries then run on the kit's clock).

The blueprint's own services and wait managers are built from the running bot's Slack
client, so the kit does not build them: give the ones its steps need as `services=` and
`callbacks=`.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from types import TracebackType
from typing import Any, TypeVar

from aiohttp import web

from bot.blueprint import Blueprint, Invocation, UsageError
from bot.commands import choose, made
from bot.routines.notify import Notifications
from bot.routines.webhook import IDEMPOTENCY_KEY, Webhooks, verify
from bot.settings import Settings
from callbacks import default_callbacks
from callbacks.button import WaitForButton
from callbacks.user_action import APPROVE, DENY, WaitForUserAction
from workflows import CallbackManager, CallbackRequest, Workflow
from workflows.testing import WorkflowTestKit

W = TypeVar("W", bound=Workflow)

REQUESTER = "U0REQUESTER"
CHANNEL = "C0GENERAL"
SECRET = "blueprint-kit-secret"


@dataclass(frozen=True)
class Prompt:
    """An open prompt: what `user` is asked, and the wait a click answers."""

    user: str
    text: str
    request: CallbackRequest
    kind: str  # WaitForUserAction.type or WaitForButton.type


class Prompts:
    """The wait manager of people's prompts: kept from setup until teardown."""

    def __init__(self) -> None:
        self.open: dict[tuple[str, str, str, int], list[Prompt]] = {}

    async def setup(self, request: CallbackRequest, handler: Any) -> str:
        key = (request.workflow_id, request.thread_id, request.name, request.pc)
        kind = str(getattr(handler, "type", ""))
        self.open[key] = [Prompt(u, handler.text, request, kind) for u in handler.recipients]
        return json.dumps({"prompts": handler.recipients})

    async def teardown(self, request: CallbackRequest, handler: Any, handled: bool) -> None:
        self.open.pop((request.workflow_id, request.thread_id, request.name, request.pc), None)

    def of(self, user: str, workflow_id: str | None = None) -> list[Prompt]:
        return [
            p
            for prompts in self.open.values()
            for p in prompts
            if p.user == user and workflow_id in (None, p.request.workflow_id)
        ]


class Outbox(Notifications):
    """`notify`'s service, keeping each post (once per workflow and step) by recipient."""

    def __init__(self) -> None:
        self.sent: dict[str, tuple[str, str]] = {}  # key -> (to, text)

    async def send(
        self,
        workflow_id: str,
        step: str,
        to: str,
        text: str,
        blocks: list[dict[str, Any]] | None = None,
    ) -> dict[str, str]:
        self.sent.setdefault(f"{workflow_id}:{step}", (to, text))
        return {"channel": to, "ts": str(len(self.sent))}


class Receiver:
    """The kit's webhook receiver: checks signatures, accepts each key once."""

    def __init__(self, secret: str) -> None:
        self.secret = secret
        self.accepted: dict[str, tuple[str, Any]] = {}  # key -> (name, body)
        self.attempts = 0
        self.failing = 0

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.attempts += 1
        if not verify(self.secret, request.headers, body):
            return web.Response(status=401, text="bad signature")
        if self.failing:
            self.failing -= 1
            return web.Response(status=500, text="failing as told")
        key = request.headers.get(IDEMPOTENCY_KEY, "")
        self.accepted.setdefault(key, (request.match_info["name"], json.loads(body)))
        return web.Response(status=200)


class BlueprintKit:
    """`BlueprintKit(blueprint, ...)`; used as `async with`."""

    def __init__(
        self,
        *blueprints: Blueprint,
        services: Sequence[object] = (),
        callbacks: Mapping[str, CallbackManager] | None = None,
        requester: str = REQUESTER,
        database_url: str | None = None,
    ) -> None:
        from bot.base import blueprint as base

        self.blueprints = (base, *blueprints)
        self.requester = requester
        self.prompts = Prompts()
        self.outbox = Outbox()
        self.receiver = Receiver(SECRET)
        self.webhooks = Webhooks(SECRET)
        self._runner: web.AppRunner | None = None
        self.settings = Settings(webhook_secret=SECRET)
        managers: dict[str, CallbackManager] = {
            **default_callbacks(),
            WaitForUserAction.type: self.prompts,
            WaitForButton.type: self.prompts,
            **(callbacks or {}),
        }
        self.kit = WorkflowTestKit(
            [cls for b in self.blueprints for cls in b.workflows],
            callbacks=managers,
            database_url=database_url,
            services=[self.outbox, self.webhooks, *services],
        )
        self.engine = self.kit.engine

    async def __aenter__(self) -> BlueprintKit:
        app = web.Application()
        app.router.add_post("/hooks/{name}", self.receiver.handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        await web.SockSite(self._runner, sock).start()
        base = f"http://127.0.0.1:{sock.getsockname()[1]}/hooks/"
        self.settings = self.settings.model_copy(update={"webhook_receiver": base})
        await self.kit.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.kit.__aexit__(exc_type, exc, tb)
        await self.webhooks.close()
        if self._runner is not None:
            await self._runner.cleanup()

    # --- as people would -------------------------------------------------------------------

    async def launch(
        self, command: str, text: str = "", *, user: str = "", channel: str = CHANNEL
    ) -> str:
        """Type `command text` (`/ops deploy ...` picks a subcommand): the workflow it
        starts, run until it waits. A form's fields are given as `key=value` words, all the
        required ones (Slack would open the form for the rest): `UsageError` or
        `FormErrors` say what the person would read."""
        name, _, rest = command.partition(" ")
        launches = [
            launch for b in self.blueprints for launch in b.launches if launch.command == name
        ]
        launch, own = choose(launches, f"{rest} {text}".strip())
        if launch is None:
            raise UsageError(f"no blueprint of the kit launches {command!r}")
        invocation = Invocation(
            user=user or self.requester,
            text=own,
            command=name,
            channel=channel,
            subcommand=launch.subcommand,
            settings=self.settings,
        )
        form = None
        if launch.launch_form is not None:
            values, missing = launch.launch_form.read_words(own)
            if missing:
                raise UsageError(f"the form's required fields are missing: {missing}")
            form = launch.launch_form.validate(values)
        workflow_id = await self.engine.new_workflow(await made(launch, invocation, form))
        await self.drain()
        return workflow_id

    async def approve(self, workflow_id: str, user: str) -> Any:
        """`user` clicks Approve in their DM of `workflow_id`."""
        return await self._answer(workflow_id, user, {"user": user, "decision": APPROVE})

    async def deny(self, workflow_id: str, user: str, reason: str) -> Any:
        """`user` clicks Deny and gives `reason`."""
        return await self._answer(
            workflow_id, user, {"user": user, "decision": DENY, "reason": reason}
        )

    async def press(self, workflow_id: str, user: str) -> Any:
        """`user` presses the button of their `WaitForButton` DM."""
        return await self._answer(workflow_id, user, {"user": user}, WaitForButton.type)

    async def _answer(
        self, workflow_id: str, user: str, input: Any, kind: str = WaitForUserAction.type
    ) -> Any:
        prompts = [p for p in self.prompts.of(user, workflow_id) if p.kind == kind]
        if not prompts:
            raise LookupError(f"{user} has no open prompt of workflow {workflow_id}")
        output = await self.engine.on_callback(prompts[0].request, input, actor=user)
        await self.drain()
        return output

    # --- what happened ---------------------------------------------------------------------

    def asked(self, user: str) -> list[str]:
        """What `user`'s open prompts ask (the request texts), oldest first."""
        return [p.text for p in self.prompts.of(user)]

    def told(self, to: str) -> list[str]:
        """What `notify` steps posted to `to` (a user or a channel), in order."""
        return [text for recipient, text in self.outbox.sent.values() if recipient == to]

    def delivered(self, name: str) -> list[Any]:
        """The bodies the webhooks named `name` delivered, once per idempotency key."""
        return [body for hook, body in self.receiver.accepted.values() if hook == name]

    def fail_next(self, count: int) -> None:
        """The receiver answers 500 to the next `count` deliveries."""
        self.receiver.failing = count

    async def drain(self) -> int:
        return await self.kit.drain()

    async def advance(self, delta: timedelta) -> int:
        """Move the clock and run what became due (timeouts, retries)."""
        return await self.kit.advance(delta)

    async def waiting(self, workflow_id: str) -> list[str]:
        return await self.kit.waiting(workflow_id)

    async def data(self, workflow_id: str, kind: type[W]) -> W:
        return await self.kit.data(workflow_id, kind)
