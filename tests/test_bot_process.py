"""The bot as a real process (`python -m bot`): killed with SIGKILL while a request waits,
down while a timeout comes due, started with bad settings."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bot import messages
from bot.sandbox.slack import SlackStandin
from tests.processes import ROOT, BotProcess, free_port, poll
from tests.slackbot import ALICE, BOB, RITA, at, bot_process_env


def settled(database: Path) -> bool:
    """Every workflow is waiting and no process holds it."""
    with sqlite3.connect(database) as db:
        rows = db.execute("SELECT status, lease_owner FROM workflows").fetchall()
    return bool(rows) and all(r == ("waiting", None) for r in rows)


def asked(slack: SlackStandin, user: str) -> list[object]:
    """The Approve / Deny DMs `user` still has (a record left in their place is not one)."""
    return [m for m in slack.visible(user) if "Approval requested" in m.text]


@pytest.fixture
def bot_env(slack: SlackStandin, tmp_path: Path) -> dict[str, str]:
    return bot_process_env(slack, f"sqlite:///{tmp_path / 'bot.db'}")


async def test_sigkill_while_waiting_then_a_click_after_restart(
    slack: SlackStandin, bot_env: dict[str, str], tmp_path: Path
) -> None:
    bot = BotProcess(bot_env, tmp_path / "bot.log")
    await bot.ready()
    await slack.slash_command(RITA, f"{at(ALICE)} {at(BOB)} Survive a crash")
    await poll(
        lambda: len([m for u in (ALICE, BOB) for m in slack.visible(u)]) == 2,
        15,
        "approvers were not asked",
    )
    to_alice = slack.visible(ALICE)[0]
    database = Path(bot_env["DATABASE_URL"].removeprefix("sqlite:///"))
    await poll(lambda: settled(database), 15, "the request did not settle into waiting")
    bot.kill()
    restarted = BotProcess(bot_env, tmp_path / "bot.log")
    await restarted.ready()
    answer = await slack.click(ALICE, to_alice, messages.APPROVE_ACTION)
    assert answer.status == 200
    await poll(
        lambda: any("approved" in m.text for m in slack.visible(RITA)),
        15,
        "the requester was not told",
    )
    await poll(lambda: not asked(slack, BOB), 15, "bob's message was not deleted")
    assert await restarted.stop() == 0
    posts = [m for m in slack.workspace.messages if "Approval requested" in m.text]
    assert len(posts) == 2  # the restart re-posted nothing


async def test_timeout_due_while_down_fires_right_after_start(
    slack: SlackStandin, bot_env: dict[str, str], tmp_path: Path
) -> None:
    bot = BotProcess(bot_env, tmp_path / "bot.log")
    await bot.ready()
    await slack.slash_command(RITA, f"{at(ALICE)} --timeout 2s Before the outage")
    await poll(lambda: bool(slack.visible(ALICE)), 15, "alice was not asked")
    assert await bot.stop() == 0
    # Stay down past the deadline: the timer comes due while no process runs.
    deadline = time.monotonic() + 2.5
    await poll(lambda: time.monotonic() > deadline, 5, "the clock did not move")
    assert not any("timed out" in m.text for m in slack.visible(RITA))
    restarted = BotProcess(bot_env, tmp_path / "bot.log")
    await restarted.ready()
    await poll(
        lambda: any("timed out" in m.text for m in slack.visible(RITA)),
        5,
        "the overdue timeout did not fire promptly",
    )
    await poll(lambda: not asked(slack, ALICE), 5, "alice's message was not deleted")
    assert await restarted.stop() == 0


def test_missing_setting_stops_start_up_with_one_line(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLACK_")}
    result = subprocess.run(
        [sys.executable, "-m", "bot"],
        cwd=tmp_path,
        env={**env, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "Error: SLACK_BOT_TOKEN is not set (required in HTTP mode); see .env.example"
    ]
    bad = subprocess.run(
        [sys.executable, "-m", "bot"],
        cwd=tmp_path,
        env={
            **env,
            "PYTHONPATH": str(ROOT),
            "SLACK_BOT_TOKEN": "xoxb-1",
            "SLACK_SIGNING_SECRET": "s",
            "PORT": "eighty",
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 1
    assert bad.stderr.strip().splitlines() == [
        "Error: PORT: Input should be a valid integer, unable to parse string as an integer"
    ]


async def test_a_newer_database_schema_stops_start_up(
    bot_env: dict[str, str], tmp_path: Path
) -> None:
    from workflows import schema
    from workflows.store import SQLStore

    store = SQLStore(bot_env["DATABASE_URL"])
    await store.start()
    async with store.engine.begin() as conn:
        await conn.exec_driver_sql("UPDATE alembic_version SET version_num = '0099'")
    await store.close()
    result = await asyncio.to_thread(run_bot, bot_env)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        "Error: the database schema is at revision '0099', newer than this code (which "
        f"knows up to {schema.head()!r}): run a newer release"
    )


def run_bot(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )


async def test_a_good_start_says_where_it_is_connected(
    bot_env: dict[str, str], tmp_path: Path
) -> None:
    log = tmp_path / "bot.log"
    bot = BotProcess(bot_env, log)
    await bot.ready()
    assert await bot.stop() == 0
    first = log.read_text()
    assert " INFO bot.service [] connected to Sandbox as @approvals\n" in first
    assert " WARNING " not in first
    # A fresh database: the migrations that run are logged, Alembic's set-up chatter is not.
    assert "Running upgrade  -> 0001" in first
    assert "Context impl" not in first
    assert "Will assume" not in first
    restarted = BotProcess(bot_env, log)
    await restarted.ready()
    assert await restarted.stop() == 0
    second = log.read_text().removeprefix(first)
    assert "connected to Sandbox as @approvals" in second
    assert "Running upgrade" not in second  # nothing to migrate: nothing said
    assert "alembic" not in second


async def test_a_refused_token_stops_start_up_with_one_line(
    bot_env: dict[str, str], tmp_path: Path
) -> None:
    token = "xoxb-1234-revoked-abcdef"
    result = await asyncio.to_thread(run_bot, {**bot_env, "SLACK_BOT_TOKEN": token})
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "Error: SLACK_BOT_TOKEN was refused by Slack (invalid_auth)"
    ]
    assert token not in result.stdout + result.stderr
    assert not (tmp_path / "bot.db").exists()  # stopped before touching the database


def test_the_example_settings_stop_start_up(tmp_path: Path) -> None:
    """`cp .env.example .env` left as it is names the first setting to fill in."""
    (tmp_path / ".env").write_text((ROOT / ".env.example").read_text())
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("SLACK_") and k != "DATABASE_URL"
    }
    env["PYTHONPATH"] = str(ROOT)

    def start(**extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "bot"],
            cwd=tmp_path,
            env={**env, **extra},
            capture_output=True,
            text=True,
            timeout=60,
        )

    unedited = start()
    assert unedited.returncode == 1
    assert unedited.stderr.splitlines() == [
        "Error: SLACK_BOT_TOKEN is still the example value of .env.example: set it to your "
        "app's own (see the comment above it there)"
    ]
    half = start(SLACK_BOT_TOKEN="xoxb-1234-real-looking")
    assert half.returncode == 1
    assert half.stderr.splitlines() == [
        "Error: SLACK_SIGNING_SECRET is still the example value of .env.example: set it to "
        "your app's own (see the comment above it there)"
    ]
    assert "xoxb-1234-real-looking" not in half.stdout + half.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == [".env"]


async def test_an_unreachable_database_stops_start_up_with_one_line(
    bot_env: dict[str, str],
) -> None:
    port = free_port()  # nothing listens there
    url = f"postgresql://approvals:secret-pw@127.0.0.1:{port}/approvals"
    result = await asyncio.to_thread(run_bot, {**bot_env, "DATABASE_URL": url})
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"Error: DATABASE_URL: cannot connect to postgresql://approvals:***@127.0.0.1:{port}/"
        f"approvals: [Errno 111] Connect call failed ('127.0.0.1', {port})"
    ]
    assert "secret-pw" not in result.stdout + result.stderr


async def test_an_unreachable_slack_stops_start_up_with_one_line(
    bot_env: dict[str, str],
) -> None:
    api = f"http://127.0.0.1:{free_port()}/api/"  # nothing listens there
    result = await asyncio.to_thread(run_bot, {**bot_env, "SLACK_API_URL": api})
    assert result.returncode == 1
    *retries, line = result.stderr.splitlines()
    # Retried first, as every Web API call is (a blip at start-up is no reason to stop).
    assert len(retries) == 3
    assert all("A retry handler found: AsyncConnectionErrorRetryHandler" in r for r in retries)
    assert line.startswith(f"Error: cannot reach Slack at {api} (Cannot connect to host ")
    assert line.endswith("; check SLACK_API_URL and the network")
    assert bot_env["SLACK_BOT_TOKEN"] not in result.stdout + result.stderr
