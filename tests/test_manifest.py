"""`manifest.yml` asks for exactly the scopes the code needs, derived from the code.

The source of `bot/` and `callbacks/` is read with `ast` for Web API calls on a slack_sdk
client (`client.chat_postMessage(...)`, `self.client.views_open(...)`, `api_call("...")`);
each is mapped to its API method through slack_sdk's own `AsyncWebClient`, and the method to
its scope through the built-in Slack's method table. A method whose scope depends on the
conversation (`conversations.history`) is followed back within its function to where the
conversation comes from: a DM opened with `conversations.open`, or a literal ID.
`bot/sandbox/` is left out: it is Slack's side (the built-in Slack and its page).
"""

from __future__ import annotations

import ast
import inspect
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import slack_sdk.web.async_client

from bot.sandbox.slack import SlackStandin
from bot.slackapi import METHODS, bot_scopes, read_manifest
from tests.processes import ROOT

SOURCES = (ROOT / "bot", ROOT / "callbacks")
SLACK_SIDE = ROOT / "bot" / "sandbox"


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


def slash_commands(tree: ast.Module) -> set[str]:
    """The slash commands registered with `@app.command("/...")`."""
    return {
        node.args[0].value
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "command"
        and node.args
        and isinstance(node.args[0], ast.Constant)
        and isinstance(node.args[0].value, str)
        and node.args[0].value.startswith("/")
    }


def sources() -> Iterator[tuple[ast.Module, str]]:
    for folder in SOURCES:
        for path in sorted(folder.rglob("*.py")):
            if not path.is_relative_to(SLACK_SIDE):
                yield ast.parse(path.read_text(), str(path)), str(path.relative_to(ROOT))


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


CALLS = [call for tree, name in sources() for call in api_calls(tree, name)]
COMMANDS = {command for tree, _ in sources() for command in slash_commands(tree)}


def test_the_manifest_asks_for_exactly_the_scopes_the_code_needs() -> None:
    needed = needed_scopes(CALLS) | ({"commands"} if COMMANDS else set())
    granted = set(bot_scopes(read_manifest()))
    assert granted == needed, (
        f"missing from manifest.yml: {sorted(needed - granted)}; "
        f"asked for but unused: {sorted(granted - needed)}"
    )


def test_the_code_calls_the_web_api_where_expected() -> None:
    """The walk sees the calls (were it blind, the scope test above would pass on nothing)."""
    methods = {call.method for call in CALLS}
    assert {"chat.postMessage", "chat.delete", "conversations.open", "views.open"} <= methods
    history = [c for c in CALLS if c.method == "conversations.history"]
    assert history
    assert {c.conversation for c in history} == {"D"}  # DMs only: im:history
    assert {"/approval"} == COMMANDS


def test_every_slash_command_the_code_registers_is_in_the_manifest() -> None:
    declared = {c["command"] for c in read_manifest()["features"]["slash_commands"]}
    assert declared == COMMANDS


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
