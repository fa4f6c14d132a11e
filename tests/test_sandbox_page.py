"""The sandbox page in a real headless Chromium (Debian's, driven by Playwright): the real
bot and the built-in Slack behind it. Screenshots go to tests/artifacts/.

Without Chromium these tests are skipped with a message saying how to enable them;
`REQUIRE_BROWSER=1` (set by .ci/run) turns that skip into a failure.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

from bot import messages
from bot.sandbox.page import Sandbox, running_sandbox

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
async def page(browser: Browser, sandbox: Sandbox) -> AsyncIterator[Page]:
    context = await browser.new_context(viewport={"width": 1400, "height": 900})
    p = await context.new_page()
    errors: list[str] = []
    p.on("pageerror", lambda e: errors.append(str(e)))
    await p.goto(sandbox.url + "/")
    await expect(p.locator("#acting-as")).to_be_visible()
    yield p
    await context.close()
    assert errors == [], errors  # no script errors on the page


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
    await expect(request).to_have_count(0)  # deleted once settled
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
