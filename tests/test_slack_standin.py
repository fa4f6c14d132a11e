"""The built-in Slack refuses what Slack refuses, answered to a real `AsyncWebClient`."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

import aiohttp
import pytest
from aiohttp import web
from slack_sdk.errors import SlackApiError
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient

from bot import messages
from bot.blueprints.approval.outcomes import outcome_message
from bot.sandbox.slack import SlackStandin
from bot.slack import make_client
from bot.slackapi import bot_scopes, read_manifest
from tests.processes import poll
from tests.slackbot import ALICE, APP_TOKEN, BOT_TOKEN, RITA, SIGNING_SECRET, standin
from workflows import CallbackRequest

MANIFEST_SCOPES = bot_scopes(read_manifest())
REQUEST = CallbackRequest(workflow_id="w1", thread_id="main", name="ask", pc=3)


def client(slack: SlackStandin, token: str = BOT_TOKEN) -> AsyncWebClient:
    """The bot's own client (no retries), with `token` ("" sends none)."""
    return make_client(token, slack.api_url, retries=0)


async def refused(call: Any) -> dict[str, Any]:
    """The body of Slack's refusal of the awaitable `call`."""
    with pytest.raises(SlackApiError) as caught:
        await call
    body: dict[str, Any] = caught.value.response.data  # type: ignore[assignment]
    return body


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


# --- tokens ---------------------------------------------------------------------------------


async def test_no_token_is_not_authed_and_a_wrong_one_invalid_auth(slack: SlackStandin) -> None:
    assert await refused(client(slack, "").auth_test()) == {"ok": False, "error": "not_authed"}
    wrong = client(slack, "xoxb-not-the-token")
    assert await refused(wrong.auth_test()) == {"ok": False, "error": "invalid_auth"}
    app_token = client(slack, APP_TOKEN)  # an app-level token is no bot token
    assert (await refused(app_token.chat_postMessage(channel=ALICE, text="hi")))["error"] == (
        "invalid_auth"
    )
    assert (await client(slack).auth_test())["user_id"] == "U0BOT"
    assert slack.workspace.messages == []


async def test_a_token_is_read_from_the_header_or_a_form_body_never_the_query_string(
    slack: SlackStandin, http: aiohttp.ClientSession
) -> None:
    url = f"{slack.api_url}auth.test"
    async with http.get(url, params={"token": BOT_TOKEN}) as response:
        assert await response.json() == {"ok": False, "error": "not_authed"}
    async with http.post(url, data={"token": BOT_TOKEN}) as response:
        assert (await response.json())["ok"] is True
    async with http.post(url, json={"token": BOT_TOKEN}) as response:
        assert await response.json() == {"ok": False, "error": "not_authed"}
    headers = {"Authorization": f"Bearer {BOT_TOKEN}"}
    async with http.get(url, headers=headers) as response:
        assert (await response.json())["ok"] is True


# --- scopes ---------------------------------------------------------------------------------


async def test_a_call_without_its_scope_is_missing_scope_as_slack_answers_it(
    slack: SlackStandin, http: aiohttp.ClientSession
) -> None:
    assert "users:read" not in MANIFEST_SCOPES  # the bot never looks people up
    assert slack.scopes == MANIFEST_SCOPES
    body = await refused(client(slack).users_info(user=ALICE))
    assert body == {
        "ok": False,
        "error": "missing_scope",
        "needed": "users:read",
        "provided": ",".join(MANIFEST_SCOPES),
    }
    assert slack.errors_of("users.info") == ["missing_scope"]
    headers = {"Authorization": f"Bearer {BOT_TOKEN}"}
    async with http.get(f"{slack.api_url}users.info?user={ALICE}", headers=headers) as response:
        assert response.status == 200
        assert response.headers["X-OAuth-Scopes"] == ",".join(MANIFEST_SCOPES)
        assert response.headers["X-Accepted-OAuth-Scopes"] == "users:read"


async def test_granted_scopes_can_be_set_and_history_needs_the_scope_of_its_conversation() -> None:
    async with standin(scopes=[*MANIFEST_SCOPES, "users:read"]) as slack:
        assert (await client(slack).users_info(user=ALICE))["user"]["name"] == "alice"
        dm = (await client(slack).conversations_open(users=ALICE))["channel"]["id"]
        assert (await client(slack).conversations_history(channel=dm))["messages"] == []
        general = await refused(client(slack).conversations_history(channel="C0GENERAL"))
        assert (general["error"], general["needed"]) == ("missing_scope", "channels:history")
    without = [s for s in MANIFEST_SCOPES if s != "im:history"]
    async with standin(scopes=without) as slack:
        dm = (await client(slack).conversations_open(users=ALICE))["channel"]["id"]
        body = await refused(client(slack).conversations_history(channel=dm))
        assert body == {
            "ok": False,
            "error": "missing_scope",
            "needed": "im:history",
            "provided": ",".join(without),
        }


async def test_user_groups_need_usergroups_read() -> None:
    async with standin() as slack:
        slack.add_usergroup("S0OPS", [ALICE, RITA])
        body = await refused(client(slack).usergroups_users_list(usergroup="S0OPS"))
        assert body["needed"] == "usergroups:read"
    async with standin(scopes=[*MANIFEST_SCOPES, "usergroups:read"]) as slack:
        slack.add_usergroup("S0OPS", [ALICE, RITA])
        listed = await client(slack).usergroups_users_list(usergroup="S0OPS")
        assert listed["users"] == [ALICE, RITA]
        missing = await refused(client(slack).usergroups_users_list(usergroup="S0NONE"))
        assert missing["error"] == "no_such_subteam"


# --- GET and POST ---------------------------------------------------------------------------


async def test_a_get_is_answered_from_its_query_string_alone(
    slack: SlackStandin, http: aiohttp.ClientSession
) -> None:
    web = client(slack)
    posted = await web.chat_postMessage(channel=ALICE, text="hello")
    dm = posted["channel"]
    headers = {"Authorization": f"Bearer {BOT_TOKEN}"}
    url = f"{slack.api_url}conversations.history"
    async with http.get(url, params={"channel": dm}, headers=headers) as response:
        assert [m["text"] for m in (await response.json())["messages"]] == ["hello"]
    async with http.get(url, data={"channel": dm}, headers=headers) as response:
        body = await response.json()  # a GET's body is not read
    assert body["error"] == "invalid_arguments"
    assert body["response_metadata"]["messages"] == ["[ERROR] missing required field: channel"]
    # slack_sdk reads history by GET, as Slack's reference prefers
    history = await web.conversations_history(channel=dm)
    assert history["messages"][0]["ts"] == posted["ts"]
    link = await web.chat_getPermalink(channel=dm, message_ts=posted["ts"])
    assert link["permalink"].endswith(f"/archives/{dm}/p{posted['ts'].replace('.', '')}")


async def test_a_json_body_is_read_only_by_methods_that_take_json(slack: SlackStandin) -> None:
    web = client(slack)
    posted = await web.api_call("chat.postMessage", json={"channel": ALICE, "text": "json"})
    dm = str(posted["channel"])
    # conversations.history takes form fields only: Slack drops a JSON body's arguments
    body = await refused(web.api_call("conversations.history", json={"channel": dm}))
    assert body["error"] == "invalid_arguments"
    assert slack.calls_of("conversations.history") == [{}]
    form = await web.api_call("conversations.history", data={"channel": dm})
    assert [m["text"] for m in form["messages"]] == ["json"]


async def test_post_methods_take_get_too_as_slack_does(slack: SlackStandin) -> None:
    """Slack takes every method's arguments from a GET's query string as well."""
    web = client(slack)
    answer = await web.api_call(
        "chat.postMessage", http_verb="GET", params={"channel": ALICE, "text": "by GET"}
    )
    assert answer["ok"] is True
    assert [m.text for m in slack.visible(ALICE)] == ["by GET"]


async def test_threads_and_their_replies(slack: SlackStandin) -> None:
    web = client(slack)
    parent = await web.chat_postMessage(channel="C0GENERAL", text="card")
    reply = await web.chat_postMessage(channel="C0GENERAL", text="step", thread_ts=parent["ts"])
    scoped = await refused(web.conversations_replies(channel="C0GENERAL", ts=parent["ts"]))
    assert scoped["needed"] == "channels:history"
    slack.scopes = (*slack.scopes, "channels:history")
    thread = await web.conversations_replies(channel="C0GENERAL", ts=parent["ts"])
    assert [m["text"] for m in thread["messages"]] == ["card", "step"]
    history = await web.conversations_history(channel="C0GENERAL")
    assert [m["text"] for m in history["messages"]] == ["card"]  # replies stay in the thread
    link = await web.chat_getPermalink(channel="C0GENERAL", message_ts=reply["ts"])
    assert link["permalink"].endswith(f"?thread_ts={parent['ts']}&cid=C0GENERAL")
    missing = await refused(web.conversations_replies(channel="C0GENERAL", ts="1.000001"))
    assert missing["error"] == "thread_not_found"


# --- Block Kit ------------------------------------------------------------------------------

SECTION = {"type": "section", "text": {"type": "mrkdwn", "text": "ok"}}
BAD_BLOCKS = [
    pytest.param([{"type": "bogus"}], "unsupported type", id="unknown-block-type"),
    pytest.param(
        [{"type": "section", "text": {"type": "mrkdwn", "text": "x" * 3001}}],
        "cannot exceed 3000 characters [json-pointer:/blocks/0]",
        id="section-text",
    ),
    pytest.param(
        [{**SECTION, "url": "https://example.com"}],
        "invalid additional property: url [json-pointer:/blocks/0]",
        id="unknown-property",
    ),
    pytest.param(
        [{"type": "section", "text": "a string"}],
        "must provide an object [json-pointer:/blocks/0/text]",
        id="string-for-object",
    ),
    pytest.param(
        [{"type": "header", "text": {"type": "mrkdwn", "text": "*Hi*"}}],
        "must be plain_text [json-pointer:/blocks/0/text/type]",
        id="mrkdwn-header",
    ),
    pytest.param(
        [{"type": "actions", "elements": [{"type": "slider", "action_id": "a"}]}],
        "unsupported type: 'slider' [json-pointer:/blocks/0/elements/0/type]",
        id="unknown-element",
    ),
    pytest.param(
        [{"type": "context", "elements": [{"type": "mrkdwn", "text": "x" * 2001}]}],
        "must be less than 2001 characters [json-pointer:/blocks/0/elements/0/text]",
        id="context-text",
    ),
    pytest.param([SECTION] * 51, "no more than 50 items allowed", id="51-blocks"),
    pytest.param(
        [{"type": "section", "text": {"type": "mrkdwn", "text": ""}}],
        "must be more than 0 characters",
        id="empty-text",
    ),
    pytest.param(
        [{**SECTION, "block_id": "a"}, {**SECTION, "block_id": "a"}],
        "duplicate block_id: a [json-pointer:/blocks/1/block_id]",
        id="duplicate-block-id",
    ),
]


@pytest.mark.parametrize(("blocks", "problem"), BAD_BLOCKS)
async def test_blocks_slack_would_refuse_are_invalid_blocks(
    slack: SlackStandin, blocks: list[dict[str, Any]], problem: str
) -> None:
    web = client(slack)
    body = await refused(web.chat_postMessage(channel=ALICE, text="t", blocks=blocks))
    assert body["error"] == "invalid_blocks"
    assert any(problem in e for e in body["errors"]), body["errors"]
    assert body["response_metadata"]["messages"] == [f"[ERROR] {e}" for e in body["errors"]]
    ephemeral = web.chat_postEphemeral(channel=ALICE, user=ALICE, text="t", blocks=blocks)
    assert (await refused(ephemeral))["error"] == "invalid_blocks"
    good = await web.chat_postMessage(channel=ALICE, text="t", blocks=[SECTION])
    update = web.chat_update(channel=good["channel"], ts=good["ts"], text="t", blocks=blocks)
    assert (await refused(update))["error"] == "invalid_blocks"
    assert [m.blocks for m in slack.workspace.messages] == [[SECTION]]


async def test_the_bots_own_payloads_pass(slack: SlackStandin) -> None:
    web = client(slack)
    request = messages.approval_request(
        REQUEST,
        requester=RITA,
        text="Deploy",
        deadline=datetime(2030, 1, 1, tzinfo=UTC),
        quorum=1,
        approvers=[ALICE],
    )
    await web.chat_postMessage(channel=ALICE, **request)
    for kind in ("approved", "denied", "timed out", "failed"):
        await web.chat_postMessage(channel=RITA, **outcome_message(kind, text="x", by=[ALICE]))
    modal = messages.deny_modal(REQUEST, "D1", "Deploy")
    assert (await web.views_open(trigger_id=slack.trigger(ALICE), view=modal))["ok"] is True


async def test_response_url_posts_are_checked_too(
    slack: SlackStandin, http: aiohttp.ClientSession
) -> None:
    url = slack.response_url_for(ALICE, "C0GENERAL")
    async with http.post(url, json={"text": "t", "blocks": [{"type": "bogus"}]}) as response:
        body = await response.json()
    assert body["error"] == "invalid_blocks"
    assert body["errors"] == ["unsupported type: 'bogus' [json-pointer:/blocks/0/type]"]
    async with http.post(url, json={"text": "t", "blocks": [SECTION]}) as response:
        assert await response.text() == "ok"
    assert [m.blocks for m in slack.ephemerals(ALICE)] == [[SECTION]]


# --- views ----------------------------------------------------------------------------------


def modal(title: str = "Deny request", **extra: Any) -> dict[str, Any]:
    return {
        "type": "modal",
        "title": {"type": "plain_text", "text": title},
        "blocks": [SECTION],
        **extra,
    }


@pytest.mark.parametrize(
    ("view", "problem"),
    [
        pytest.param(modal("x" * 25), "[json-pointer:/view]", id="long-title"),
        pytest.param({**modal(), "title": None}, "title", id="no-title"),
        pytest.param(modal(blocks=[]), "between 1 and 100 blocks", id="no-blocks"),
        pytest.param(modal(blocks=[SECTION] * 101), "between 1 and 100 blocks", id="101-blocks"),
        pytest.param(modal(type="home"), "must be modal", id="home-as-modal"),
        pytest.param(
            modal(blocks=[{"type": "bogus"}]),
            "unsupported type: 'bogus' [json-pointer:/view/blocks/0/type]",
            id="unknown-block",
        ),
        pytest.param(modal(private_metadata="x" * 3001), "private_metadata", id="metadata"),
        pytest.param(modal(colour="blue"), "invalid additional property: colour", id="extra"),
        pytest.param(
            modal(
                blocks=[
                    {
                        "type": "input",
                        "label": {"type": "plain_text", "text": "Why"},
                        "element": {"type": "plain_text_input", "action_id": "a"},
                    }
                ]
            ),
            "submit is required",
            id="input-without-submit",
        ),
    ],
)
async def test_views_slack_would_refuse_are_invalid_arguments(
    slack: SlackStandin, view: dict[str, Any], problem: str
) -> None:
    view = {k: v for k, v in view.items() if v is not None}
    trigger = slack.trigger(ALICE)
    body = await refused(client(slack).views_open(trigger_id=trigger, view=view))
    assert body["error"] == "invalid_arguments"
    found = body["response_metadata"]["messages"]
    assert all(m.startswith("[ERROR] ") for m in found)
    assert any(problem in m for m in found), found
    assert slack.open_views(ALICE) == []
    opened = await client(slack).views_open(trigger_id=trigger, view=modal())  # still usable
    assert opened["view"]["title"]["text"] == "Deny request"


async def test_checkbox_options_are_taken_and_checked(slack: SlackStandin) -> None:
    """slack_sdk parses a checkbox's options into `Option`s, whose keys it keeps to itself:
    the built-in Slack knows them, so checkboxes open and a misspelt key in one is
    refused."""
    option = {"text": {"type": "plain_text", "text": "Announce"}, "value": "yes"}

    def asking(kind: str, **extra: Any) -> dict[str, Any]:
        element = {"type": kind, "action_id": "a", "options": [{**option, **extra}]}
        block = {"type": "input", "block_id": "b", "label": option["text"], "element": element}
        return modal(blocks=[block], submit={"type": "plain_text", "text": "Go"})

    web = client(slack)
    for kind in ("checkboxes", "radio_buttons"):
        opened = await web.views_open(trigger_id=slack.trigger(ALICE), view=asking(kind))
        assert opened["view"]["blocks"][0]["element"]["options"] == [option]
    bad = asking("checkboxes", colour="blue")
    body = await refused(web.views_open(trigger_id=slack.trigger(ALICE), view=bad))
    assert any(
        "invalid additional property: colour [json-pointer:/view/blocks/0/element/options/0]" in m
        for m in body["response_metadata"]["messages"]
    ), body


async def test_views_update_push_and_their_errors(slack: SlackStandin) -> None:
    web = client(slack)
    first = (await web.views_open(trigger_id=slack.trigger(ALICE), view=modal("One")))["view"]
    updated = await web.views_update(view_id=first["id"], hash=first["hash"], view=modal("Two"))
    assert updated["view"]["id"] == first["id"]
    assert [v.view["title"]["text"] for v in slack.open_views(ALICE)] == ["Two"]
    stale = await refused(web.views_update(view_id=first["id"], hash=first["hash"], view=modal()))
    assert stale["error"] == "hash_conflict"
    assert (await refused(web.views_update(view_id="V0NONE", view=modal())))["error"] == (
        "not_found"
    )
    bad = await refused(web.views_update(view_id=first["id"], view=modal("x" * 25)))
    assert bad["error"] == "invalid_arguments"
    for title in ("Three", "Four"):
        pushed = await web.views_push(trigger_id=slack.trigger(ALICE), view=modal(title))
        assert pushed["view"]["root_view_id"] == first["id"]
    full = await refused(web.views_push(trigger_id=slack.trigger(ALICE), view=modal("Five")))
    assert full["error"] == "push_limit_reached"


async def test_views_publish_needs_the_home_tab_in_the_manifest(slack: SlackStandin) -> None:
    assert read_manifest()["features"]["app_home"]["home_tab_enabled"] is True
    home = {"type": "home", "blocks": [SECTION]}
    web = client(slack)
    slack.home_tab = False  # an app whose manifest has no Home tab
    assert (await refused(web.views_publish(user_id=ALICE, view=home)))["error"] == "not_enabled"
    with pytest.raises(ValueError, match="no Home tab"):
        await slack.open_home(ALICE)
    slack.home_tab = True
    published = await web.views_publish(user_id=ALICE, view=home)
    assert published["view"]["type"] == "home"
    as_modal = await refused(web.views_publish(user_id=ALICE, view=modal()))
    assert as_modal["error"] == "invalid_arguments"
    assert slack.workspace.homes[ALICE].view["id"] == published["view"]["id"]
    assert json.dumps(slack.workspace.homes[ALICE].view["blocks"]) == json.dumps([SECTION])
    # Published again, the Home is the same view (its id) with a new hash.
    again = await web.views_publish(user_id=ALICE, view={"type": "home", "blocks": [SECTION] * 2})
    assert again["view"]["id"] == published["view"]["id"]
    assert again["view"]["hash"] != published["view"]["hash"]
    # As strict as for a modal: 100 blocks at most, a section's text 3,000 characters.
    over = await refused(web.views_publish(user_id=ALICE, view={**home, "blocks": [SECTION] * 101}))
    assert over["error"] == "invalid_arguments"
    long = {"type": "section", "text": {"type": "mrkdwn", "text": "x" * 3001}}
    too_long = await refused(web.views_publish(user_id=ALICE, view={**home, "blocks": [long]}))
    assert too_long["error"] == "invalid_arguments"
    stale = await refused(
        web.views_publish(user_id=ALICE, view=home, hash=published["view"]["hash"])
    )
    assert stale["error"] == "hash_conflict"
    assert len(slack.workspace.homes[ALICE].view["blocks"]) == 2  # the refused changed nothing


async def serve_app(
    slack: SlackStandin, handler: Callable[[web.Request], Awaitable[web.Response]]
) -> web.AppRunner:
    """An app whose `/slack/events` is `handler`, where `slack` sends its requests."""
    app = web.Application()
    app.router.add_post("/slack/events", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    slack.app_url = f"http://127.0.0.1:{port}/slack/events"
    return runner


async def test_app_home_opened_is_sent_signed_as_slack_sends_events(slack: SlackStandin) -> None:
    received: list[tuple[dict[str, str], str]] = []

    async def events(request: web.Request) -> web.Response:
        received.append((dict(request.headers), await request.text()))
        return web.Response(text="")

    runner = await serve_app(slack, events)
    try:
        answer = await slack.open_home(ALICE)
        assert answer is not None
        assert answer.status == 200
        ((headers, body),) = received
        assert headers["Content-Type"] == "application/json"
        verifier = SignatureVerifier(SIGNING_SECRET)
        assert verifier.is_valid(
            body, headers["X-Slack-Request-Timestamp"], headers["X-Slack-Signature"]
        )
        sent = json.loads(body)
        assert sent["type"] == "event_callback"
        assert sent["event"]["type"] == "app_home_opened"
        assert sent["event"]["user"] == ALICE
        assert sent["event"]["tab"] == "home"
        assert "view" not in sent["event"]  # nothing published for alice yet
        slack.events = ()  # an app that does not subscribe to it is not told
        assert await slack.open_home(ALICE) is None
        assert len(received) == 1
    finally:
        await runner.cleanup()


async def test_a_held_burst_leaves_only_when_released(slack: SlackStandin) -> None:
    """Requests of the tasks created in `holding()` wait, built, for the release; others
    (a load already running) go at once."""
    received: list[str] = []

    async def commands(request: web.Request) -> web.Response:
        received.append(dict(parse_qsl(await request.text()))["text"])
        return web.Response(text="")

    runner = await serve_app(slack, commands)
    try:
        with slack.holding():
            held = [asyncio.ensure_future(slack.slash_command(RITA, f"held {i}")) for i in range(3)]
        await poll(lambda: slack.held == 3, 10, "the burst was not built")
        await slack.slash_command(RITA, "not held")
        assert received == ["not held"]
        assert not any(task.done() for task in held)
        slack.release_requests()
        answers = await asyncio.gather(*held)
        assert [a.status for a in answers] == [200, 200, 200]
        assert sorted(received) == ["held 0", "held 1", "held 2", "not held"]
    finally:
        await runner.cleanup()
