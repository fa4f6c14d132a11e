"""The bot's base: what every bot has, whichever blueprints it loads.

The wait conditions of `callbacks/` made real in Slack: `Timeout`'s durable timers,
`WaitForUserAction`'s Approve / Deny DMs and `WaitForButton`'s one-button DMs (posted by
`SlackActionManager` in setup, deleted in teardown), with the listeners that answer their
buttons and the Deny modal (bot.actions). They stay here rather than in one blueprint
because any blueprint's workflow may wait for a person's decision or press. Declared as a
blueprint like any other, loaded first (bot.loading), so its scopes reach the manifest and
its wait types cannot be claimed twice. Its services are those the routines' steps reach
(bot.routines): keyed posts for `notify`, the HTTP session and secret for `webhook`, the
request card, and the App Home inbox (bot.home), which any approval appears in, so the
base enables the Home tab and subscribes to `app_home_opened`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot import actions, home, messages, requester
from bot.blueprint import Blueprint, Parts
from bot.routines.card import Cards
from bot.routines.notify import Notifications
from bot.routines.webhook import Webhooks
from callbacks.button import WaitForButton
from callbacks.controls import ControlsManager, RequesterControl
from callbacks.slack import SlackActionManager
from callbacks.timeout import Timeout, TimeoutManager
from callbacks.user_action import WaitForUserAction

if TYPE_CHECKING:
    from slack_bolt.async_app import AsyncApp

    from workflows import CallbackRequest, Engine


def render_request(request: CallbackRequest, handler: WaitForUserAction) -> dict[str, object]:
    """The DM an approver gets for `handler`."""
    return messages.approval_request(
        request,
        requester=handler.requester,
        text=handler.text,
        deadline=handler.deadline,
        quorum=handler.quorum,
        approvers=handler.panel or len(handler.approvers),
    )


def render_button(request: CallbackRequest, handler: WaitForButton) -> dict[str, object]:
    """The DM a `WaitForButton` posts."""
    return messages.button_prompt(request, handler.text, handler.label)


def _buttons(parts: Parts) -> SlackActionManager:
    return SlackActionManager(parts.posts, render_button)


def _timeouts(parts: Parts) -> TimeoutManager:
    return TimeoutManager()


def _user_actions(parts: Parts) -> SlackActionManager:
    return SlackActionManager(parts.posts, render_request)


def _controls(parts: Parts) -> ControlsManager:
    return ControlsManager()


def _decisions(app: AsyncApp, engine: Engine, parts: Parts) -> None:
    actions.register(app, engine, parts.requests_first)
    requester.register(app, engine, parts.requests_first)


blueprint = Blueprint(
    callbacks={
        Timeout.type: _timeouts,
        WaitForUserAction.type: _user_actions,
        WaitForButton.type: _buttons,
        RequesterControl.type: _controls,
    },
    listeners=[_decisions, home.register],
    services=[Notifications.of, Webhooks.of, Cards.of, home.Home.of],
    events=["app_home_opened"],
    home_tab=True,
    scopes={
        "chat:write": "post DMs (Approve / Deny requests, outcomes), delete them, reply "
        "ephemerally",
        "im:history": "find a DM already posted before posting it again, when a step, setup "
        "or teardown runs again after a crash",
        "im:write": "open DMs with approvers and requesters",
    },
)
