"""The sandbox page in a real headless Chromium (Debian's, driven by Playwright): the real
bot and the built-in Slack behind it. Screenshots go to tests/artifacts/.

Without Chromium these tests are skipped with a message saying how to enable them;
`REQUIRE_BROWSER=1` (set by .ci/run) turns that skip into a failure.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
from collections.abc import AsyncIterator
from datetime import UTC, datetime, time
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, Locator, Page, async_playwright, expect

from bot import messages
from bot.routines.webhook import IDEMPOTENCY_KEY, SIGNATURE, TIMESTAMP, sign
from bot.sandbox.page import Sandbox, running_sandbox
from tests.processes import poll
from tests.sandbox_blueprint import BLUEPRINTS

ARTIFACTS = Path(__file__).parent / "artifacts"
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]


def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        message = (
            "Debian's Chromium is not installed: `apt-get install chromium` enables "
            "the browser tests"
        )
        if os.environ.get("REQUIRE_BROWSER"):
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    path = chromium()
    async with async_playwright() as p:
        b = await p.chromium.launch(executable_path=path, headless=True, args=CHROMIUM_FLAGS)
        yield b
        await b.close()


@pytest.fixture
async def sandbox(tmp_path: Path) -> AsyncIterator[Sandbox]:
    async with running_sandbox(
        port=0, database_url=f"sqlite:///{tmp_path / 'sandbox.db'}", sweep_interval=0.1
    ) as s:
        yield s


@pytest.fixture
async def blueprint_sandbox(tmp_path: Path) -> AsyncIterator[Sandbox]:
    """The sandbox with the tests' own blueprint beside the approval (/release, /ship)."""
    async with running_sandbox(
        port=0,
        database_url=f"sqlite:///{tmp_path / 'sandbox.db'}",
        sweep_interval=0.1,
        blueprints=BLUEPRINTS,
    ) as s:
        yield s


@contextlib.asynccontextmanager
async def opened(browser: Browser, sandbox: Sandbox, **options: Any) -> AsyncIterator[Page]:
    context = await browser.new_context(viewport={"width": 1400, "height": 900}, **options)
    p = await context.new_page()
    errors: list[str] = []
    p.on("pageerror", lambda e: errors.append(str(e)))
    await p.goto(sandbox.url + "/")
    await expect(p.locator("#acting-as")).to_be_visible()
    yield p
    await context.close()
    assert errors == [], errors  # no script errors on the page


@pytest.fixture
async def page(browser: Browser, sandbox: Sandbox) -> AsyncIterator[Page]:
    async with opened(browser, sandbox) as p:
        yield p


@pytest.fixture
async def blueprint_page(browser: Browser, blueprint_sandbox: Sandbox) -> AsyncIterator[Page]:
    # Away from UTC, so a date and time read in the browser's own zone would show.
    async with opened(browser, blueprint_sandbox, timezone_id="America/New_York") as p:
        yield p


async def shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


async def act_as(page: Page, user: str) -> None:
    await page.select_option("#acting-as", user)


async def open_conversation(page: Page, conversation: str) -> None:
    await page.click(f'[data-conversation="{conversation}"]')


async def say(page: Page, text: str) -> None:
    await page.fill("#composer", text)
    await page.press("#composer", "Enter")


async def test_request_then_approve(page: Page, sandbox: Sandbox) -> None:
    await act_as(page, "U0RITA")
    await open_conversation(page, "C0GENERAL")
    # The composer's hint offers the commands of the loaded blueprints, with their usage.
    await expect(page.locator("#hint code")).to_have_text(
        [
            "/approval @alice @bob [--quorum 2] [--timeout 2h] Deploy api v2.3 to production",
            "/deploy [service=api version=2.3 approvers=@alice]",
            '/access [resource=production-db duration=2h reason="INC-42" approvers=@alice]',
        ]
    )
    await say(page, "/approval @alice @bob Deploy api v2.3 to production")
    await expect(page.locator(".message.ephemeral").last).to_contain_text(
        "Approval request sent to"
    )
    await shot(page, "1-requested")

    await act_as(page, "U0ALICE")
    await open_conversation(page, sandbox.slack.dm_channel("U0ALICE"))
    request = page.locator(".message", has_text="Deploy api v2.3 to production")
    await expect(request).to_have_count(1)
    panel = page.locator(".workflow").first
    await expect(panel).to_have_attribute("data-outcome", "waiting")
    await expect(panel.locator(".wf-title")).to_have_text("Deploy api v2.3 to production")
    await expect(panel.locator(".wf-by")).to_have_text("asked by @rita")
    await expect(panel.locator('[data-user="U0ALICE"]')).to_contain_text("@alice waiting")
    await expect(panel.locator(".wf-threads")).to_be_hidden()  # engine detail: folded away
    await shot(page, "2-approver-dm")
    await request.locator('button.bk-button[data-action-id="approval_approve"]').click()
    approve = page.locator('button.bk-button[data-action-id="approval_approve"]')
    await expect(approve).to_have_count(0)  # deleted once settled...
    kept = page.locator(".message", has_text="You approved")  # ...and a record left instead
    await expect(kept).to_contain_text("Approved by @alice")
    await expect(page.locator(".message.ephemeral").last).to_contain_text("approval is recorded")

    await act_as(page, "U0RITA")
    await open_conversation(page, sandbox.slack.dm_channel("U0RITA"))
    await expect(page.locator("#messages")).to_contain_text("approved")
    await expect(page.locator("#messages")).to_contain_text("@alice")
    panel = page.locator(".workflow").first
    await expect(panel.locator(".badge")).to_have_text("approved")
    await expect(panel.locator('[data-user="U0ALICE"]')).to_contain_text("@alice approved")
    await expect(panel.locator('[data-user="U0BOB"]')).to_contain_text("@bob did not answer")
    await panel.locator(".wf-detail > summary").click()
    await expect(panel.locator(".wf-id")).to_have_text(re.compile("^[0-9a-f]{32}$"))
    await expect(panel.locator(".wf-threads")).to_be_visible()
    await shot(page, "3-approved")


async def test_deny_with_a_reason_through_the_modal(page: Page, sandbox: Sandbox) -> None:
    await act_as(page, "U0RITA")
    await say(page, "/approval @carol Give eve admin access")
    await act_as(page, "U0CAROL")
    await open_conversation(page, sandbox.slack.dm_channel("U0CAROL"))
    await page.locator('button.bk-button[data-action-id="approval_deny"]').click()
    modal = page.locator("#modal")
    await expect(modal).to_be_visible()
    await expect(modal).to_contain_text("Deny request")
    await page.click("#modal-submit")  # no reason: Slack's client refuses it itself
    await expect(modal.locator(".input-error")).to_contain_text(
        "Please complete this required field."
    )
    await modal.locator('[data-block-id="reason"]').fill("   ")  # Slack sends it; the bot refuses
    await page.click("#modal-submit")
    await expect(modal.locator(".input-error")).to_contain_text("Please say why")
    await modal.locator('[data-block-id="reason"]').fill("Not without a ticket")
    await shot(page, "4-deny-modal")
    await page.click("#modal-submit")
    await expect(modal).to_have_count(0)
    await act_as(page, "U0RITA")
    await open_conversation(page, sandbox.slack.dm_channel("U0RITA"))
    await expect(page.locator("#messages")).to_contain_text("Not without a ticket")
    await expect(page.locator(".workflow").first.locator(".badge")).to_have_text("denied")
    await shot(page, "5-denied")


async def test_short_timeout_fires_while_watching(page: Page, sandbox: Sandbox) -> None:
    await act_as(page, "U0RITA")
    await say(page, "/approval @bob --timeout 2s Quick question")
    await open_conversation(page, sandbox.slack.dm_channel("U0RITA"))
    await expect(page.locator("#messages")).to_contain_text("timed out", timeout=15_000)
    await expect(page.locator(".workflow").first.locator(".badge")).to_have_text("timed out")
    await shot(page, "6-timed-out")


async def test_strangers_click_is_refused(page: Page, sandbox: Sandbox) -> None:
    await act_as(page, "U0RITA")
    await say(page, "/approval @alice Buy a boat")
    await act_as(page, "U0EVE")  # eve looks at alice's DM: the sandbox shows every DM
    await open_conversation(page, sandbox.slack.dm_channel("U0ALICE"))
    request = page.locator(".message", has_text="Buy a boat")
    await request.locator('button.bk-button[data-action-id="approval_approve"]').click()
    await expect(page.locator(".message.ephemeral").last).to_contain_text(
        "You are not an approver of this request."
    )
    await expect(request).to_have_count(1)  # nothing changed
    await shot(page, "7-stranger-refused")


async def test_bad_input_gets_slacks_answers(page: Page, sandbox: Sandbox) -> None:
    await act_as(page, "U0RITA")
    await say(page, "/approval @zed Deploy")
    await expect(page.locator(".message.ephemeral").last).to_contain_text(
        "@zed is not a Slack user mention"
    )
    await say(page, "/deplyo now")
    await expect(page.locator(".message.ephemeral").last).to_contain_text("is not a valid command")
    await shot(page, "8-bad-input")


async def test_updates_keep_the_buttons_under_the_pointer(page: Page, sandbox: Sandbox) -> None:
    """The page re-renders on every change; a button it replaced between mousedown and
    mouseup would lose the click. Unchanged sidebar entries and messages keep their nodes."""
    await act_as(page, "U0RITA")
    await say(page, "/approval @carol Give eve admin access")
    await act_as(page, "U0CAROL")
    await open_conversation(page, sandbox.slack.dm_channel("U0CAROL"))
    deny = page.locator('button.bk-button[data-action-id="approval_deny"]')
    general = page.locator('[data-conversation="C0GENERAL"]')
    await expect(deny).to_have_count(1)
    await deny.evaluate("button => { button.dataset.kept = 'yes'; }")
    await general.evaluate("button => { button.dataset.kept = 'yes'; }")
    for i in range(3):
        await say(page, f"thinking about it ({i})")  # a new message: the list re-renders
        await expect(page.locator(".message", has_text=f"thinking about it ({i})")).to_have_count(1)
    api = f"{sandbox.url}/sandbox/api/send"  # rita writes in #general meanwhile
    answer = await page.request.post(
        api, data={"user": "U0RITA", "channel": "C0GENERAL", "text": "any news?"}
    )
    assert answer.ok, await answer.text()
    await expect(general).to_have_class("conversation unread")  # updated in place
    await expect(general).to_have_attribute("data-kept", "yes")
    await expect(deny).to_have_attribute("data-kept", "yes")
    await deny.click()
    await expect(page.locator("#modal")).to_be_visible()


async def test_a_long_multiline_request_is_read_whole(page: Page, sandbox: Sandbox) -> None:
    await act_as(page, "U0RITA")
    details = "\n".join(
        f"{i}. " + "check the rollout plan and its dashboards " * 8 for i in range(20)
    )
    await page.fill("#composer", f"/approval @bob Deploy api v2.3\n\nSteps:\n{details}")
    await page.press("#composer", "Enter")
    await act_as(page, "U0BOB")
    await open_conversation(page, sandbox.slack.dm_channel("U0BOB"))
    request = page.locator(".message", has_text="Deploy api v2.3")
    await expect(request).to_contain_text("Steps:")
    await shot(page, "9-long-request")
    await request.locator(f'button[data-action-id="{messages.FULL_REQUEST_ACTION}"]').click()
    modal = page.locator("#modal")
    await expect(modal).to_contain_text("19. check the rollout plan")  # the end, not cut
    await expect(modal.locator("#modal-submit")).to_have_count(0)  # only Close
    await shot(page, "10-full-request")
    await page.click("#modal-cancel")
    await expect(modal).to_have_count(0)


async def test_a_typed_launch_form_in_the_modal(
    blueprint_page: Page, blueprint_sandbox: Sandbox
) -> None:
    """Every input of a launch form as Slack shows it: a select, a multi-users select, a
    bounded number with its hint, a checkbox, a date and a multiline text; checked as
    Slack's client checks it before the app hears anything."""
    page, store = blueprint_page, blueprint_sandbox.service.engine.db
    await act_as(page, "U0RITA")
    await open_conversation(page, "C0GENERAL")
    await say(page, "/release")
    modal = page.locator("#modal")
    await expect(modal.locator("#modal-title")).to_have_text("New release")

    def block(name: str) -> Locator:
        return modal.locator(f'[data-input-block="{name}"]')

    await expect(modal.locator(".modal-input > label")).to_have_text(
        [
            "Environment",
            "Reviewers",
            "Canary share (%) (optional)",
            "Announce in #general (optional)",
            "Release day",
            "Notes (optional)",
        ]
    )
    await expect(block("canary_percent").locator(".input-hint")).to_have_text(
        "Traffic that sees it first"
    )
    await expect(block("canary_percent").locator("input")).to_have_value("10")  # the default
    await expect(block("announce").locator("input[type=checkbox]")).to_be_checked()
    environment = block("environment").locator("select")
    await expect(environment.locator("option")).to_have_text(["Choose", "staging", "production"])
    people = block("reviewers").locator("select")
    await expect(people.locator("option")).to_have_text(
        ["Choose people", "rita", "alice", "bob", "carol", "eve"]
    )

    await environment.select_option("production")
    for person in ("U0ALICE", "U0CAROL", "U0BOB"):
        await people.select_option(person)
    await block("reviewers").get_by_role("button", name="Remove carol").click()
    await expect(block("reviewers").locator(".token-text")).to_have_text(["alice", "bob"])
    await block("canary_percent").locator("input").fill("80")
    await block("announce").locator("input[type=checkbox]").uncheck()
    await block("day").locator("input[type=date]").fill("2026-12-31")
    await block("notes").locator("textarea").fill("Freeze lifts at noon.\nWatch the error rate.")
    await page.click("#modal-submit")
    await expect(block("canary_percent").locator(".input-error")).to_have_text(
        "Enter a number between 1 and 50."
    )
    await expect(modal.locator(".input-error")).to_have_count(1)
    await expect(page.locator("#workflow-list")).to_have_text("No workflows yet.")
    assert await store.list_workflows() == []  # the app heard nothing
    await shot(page, "11-launch-form-error")

    await block("canary_percent").locator("input").fill("25")
    await page.click("#modal-submit")
    await expect(modal).to_contain_text("Started:")  # the form turns into the confirmation
    await page.click("#modal-cancel")
    await expect(modal).to_have_count(0)
    panel = page.locator(".workflow").first
    await expect(panel.locator(".wf-title")).to_have_text("Release to production on 2026-12-31")
    await expect(panel.locator(".wf-people li")).to_have_text(
        ["@alice reviewing", "@bob reviewing"]
    )
    await shot(page, "12-launch-form-started")
    (record,) = await store.list_workflows()
    assert record.type == "release"
    assert {k: record.data[k] for k in ("environment", "reviewers", "canary_percent")} == {
        "environment": "production",
        "reviewers": ["U0ALICE", "U0BOB"],
        "canary_percent": 25,
    }
    assert record.data["announce"] is False
    assert record.data["day"] == "2026-12-31"
    assert record.data["notes"] == "Freeze lifts at noon.\nWatch the error rate."


async def test_a_launch_forms_other_inputs_start_from_their_defaults(
    blueprint_page: Page, blueprint_sandbox: Sandbox
) -> None:
    """A users select, a conversations select, a multi-select, a time and a date and
    time, each showing its initial value (the one required input, a text, left to fill
    in); the date and time is read as UTC."""
    page, store = blueprint_page, blueprint_sandbox.service.engine.db
    await act_as(page, "U0RITA")
    await say(page, "/maintenance")
    modal = page.locator("#modal")

    def block(name: str) -> Locator:
        return modal.locator(f'[data-input-block="{name}"]')

    owner = block("owner").locator("select")
    await expect(owner).to_have_value("U0ALICE")
    await expect(owner.locator("option")).to_have_text(
        ["Choose a person", "rita", "alice", "bob", "carol", "eve"]
    )
    channel = block("channel").locator("select")
    await expect(channel).to_have_value("C0GENERAL")
    await expect(channel.locator("option:checked")).to_have_text("#general")
    await expect(block("systems").locator(".token-text")).to_have_text(["database"])
    await expect(block("daily_at").locator("input[type=time]")).to_have_value("09:30")
    starts = block("starts").locator("input[type=datetime-local]")
    await expect(starts).to_have_value("2026-12-31T14:30")
    await expect(block("starts")).to_contain_text("UTC")
    await expect(modal.locator(".optional")).to_have_count(5)  # every one has a default

    await block("reason").locator("input").fill("Kernel updates")
    await owner.select_option("U0BOB")
    await block("systems").locator("select").select_option("cache")
    await block("daily_at").locator("input").fill("22:15")
    await starts.fill("2027-01-02T03:04")
    await shot(page, "14-launch-form-defaults")
    await page.click("#modal-submit")
    await expect(modal).to_contain_text("Started:")  # the form turns into the confirmation
    await page.click("#modal-cancel")
    await expect(modal).to_have_count(0)
    await expect(page.locator(".workflow").first.locator(".wf-title")).to_have_text(
        "Maintenance of database, cache from 2027-01-02 03:04 UTC"
    )
    (record,) = await store.list_workflows()
    assert {k: record.data[k] for k in ("reason", "owner", "channel", "systems")} == {
        "reason": "Kernel updates",
        "owner": "U0BOB",
        "channel": "C0GENERAL",
        "systems": ["database", "cache"],
    }
    assert time.fromisoformat(record.data["daily_at"]) == time(22, 15)
    assert datetime.fromisoformat(record.data["starts"]) == datetime(2027, 1, 2, 3, 4, tzinfo=UTC)


async def test_the_webhooks_panel_shows_retries_and_signatures(
    blueprint_page: Page, blueprint_sandbox: Sandbox
) -> None:
    """The fail switch from the page makes the engine retry `/ship`'s webhook: the panel
    shows each attempt of the one key, its answer and its signature, and a forged
    request beside them."""
    page = blueprint_page
    panel = page.locator("#webhooks")
    await expect(panel.locator("#webhook-list")).to_contain_text("No webhooks yet")
    await page.fill("#fail-count", "2")
    await panel.get_by_role("button", name="Fail").click()
    await expect(panel.locator("#failing")).to_have_text("The next 2 deliveries get 500.")
    await act_as(page, "U0RITA")
    await say(page, "/ship api")
    deliveries = panel.locator(".webhook")
    await expect(deliveries).to_have_count(3, timeout=20_000)
    await expect(panel.locator("#failing")).to_be_hidden()
    await expect(deliveries.locator(".badge").first).to_have_text("200")
    assert [await d.get_attribute("data-attempt") for d in await deliveries.all()] == [
        "3",
        "2",
        "1",
    ]
    await expect(deliveries.locator(".wh-signed")).to_have_text(["signature ✓"] * 3)
    (record,) = await blueprint_sandbox.service.engine.db.list_workflows()
    await expect(deliveries.locator(".wh-key")).to_have_text([f"{record.id}:tell deploys"] * 3)

    async def again(secret: str) -> int:
        """The delivery sent once more, as a retry after a lost answer would be."""
        body = json.dumps({"service": "api"}).encode()
        stamp = int(datetime.now(UTC).timestamp())
        answer = await page.request.post(
            f"{blueprint_sandbox.url}/sandbox/webhooks/deploys",
            data=body,
            headers={
                "Content-Type": "application/json",
                TIMESTAMP: str(stamp),
                SIGNATURE: sign(secret, stamp, body),
                IDEMPOTENCY_KEY: f"{record.id}:tell deploys",
            },
        )
        return answer.status

    assert await again(blueprint_sandbox.service.settings.webhook_secret) == 200
    assert await again("someone else's secret") == 401
    forged, repeated = deliveries.first, deliveries.nth(1)
    await expect(repeated.locator(".badge")).to_have_text(["200", "duplicate"])
    await expect(forged).to_have_attribute("data-status", "401")
    await expect(forged.locator(".wh-signed")).to_have_text("signature ✗")
    await expect(forged.locator(".wh-attempt")).to_have_text("attempt 5")
    await forged.locator(".wh-body > summary").click()
    await expect(forged.locator(".wh-body pre")).to_have_text('{\n  "service": "api"\n}')
    delivered = deliveries.nth(2)
    await delivered.locator(".wh-body > summary").click()
    await expect(delivered.locator(".wh-body pre")).to_contain_text('"by": "U0RITA"')
    await shot(page, "13-webhooks")


async def test_deploy_through_its_form_approved_and_delivered(page: Page, sandbox: Sandbox) -> None:
    """The shipped `/deploy`, with nothing configured: its form, its approval, its signed
    webhook landing in the sandbox's receiver, and the requester told."""
    await act_as(page, "U0RITA")
    await open_conversation(page, "C0GENERAL")
    await say(page, "/deploy")
    modal = page.locator("#modal")
    await expect(modal.locator("#modal-title")).to_have_text("Request a deploy")

    def block(name: str) -> Locator:
        return modal.locator(f'[data-input-block="{name}"]')

    await expect(modal.locator(".modal-input > label")).to_have_text(
        ["Service", "Version", "Approvers", "Notes (optional)"]
    )
    await block("service").locator("select").select_option("api")
    await block("version").locator("input").fill("2.3 beta")
    await block("approvers").locator("select").select_option("U0ALICE")
    await block("notes").locator("textarea").fill("After the freeze.")
    await page.click("#modal-submit")  # the model refuses the version, under its input
    await expect(block("version").locator(".input-error")).to_have_text(
        "A version is one word of letters, digits, dots, dashes or plus signs, like 2.3 or "
        "v2.3.1-rc1"
    )
    await shot(page, "15-deploy-form-error")
    await block("version").locator("input").fill("2.3")
    await page.click("#modal-submit")
    await expect(modal).to_contain_text("Deploy of api 2.3 sent for approval to @alice.")
    await page.click("#modal-cancel")
    await expect(modal).to_have_count(0)

    await act_as(page, "U0ALICE")
    await open_conversation(page, sandbox.slack.dm_channel("U0ALICE"))
    request = page.locator(".message", has_text="Deploy api version 2.3")
    await expect(request).to_contain_text("After the freeze.")
    await request.locator('button.bk-button[data-action-id="approval_approve"]').click()

    delivered = page.locator("#webhooks .webhook")
    await expect(delivered).to_have_count(1)
    await expect(delivered.locator(".wh-signed")).to_have_text("signature ✓")
    await expect(delivered.first).to_contain_text('"service": "api"')
    await act_as(page, "U0RITA")
    await open_conversation(page, sandbox.slack.dm_channel("U0RITA"))
    await expect(page.locator("#messages")).to_contain_text("approved by @alice and handed over")
    await expect(page.locator(".workflow").first.locator(".badge")).to_have_text("deployed")
    await shot(page, "16-deploy-delivered")


async def test_the_card_updates_live_while_two_approvers_act(
    browser: Browser, page: Page, sandbox: Sandbox
) -> None:
    """Rita watches the request card in #general while alice and bob answer in their DMs
    (another browser): it changes in place, its timeline grows in its thread, and the
    thread pane, once opened, follows along."""
    await act_as(page, "U0RITA")
    await open_conversation(page, "C0GENERAL")
    await page.evaluate("document.body.dataset.loaded = 'once'")  # a reload would drop it
    await say(page, "/approval @alice @bob --quorum 2 Deploy api v2.3")
    posted = page.locator("#messages > .message:not(.ephemeral)", has_text="Deploy api v2.3")
    await expect(posted).to_have_count(1)
    card = page.locator(f'#messages > .message[data-ts="{await posted.get_attribute("data-ts")}"]')
    await expect(card).to_contain_text("Waiting for approval")
    await expect(card).to_contain_text("⏳ @alice")
    await expect(card).to_contain_text("⏳ @bob")
    await expect(card).to_contain_text("Requested by @rita · 0 of 2 approved · expires tomorrow at")
    await expect(card.locator(".blocks time")).to_have_attribute("datetime", re.compile(r"^\d{4}-"))
    buttons = card.locator("button.bk-button")
    await expect(buttons).to_have_text(["Cancel", "Extend", "Nudge"])
    assert [await b.get_attribute("data-action-id") for b in await buttons.all()] == [
        "request_cancel",
        "request_extend",
        "request_nudge",
    ]
    await expect(card.locator(".thread-summary")).to_have_count(0)  # no timeline yet
    await shot(page, "17-card-waiting")

    async with opened(browser, sandbox) as approver:
        await act_as(approver, "U0ALICE")
        await open_conversation(approver, sandbox.slack.dm_channel("U0ALICE"))
        await approver.locator('button.bk-button[data-action-id="approval_approve"]').click()
        kept = approver.locator("#messages .message", has_text="You approved")
        await expect(kept).to_contain_text(
            "You approved @rita's request · still waiting for the others · View the request"
        )
        await expect(kept).to_contain_text("Deploy api v2.3")
        await shot(approver, "18-approver-record")

        await expect(card).to_contain_text("✅ @alice")
        await expect(card).to_contain_text("⏳ @bob")
        await expect(card).to_contain_text("1 of 2 approved")
        summary = card.locator(".thread-summary")
        await expect(summary.locator(".reply-count")).to_have_text("1 reply")
        await expect(summary.locator(".reply-when")).to_have_text(
            re.compile(r"^Last reply today at \d\d:\d\d$")
        )
        await expect(page.locator("#messages")).not_to_contain_text("@alice approved")
        await shot(page, "18-card-one-approved")

        await summary.click()
        pane = page.locator("#thread")
        await expect(pane).to_be_visible()
        await expect(pane.locator(".thread-header h2")).to_have_text("Thread")
        await expect(pane.locator("#thread-channel")).to_have_text("#general")
        await expect(pane.locator("#thread-parent")).to_contain_text("1 of 2 approved")
        replies = pane.locator("#thread-replies > .message")
        await expect(replies).to_have_count(1)
        await expect(replies.first).to_contain_text(re.compile(r"approvals.*@alice approved$"))
        await replies.first.evaluate("node => { node.dataset.kept = 'yes'; }")

        await act_as(approver, "U0BOB")
        await open_conversation(approver, sandbox.slack.dm_channel("U0BOB"))
        await approver.locator('button.bk-button[data-action-id="approval_approve"]').click()
        await expect(
            approver.locator("#messages .message", has_text="You approved")
        ).to_contain_text("Approved by @alice, @bob")

    # The pane stayed open through the updates, its unchanged reply the same node.
    await expect(replies).to_have_count(2)
    await expect(replies.nth(1)).to_contain_text(re.compile(r"@bob approved$"))
    await expect(replies.first).to_have_attribute("data-kept", "yes")
    await expect(pane.locator("#thread-divider")).to_have_text("2 replies")
    await expect(card).to_contain_text(re.compile(r"Approved by @alice, @bob · \d\d:\d\d"))
    await expect(card).not_to_contain_text("Waiting for approval")
    await expect(card.locator("button.bk-button")).to_have_count(0)
    await expect(pane.locator("button.bk-button")).to_have_count(0)
    await expect(card.locator(".reply-count")).to_have_text("2 replies")
    await expect(page.locator("#messages")).not_to_contain_text("<!date")

    await pane.get_by_role("button", name="Close thread").click()
    await expect(pane).to_be_hidden()
    await card.locator(".thread-summary").click()
    await expect(pane.locator("#thread-parent")).to_contain_text("Approved by @alice, @bob")
    await expect(pane.locator("#thread-parent")).to_contain_text("✅ @alice")
    await expect(replies).to_have_text(
        [re.compile(r"@alice approved$"), re.compile(r"@bob approved$")]
    )
    await expect(page.locator("body")).to_have_attribute("data-loaded", "once")
    await shot(page, "19-card-thread")


async def test_thread_replies_stay_in_their_thread(page: Page, sandbox: Sandbox) -> None:
    """As in Slack, a reply shows only in its thread: not in the channel, and it leaves the
    channel read. The thread pane's buttons work, a reply neither moves the channel's
    scroll nor closes the pane, and the pane closes with its conversation."""

    async def as_person(path: str, **body: str) -> None:
        answer = await page.request.post(f"{sandbox.url}/sandbox/api/{path}", data=body)
        assert answer.ok, await answer.text()
        assert (await answer.json())["ok"], await answer.text()

    async def approve(user: str) -> None:
        dm = sandbox.slack.dm_channel(user)
        (asked,) = [
            m for m in sandbox.slack.visible(user, dm) if "approval_approve" in json.dumps(m.blocks)
        ]
        await as_person("click", user=user, channel=dm, ts=asked.ts, action_id="approval_approve")

    general, messages = page.locator('[data-conversation="C0GENERAL"]'), page.locator("#messages")
    rita_dm = sandbox.slack.dm_channel("U0RITA")
    await act_as(page, "U0RITA")
    await open_conversation(page, "C0GENERAL")
    await say(page, "/approval @alice @bob --quorum 2 Ship the release notes")
    posted = messages.locator("> .message:not(.ephemeral)", has_text="Ship the release notes")
    await expect(posted).to_have_count(1)
    card_ts = await posted.get_attribute("data-ts")
    card = messages.locator(f'> .message[data-ts="{card_ts}"]')
    for i in range(25):  # enough to scroll
        await as_person("send", user="U0CAROL", channel="C0GENERAL", text=f"chatter {i}")
    await expect(messages.locator(".message", has_text="chatter 24")).to_be_in_viewport()

    await open_conversation(page, rita_dm)
    await approve("U0ALICE")

    def replied() -> bool:
        return any(m.thread_ts == card_ts for m in sandbox.slack.visible("U0RITA", "C0GENERAL"))

    await poll(replied, 15, "the card's thread got no line")
    await as_person("send", user="U0RITA", channel=rita_dm, text="after the reply")
    await expect(messages.locator(".message", has_text="after the reply")).to_have_count(1)
    await expect(general).to_have_class("conversation")  # the reply left #general read

    await open_conversation(page, "C0GENERAL")
    await expect(card.locator(".reply-count")).to_have_text("1 reply")
    await expect(messages.locator("> .message")).to_have_count(27)  # the ack, the card, chatter
    await expect(messages).not_to_contain_text("@alice approved")
    await card.scroll_into_view_if_needed()
    await card.locator(".thread-summary").click()
    pane, replies = page.locator("#thread"), page.locator("#thread-replies > .message")
    await expect(replies).to_have_text([re.compile(r"@alice approved$")])
    await pane.locator('button.bk-button[data-action-id="request_nudge"]').click()
    await expect(messages.locator(".message.ephemeral").last).to_contain_text(
        "The approvers who have not answered are reminded."
    )
    await expect(replies).to_have_count(2)
    await expect(replies.nth(1)).to_contain_text(re.compile(r"@rita nudged @bob$"))
    await expect(messages).not_to_contain_text("nudged")
    await expect(card.locator(".reply-count")).to_have_text("2 replies")

    await card.scroll_into_view_if_needed()  # reading back up the channel
    await approve("U0BOB")
    await expect(replies).to_have_count(3)
    await expect(card).to_contain_text("Approved by @alice, @bob")
    await expect(card.locator(".reply-count")).to_have_text("3 replies")
    await expect(card).to_be_in_viewport()  # the channel stayed where it was read
    below = "list => list.scrollHeight - list.scrollTop - list.clientHeight"
    assert await messages.evaluate(below) > 200
    await shot(page, "20-thread-beside-the-channel")

    await sandbox.service.client.chat_delete(channel="C0GENERAL", ts=card_ts)
    for shown in (card, pane.locator("#thread-parent > .message")):  # what is left, as in Slack
        await expect(shown).to_contain_text("This message was deleted.")
        await expect(shown.locator("button.bk-button")).to_have_count(0)
    await expect(card.locator(".reply-count")).to_have_text("3 replies")
    await expect(replies).to_have_count(3)
    await shot(page, "21-thread-parent-deleted")

    await open_conversation(page, rita_dm)
    await expect(pane).to_be_hidden()
    await open_conversation(page, "C0GENERAL")
    await expect(pane).to_be_hidden()  # closed with its conversation


def test_the_page_shows_every_emoji_the_bot_writes() -> None:
    """Slack turns `:rocket:` into 🚀; the page must know each shortcode the bot's
    messages start with, or a person reads the code."""
    root = Path(__file__).resolve().parents[1]
    script = (root / "bot/sandbox/static/app.js").read_text()
    known = set(re.findall(r"(\w+): \"", script.split("const EMOJI = {", 1)[1].split("}", 1)[0]))
    written = {
        code
        for path in (root / "bot").rglob("*.py")
        for code in re.findall(r"[\"']:([a-z_]+): ", path.read_text())
    }
    assert written
    assert written <= known, f"the page cannot show {sorted(written - known)}"


async def test_the_home_tab_approving_one_of_three(page: Page, sandbox: Sandbox) -> None:
    await act_as(page, "U0RITA")
    await open_conversation(page, "C0GENERAL")
    sent = page.locator(".message.ephemeral", has_text="Approval request sent to @alice")
    for i, text in enumerate(
        ("Deploy api v2.3", "Rotate the signing keys", "Drop the search cache")
    ):
        await say(page, f"/approval @alice {text}")
        await expect(sent).to_have_count(i + 1)  # one at a time: oldest first is this order
    await poll(
        lambda: len([m for m in sandbox.slack.visible("U0ALICE") if m.blocks]) == 3,
        15,
        "alice was not asked three times",
    )

    await act_as(page, "U0ALICE")
    await open_conversation(page, "home")  # opening it tells the app, which publishes it
    home = page.locator("#messages .home")
    await expect(home.locator(".bk-header").first).to_have_text("Waiting on you (3)")
    await expect(page.locator("#app-tabs")).to_be_visible()
    await expect(page.locator(".composer")).to_be_hidden()  # a Home has no composer
    items = home.locator(".bk-section", has=page.locator("b"))
    await expect(items.locator("b")).to_have_text(
        ["Deploy api v2.3", "Rotate the signing keys", "Drop the search cache"]  # oldest first
    )
    await shot(page, "22-home-three-waiting")

    buttons = home.locator(".bk-actions").nth(1)  # under the second request
    await buttons.locator('button.bk-button[data-action-id="home_approve"]').click()
    await expect(home.locator(".bk-context").first).to_have_text(
        "Thanks, your approval is recorded."
    )
    await expect(home.locator(".bk-header").first).to_have_text("Waiting on you (2)")
    await expect(home).to_contain_text("You approved · Approved by @alice")
    await shot(page, "23-home-one-approved")

    await act_as(page, "U0RITA")  # still on the Home: now rita's
    await expect(home.locator(".bk-header").nth(1)).to_have_text("Your requests (2)")
    await expect(home).to_contain_text("Approved by @alice")
    await expect(home.locator('button.bk-button[data-action-id="request_nudge"]')).to_have_count(2)
    await shot(page, "24-home-requester")
    await open_conversation(page, sandbox.slack.dm_channel("U0RITA"))
    await expect(page.locator("#messages")).to_contain_text("approved")
