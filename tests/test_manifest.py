"""The scopes the blueprints declare are exactly those their code needs, derived from the
code, and `manifest.yml` is what `approval-bot manifest` prints for the shipped blueprints.

The source of `bot/` and `callbacks/` is read with `ast` for Web API calls on a slack_sdk
client (`client.chat_postMessage(...)`, `self.client.views_open(...)`, `api_call("...")`);
each is mapped to its API method through slack_sdk's own `AsyncWebClient`, and the method to
its scope through the built-in Slack's method table. A method whose scope depends on the
conversation (`conversations.history`) is followed back within its function to where the
conversation comes from: a DM opened with `conversations.open`, or a literal ID.
`bot/sandbox/` is left out: it is Slack's side (the built-in Slack and its page). The code
of `bot/blueprints/<name>/` is held to that blueprint's declared scopes, the rest of `bot/`
and `callbacks/` to the base's (bot.base).
"""

from __future__ import annotations

import ast
import inspect
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import slack_sdk.web.async_client

from bot.blueprints import SHIPPED
from bot.loading import BASE, load_blueprints
from bot.manifest import render
from bot.sandbox.slack import SlackStandin
from bot.slackapi import METHODS, bot_scopes, read_manifest, slash_commands
from tests.processes import ROOT
from tests.slackbot import RITA, Bot

SOURCES = (ROOT / "bot", ROOT / "callbacks")
SLACK_SIDE = ROOT / "bot" / "sandbox"
BLUEPRINTS = ROOT / "bot" / "blueprints"
SHIPPED_BLUEPRINTS = load_blueprints(SHIPPED)


@dataclass(frozen=True)
class SdkMethod:
    api: str  # the Web API method, e.g. chat.postMessage
    verb: str
    json: bool  # sent as a JSON body


def sdk_methods() -> dict[str, SdkMethod]:
    """`AsyncWebClient`'s methods by Python name, read from slack_sdk's source."""
    tree = ast.parse(inspect.getsource(slack_sdk.web.async_client))
    found: dict[str, SdkMethod] = {}
    for node in ast.walk(tree):
        if not isinstance(node, ast.AsyncFunctionDef):
            continue
        for call in ast.walk(node):
            if (
                isinstance(call, ast.Call)
                and isinstance(call.func, ast.Attribute)
                and call.func.attr == "api_call"
                and call.args
                and isinstance(call.args[0], ast.Constant)
            ):
                keywords = {k.arg: k.value for k in call.keywords}
                verb = keywords.get("http_verb")
                found[node.name] = SdkMethod(
                    api=str(call.args[0].value),
                    verb=str(verb.value) if isinstance(verb, ast.Constant) else "POST",
                    json="json" in keywords,
                )
                break
    return found


SDK = sdk_methods()


@dataclass(frozen=True)
class ApiCall:
    method: str
    where: str
    conversation: str | None  # D, C or G for conversation-dependent methods, when known


def own_nodes(scope: ast.AST) -> Iterator[ast.AST]:
    """The nodes of a module or function, not of the functions defined in it."""
    for child in ast.iter_child_nodes(scope):
        yield child
        if not isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            yield from own_nodes(child)


def opens_a_dm(call: ast.Call) -> bool:
    return isinstance(call.func, ast.Attribute) and call.func.attr in {
        name for name, sdk in SDK.items() if sdk.api == "conversations.open"
    }


def is_conversation_id(value: object) -> bool:
    return isinstance(value, str) and value[:1] in ("C", "D", "G") and value[1:].isalnum()


Functions = dict[str, ast.FunctionDef | ast.AsyncFunctionDef]


def called_name(call: ast.Call) -> str:
    func = call.func
    return (
        func.attr
        if isinstance(func, ast.Attribute)
        else func.id
        if isinstance(func, ast.Name)
        else ""
    )


def conversation_kind(
    expr: ast.expr, assigned: dict[str, list[ast.expr]], functions: Functions
) -> str | None:
    """Where a `channel=` argument comes from: `D` if from `conversations.open` (directly,
    or through a function of the same module that opens one), the first letter of a
    literal conversation ID, None when the code does not say."""
    pending, seen = [expr], set()
    while pending:
        node = pending.pop()
        for inner in ast.walk(node):
            if isinstance(inner, ast.Call) and opens_a_dm(inner):
                return "D"
            helper = functions.get(called_name(inner)) if isinstance(inner, ast.Call) else None
            if helper is not None and any(
                isinstance(n, ast.Call) and opens_a_dm(n) for n in ast.walk(helper)
            ):
                return "D"
            if isinstance(inner, ast.Constant) and is_conversation_id(inner.value):
                return str(inner.value)[0]
            if isinstance(inner, ast.Name) and inner.id not in seen:
                seen.add(inner.id)
                pending.extend(assigned.get(inner.id, []))
    return None


def api_calls(tree: ast.Module, filename: str) -> list[ApiCall]:
    calls: list[ApiCall] = []
    defined = [n for n in ast.walk(tree) if isinstance(n, ast.AsyncFunctionDef | ast.FunctionDef)]
    functions: Functions = {n.name: n for n in defined}
    scopes = [tree, *defined]
    for scope in scopes:
        nodes = list(own_nodes(scope))
        assigned: dict[str, list[ast.expr]] = {}
        for node in nodes:
            if isinstance(node, ast.Assign):
                for target in node.targets:
                    if isinstance(target, ast.Name):
                        assigned.setdefault(target.id, []).append(node.value)
            elif (
                isinstance(node, ast.AnnAssign)
                and node.value is not None
                and isinstance(node.target, ast.Name)
            ):
                assigned.setdefault(node.target.id, []).append(node.value)
        for node in nodes:
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                continue
            name = node.func.attr
            if name in SDK:
                method = SDK[name].api
            elif name == "api_call" and node.args and isinstance(node.args[0], ast.Constant):
                method = str(node.args[0].value)
            else:
                continue
            channel = next((k.value for k in node.keywords if k.arg == "channel"), None)
            kind = None if channel is None else conversation_kind(channel, assigned, functions)
            calls.append(ApiCall(method, f"{filename}:{node.lineno}", kind))
    return calls


def sources(folders: tuple[Path, ...] = SOURCES) -> Iterator[tuple[ast.Module, str]]:
    for folder in folders:
        for path in sorted(folder.rglob("*.py")):
            if not path.is_relative_to(SLACK_SIDE):
                yield ast.parse(path.read_text(), str(path)), str(path.relative_to(ROOT))


def calls_in(*folders: Path, leaving_out: Path | None = None) -> list[ApiCall]:
    return [
        call
        for tree, name in sources(folders)
        if leaving_out is None or not (ROOT / name).is_relative_to(leaving_out)
        for call in api_calls(tree, name)
    ]


def needed_scopes(calls: list[ApiCall]) -> set[str]:
    needed: set[str] = set()
    for call in calls:
        method = METHODS[call.method]
        if method.by_conversation:
            assert call.conversation is not None, (
                f"{call.where}: cannot tell what kind of conversation this {call.method} "
                "reads, so not which scope it needs; pass a channel this test can follow "
                "(from conversations.open, or a literal ID) or teach the test"
            )
        scope = method.needs(call.conversation or "")
        if scope is not None and method.token == "bot":
            needed.add(scope)
    return needed


CALLS = calls_in(*SOURCES)
COMMANDS = {launch.command for launch in SHIPPED_BLUEPRINTS.launches}


def declared(module: str) -> set[str]:
    (entry,) = [e for e in SHIPPED_BLUEPRINTS if e.module == module]
    return set(entry.blueprint.scopes)


def test_the_base_declares_exactly_the_scopes_its_code_needs() -> None:
    """The bot's own code (all but the blueprints) against the base's declared scopes."""
    needed = needed_scopes(calls_in(*SOURCES, leaving_out=BLUEPRINTS))
    assert declared(BASE) == needed, (
        f"bot.base's scopes lack {sorted(needed - declared(BASE))} and declare unused "
        f"{sorted(declared(BASE) - needed)}"
    )


@pytest.mark.parametrize("module", SHIPPED)
def test_each_shipped_blueprint_declares_the_scopes_its_own_code_needs(module: str) -> None:
    folder = ROOT / Path(*module.split("."))
    own = needed_scopes(calls_in(folder if folder.is_dir() else folder.with_suffix(".py")))
    beyond_base = own - declared(BASE)
    assert declared(module) == beyond_base, (
        f"{module}'s scopes lack {sorted(beyond_base - declared(module))} and declare "
        f"unused {sorted(declared(module) - beyond_base)}"
    )


def test_the_manifest_asks_for_exactly_the_scopes_the_code_needs() -> None:
    needed = needed_scopes(CALLS) | ({"commands"} if COMMANDS else set())
    granted = set(bot_scopes(read_manifest()))
    assert granted == needed, (
        f"missing from manifest.yml: {sorted(needed - granted)}; "
        f"asked for but unused: {sorted(granted - needed)}"
    )


def test_the_committed_manifest_is_what_approval_bot_manifest_prints(tmp_path: Path) -> None:
    """Printed by a real `approval-bot manifest` with BLUEPRINTS unset (the shipped ones),
    from a directory without a `.env`."""
    env = {k: v for k, v in os.environ.items() if k != "BLUEPRINTS"}
    printed = subprocess.run(
        [sys.executable, "-m", "bot", "manifest"],
        cwd=tmp_path,
        env={**env, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert printed.returncode == 0, printed.stderr
    assert printed.stdout == render(SHIPPED_BLUEPRINTS)
    assert printed.stdout == (ROOT / "manifest.yml").read_text(), (
        "manifest.yml is not what the blueprints ask for: run "
        "`approval-bot manifest > manifest.yml` and commit it"
    )


def test_the_code_calls_the_web_api_where_expected() -> None:
    """The walk sees the calls (were it blind, the scope test above would pass on nothing)."""
    methods = {call.method for call in CALLS}
    assert {"chat.postMessage", "chat.delete", "conversations.open", "views.open"} <= methods
    history = [c for c in CALLS if c.method == "conversations.history"]
    assert history
    assert {c.conversation for c in history} == {"D"}  # DMs only: im:history
    assert {"/approval", "/deploy", "/access"} == COMMANDS
    assert calls_in(*SOURCES, leaving_out=BLUEPRINTS)  # the base's own calls are seen too


async def test_the_bot_answers_exactly_the_commands_of_the_manifest(bot: Bot) -> None:
    """Each command `manifest.yml` declares reaches a listener of the real app; Slack
    would send no other, and the app registers no other."""
    declared_commands = slash_commands(read_manifest())
    assert set(declared_commands) == COMMANDS
    for command in declared_commands:
        answer = await bot.slack.slash_command(RITA, "help", command=command)
        assert answer.status == 200
        assert answer.json["text"].startswith("*Usage:*")
    with pytest.raises(ValueError, match="/nope is not a command of this app"):
        await bot.slack.slash_command(RITA, "help", command="/nope")
    bot.slack.commands = (*bot.slack.commands, "/nope")  # as if Slack sent it anyway
    unknown = await bot.slack.slash_command(RITA, "help", command="/nope")
    assert unknown.status == 404  # Bolt: no listener for it


def test_every_method_the_code_calls_is_one_the_built_in_slack_serves() -> None:
    unserved = sorted(
        {f"{c.method} ({c.where})" for c in CALLS if not hasattr(SlackStandin, handler(c.method))}
    )
    assert unserved == []
    assert {c.method for c in CALLS} <= set(METHODS)


def handler(method: str) -> str:
    return "_m_" + method.replace(".", "_")


def test_the_method_table_lists_exactly_what_the_built_in_slack_serves() -> None:
    served = {
        name.removeprefix("_m_")
        for name in dir(SlackStandin)
        if name.startswith("_m_") and callable(getattr(SlackStandin, name))
    }
    assert {handler(m).removeprefix("_m_") for m in METHODS} == served


@pytest.mark.parametrize("method", sorted(METHODS))
def test_slack_sdk_sends_each_method_as_the_table_says_slack_reads_it(method: str) -> None:
    """slack_sdk's verb is the one Slack's reference prefers, and what it sends as JSON is
    read as JSON, so the bot's arguments are not dropped."""
    (sdk,) = [s for s in SDK.values() if s.api == method]
    assert sdk.verb == METHODS[method].preferred
    assert not sdk.json or METHODS[method].json


def test_a_new_call_needs_its_scope_and_an_unknown_conversation_fails() -> None:
    source = (
        "async def look(client, user):\n"
        "    await client.users_info(user=user)\n"
        "    opened = await client.conversations_open(users=user)\n"
        "    dm = opened['channel']['id']\n"
        "    await client.conversations_replies(channel=dm, ts='1.2')\n"
        "    await client.api_call('usergroups.users.list', params={})\n"
        "    await client.conversations_history(channel='C0GENERAL')\n"
    )
    calls = api_calls(ast.parse(source), "new.py")
    assert needed_scopes(calls) == {
        "users:read",
        "im:write",
        "im:history",
        "usergroups:read",
        "channels:history",
    }
    unknown = api_calls(
        ast.parse("async def f(client, c):\n    await client.conversations_history(channel=c)\n"),
        "unknown.py",
    )
    with pytest.raises(AssertionError, match=r"unknown.py:2: cannot tell"):
        needed_scopes(unknown)
