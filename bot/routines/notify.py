"""The notification step: a DM to a person or a post in a channel, at most once.

    notify(self, "tell requester", to=self.requester, text="Deployed api 2.3")
    notify(self, "announce", to="C0123DEPLOYS", text="api 2.3 is live", blocks=[...])

The message is keyed by the workflow and the step's name and posted through the bot's
`Posts` (callbacks.slack): begun is recorded before the call, the message after it, so a
step that runs again (a retry, a restart) finds it posted and posts nothing. A DM whose
earlier run died during the call is searched for in the DM (`im:history`, which the bot
has). A channel post is not searched for: reading a channel's history would ask every
workspace for `channels:history` and `groups:history`, and Slack takes no idempotency key,
so a channel post repeats only when a process died during that very call. The bot must be
a member of the channel (Slack answers `not_in_channel` otherwise: invite it); the step
fails with that said and is retried like any other.
"""

from __future__ import annotations

from typing import Any

from slack_sdk.errors import SlackApiError

from bot.blueprint import Parts
from bot.messages import FALLBACK_TEXT_MAX, cut
from callbacks.slack import Posts
from workflows import Step, Workflow


class Notifications:
    """The service `notify` steps reach: the bot's keyed posts."""

    def __init__(self, posts: Posts) -> None:
        self.posts = posts

    @classmethod
    def of(cls, parts: Parts) -> Notifications:
        return cls(parts.posts)

    async def send(
        self,
        workflow_id: str,
        step: str,
        to: str,
        text: str,
        blocks: list[dict[str, Any]] | None = None,
    ) -> dict[str, str]:
        """Post once per workflow and step name; returns where (`channel`, `ts`)."""
        payload: dict[str, Any] = {"text": cut(text, FALLBACK_TEXT_MAX)}
        if blocks:
            payload["blocks"] = blocks
        try:
            return await self.posts.post_once(
                workflow_id, to, f"{workflow_id}:notify:{step}", payload
            )
        except SlackApiError as e:
            if e.response.get("error") == "not_in_channel":
                raise RuntimeError(
                    f"cannot post in {to}: the bot is not a member of it (invite it there)"
                ) from e
            raise


def notify(
    workflow: Workflow,
    name: str,
    *,
    to: str,
    text: str,
    blocks: list[dict[str, Any]] | None = None,
) -> Step:
    """A step named `name` that posts `text` (and `blocks`, Block Kit) to `to`: a user ID
    (`U…`, their DM with the bot) or a channel ID (`C…`, `G…`)."""

    async def send() -> None:
        await workflow.service(Notifications).send(workflow.workflow_id, name, to, text, blocks)

    return Step(name, send)
