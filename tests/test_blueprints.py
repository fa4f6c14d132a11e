"""Blueprints written outside the repository, as a user would: loaded through BLUEPRINTS,
launched by their own slash commands through the real app and the strict built-in Slack,
listed by the operator CLI, offered by the sandbox, printed in the manifest; and what
stops start-up."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
import yaml
from click.testing import CliRunner, Result

from bot import messages
from bot.__main__ import cli
from bot.loading import BlueprintError, load_blueprints
from bot.manifest import manifest, render
from bot.sandbox.page import running_sandbox
from bot.service import build
from tests.processes import ROOT, BotProcess, poll
from tests.receiver import SECRET as RECEIVER_SECRET
from tests.receiver import running_receiver
from tests.slackbot import (
    ALICE,
    RITA,
    Bot,
    at,
    bot_process_env,
    running_bot,
    settings_for,
    standin,
)

HELLO = '''\
"""A user's blueprint: `/hello NAME` starts a workflow whose one step DMs the requester."""

from __future__ import annotations

from typing import Any

from bot.blueprint import Blueprint, Invocation, Launch, Parts, UsageError
from workflows import S, Step, Summary, Workflow


class Greeter:
    """What the step reaches through `self.service(Greeter)`: the bot's keyed DMs."""

    def __init__(self, parts: Parts) -> None:
        self.posts = parts.posts

    async def greet(self, workflow_id: str, user: str, text: str) -> None:
        payload = {"text": f"hello {text}"}
        await self.posts.post_once(workflow_id, user, f"{workflow_id}:hello", payload, since=None)


class Hello(Workflow):
    workflow_type = "hello"

    requester: str
    text: str
    greeted: bool = False

    def definition(self) -> Any:
        return S(Step("greet", self.greet))

    async def greet(self) -> None:
        await self.service(Greeter).greet(self.workflow_id, self.requester, self.text)
        self.greeted = True

    def summary(self) -> Summary:
        outcome = "greeted" if self.greeted else ""
        return Summary(title=f"hello {self.text}", started_by=self.requester, outcome=outcome)


def start(command: Invocation) -> Hello:
    if not command.text.strip():
        raise UsageError("say whom to greet")
    return Hello(requester=command.user, text=command.text.strip())


blueprint = Blueprint(
    workflows=[Hello],
    launches=[
        Launch(
            "/hello",
            start,
            description="Say hello",
            usage="NAME",
            confirm=lambda hello: f"Greeting {hello.text}...",
        )
    ],
    services=[Greeter],
)
'''

OPS = '''\
"""Two subcommands of one command, a Home tab and a scope of its own."""

from __future__ import annotations

from typing import Any

from bot.blueprint import Blueprint, Invocation, Launch
from workflows import S, Step, Workflow


class Ping(Workflow):
    what: str

    def definition(self) -> Any:
        return S(Step("pong", self.pong))

    def pong(self) -> None:
        pass


def ping(command: Invocation) -> Ping:
    return Ping(what=command.text or "nothing")


blueprint = Blueprint(
    workflows=[Ping],
    launches=[
        Launch("/ops", ping, description="Ping a service", usage="SERVICE", subcommand="ping"),
        Launch("/ops", ping, description="Ping twice", subcommand="again"),
    ],
    scopes={"users:read": "look up who asks"},
    home_tab=True,
)
'''

MORE_OPS = """\
from bot.blueprint import Blueprint, Launch
from mycompany.ops import ping

blueprint = Blueprint(launches=[Launch("/ops", ping, description="More", subcommand="more")])
"""

BARE_OPS = """\
from bot.blueprint import Blueprint, Launch
from mycompany.ops import ping

blueprint = Blueprint(launches=[Launch("/ops", ping, description="All of it")])
"""

AGAIN = """\
from bot.blueprint import Blueprint, Launch
from mycompany.hello import start

blueprint = Blueprint(launches=[Launch("/approval", start, description="Mine now")])
"""

COPY = """\
from typing import Any

from bot.blueprint import Blueprint
from workflows import S, Workflow


class MyApproval(Workflow):
    workflow_type = "approval"

    def definition(self) -> Any:
        return S()


blueprint = Blueprint(workflows=[MyApproval])
"""

GREETER_TOO = """\
from bot.blueprint import Blueprint
from mycompany.hello import Greeter

blueprint = Blueprint(services=[Greeter])
"""

TIMERS = """\
from bot.blueprint import Blueprint
from callbacks.timeout import TimeoutManager

blueprint = Blueprint(callbacks={"timeout": lambda parts: TimeoutManager()})
"""

BAD_COMMAND = """\
from bot.blueprint import Blueprint, Launch
from mycompany.hello import start

blueprint = Blueprint(launches=[Launch("/Hello", start, description="Shouting")])
"""

RELEASE = '''\
"""A user's blueprint with a form: `/release` asks for a canary release, approved, then
hands it to the release system by a signed webhook."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from bot.blueprint import Blueprint, Invocation, Launch
from bot.config import BlueprintSettings
from bot.forms import UserId
from bot.routines.approval import APPROVED, Approval, approval
from bot.routines.notify import notify
from bot.routines.webhook import webhook, webhook_url
from workflows import If, S, Workflow
from workflows.statements import Stmt


class ReleaseSettings(BlueprintSettings):
    model_config = BlueprintSettings.prefixed("RELEASE_")
    url: str = ""


SETTINGS = ReleaseSettings()


class ReleaseForm(BaseModel):
    env: Literal["staging", "production"] = Field(title="Environment")
    canary: int = Field(10, ge=1, le=100, title="Canary %")
    approvers: list[UserId] = Field(title="Approvers")


class Release(Workflow):
    requester: str
    env: str
    canary: int
    approvers: list[str]
    url: str
    sign_off: Approval = Field(default_factory=Approval)

    def definition(self) -> Stmt:
        text = f"Release to {self.env} at {self.canary}%"
        return S(
            approval(self, "ok", self.sign_off, approvers=self.approvers,
                     requester=self.requester, text=text),
            If(self.sign_off.outcome == APPROVED,
               webhook(self, "release", url=self.url,
                       payload={"env": self.env, "canary": self.canary})),
            notify(self, "tell", to=self.requester, text=f"{text}: {self.sign_off.outcome}"),
        )


def start(command: Invocation, form: ReleaseForm) -> Release:
    url = webhook_url(SETTINGS.url, command.settings, "release", "RELEASE_URL")
    return Release(requester=command.user, url=url, **form.model_dump())


blueprint = Blueprint(
    workflows=[Release],
    launches=[Launch("/release", start, description="Release a canary", form=ReleaseForm)],
)
'''

FORMS = """\
from pydantic import BaseModel, Field, create_model

from bot.blueprint import Blueprint, Launch
from mycompany.hello import start

Huge = create_model("Huge", **{f"f{i}": (str, Field("")) for i in range(100)})


class Mapping(BaseModel):
    labels: dict[str, str]


class Plain(BaseModel):
    name: str


def launch(form: type[BaseModel], title: str = "") -> Launch:
    return Launch("/form", start, description="A form", form=form, title=title)
"""

MODULES = {
    "__init__": "",
    "forms": FORMS,
    "huge_form": "from mycompany.forms import Huge, launch\n\nlaunch(Huge)\n",
    "mapping_form": "from mycompany.forms import Mapping, launch\n\nlaunch(Mapping)\n",
    "long_title": (
        "from mycompany.forms import Plain, launch\n\n"
        "launch(Plain, title='Request a production deploy')\n"
    ),
    "release": RELEASE,
    "hello": HELLO,
    "ops": OPS,
    "more_ops": MORE_OPS,
    "bare_ops": BARE_OPS,
    "again": AGAIN,
    "copy": COPY,
    "empty": '"""Nothing declared here."""\n',
    "wrong": 'blueprint = {"workflows": []}\n',
    "greeter_too": GREETER_TOO,
    "timers": TIMERS,
    "bad_command": BAD_COMMAND,
    "broken": "from bot.blueprint import Blueprint\n\nblueprint = Blueprint(scopes=oops)\n",
}
WITH_HELLO = "bot.blueprints.approval,mycompany.hello"


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The package `mycompany`, outside the repository, importable here and by the
    processes the tests start (their PYTHONPATH)."""
    root = tmp_path / "site"
    (root / "mycompany").mkdir(parents=True)
    for name, source in MODULES.items():
        (root / "mycompany" / f"{name}.py").write_text(source)
    monkeypatch.syspath_prepend(str(root))
    yield root
    for name in [m for m in sys.modules if m == "mycompany" or m.startswith("mycompany.")]:
        del sys.modules[name]


async def finished(bot: Bot, workflow_id: str) -> bool:
    return await bot.status(workflow_id) == "finished"


async def cli_on(database_url: str, blueprints: str | None, *args: str) -> Result:
    env = {"DATABASE_URL": database_url, "BLUEPRINTS": blueprints}
    return await asyncio.to_thread(CliRunner().invoke, cli, list(args), env=env)


async def test_a_user_blueprint_launches_its_workflow_through_the_real_app(
    site: Path, tmp_path: Path
) -> None:
    database_url = f"sqlite:///{tmp_path / 'bot.db'}"
    async with (
        standin(commands=["/approval", "/hello"]) as slack,
        running_bot(slack, database_url, blueprints=WITH_HELLO) as bot,
    ):
        answer = await slack.slash_command(RITA, "world", command="/hello")
        assert answer.status == 200
        assert answer.json == {"response_type": "ephemeral", "text": "Greeting world..."}
        told = await bot.dm(RITA, "hello world")
        assert told.text == "hello world"
        empty = await slack.slash_command(RITA, "  ", command="/hello")
        assert (
            empty.json["text"] == ":warning: say whom to greet\n\n*Usage:* `/hello NAME`\nSay hello"
        )
        helped = await slack.slash_command(RITA, "help", command="/hello")
        assert helped.json["text"] == "*Usage:* `/hello NAME`\nSay hello"
        await slack.slash_command(RITA, f"{at(ALICE)} Deploy api")  # the shipped one, beside it
        await bot.request_dm(ALICE)
        hello_id = next(
            r.id
            for r in await bot.service.engine.db.list_workflows()  # type: ignore[attr-defined]
            if r.type == "hello"
        )
        await poll(lambda: finished(bot, hello_id), 10, "the hello workflow did not finish")
        assert [m.text for m in slack.visible(RITA) if not m.ephemeral_to] == ["hello world"]

        listed = await cli_on(database_url, WITH_HELLO, "workflows", "list", "--json")
        assert listed.exit_code == 0, listed.output
        rows = {row["type"]: row for row in map(json.loads, listed.stdout.splitlines())}
        assert rows["hello"]["summary"]["title"] == "hello world"
        assert rows["hello"]["summary"]["status"] == "greeted"
        assert rows["approval"]["summary"]["title"] == "Deploy api"
        table = await cli_on(database_url, WITH_HELLO, "workflows", "list")
        assert f"{hello_id[:8]}  hello world" in table.stdout
        unknown = await cli_on(database_url, WITH_HELLO, "workflows", "set", hello_id, "who=x")
        assert unknown.exit_code == 1
        assert unknown.stderr.splitlines()[-1] == "Error: hello has no field who"
        changed = await cli_on(database_url, WITH_HELLO, "workflows", "set", hello_id, "text=you")
        assert changed.exit_code == 0, changed.output
        assert (await bot.service.engine.get(hello_id)).data.text == "you"  # type: ignore[attr-defined]

        # A CLI without the blueprint lists the row by its type, and will not guess a model.
        without = await cli_on(database_url, None, "workflows", "list", "--json")
        assert {json.loads(r)["summary"]["title"] for r in without.stdout.splitlines()} == {
            "hello",
            "Deploy api",
        }
        refused = await cli_on(database_url, None, "workflows", "set", hello_id, "text=x")
        assert refused.exit_code == 1
        assert refused.stderr.splitlines()[-1] == (
            "Error: workflow type 'hello' is not registered: no blueprint in BLUEPRINTS "
            "(bot.blueprints.approval, bot.blueprints.deploy, bot.blueprints.access) defines it"
        )


async def test_a_user_blueprint_with_a_form_launches_by_modal_and_by_words(
    site: Path, tmp_path: Path
) -> None:
    """Loaded from outside the repository, launched both ways through the real app,
    approved, its webhook retried after a 500 and accepted once per idempotency key."""
    async with (
        running_receiver() as receiver,
        standin(commands=["/release"]) as slack,
        running_bot(
            slack,
            f"sqlite:///{tmp_path / 'bot.db'}",
            blueprints="mycompany.release",
            webhook_secret=RECEIVER_SECRET,
            webhook_receiver=receiver.base,
        ) as bot,
    ):
        await slack.slash_command(RITA, "", command="/release")
        await poll(lambda: slack.open_views(RITA), 10, "the form did not open")
        (form,) = slack.open_views(RITA)
        assert form.view["title"]["text"] == "Release a canary"
        (canary,) = [b for b in form.view["blocks"] if b.get("block_id") == "canary"]
        assert canary["element"] == {
            "action_id": "canary",
            "type": "number_input",
            "is_decimal_allowed": False,
            "min_value": "1",
            "max_value": "100",
            "initial_value": "10",
        }
        chosen = {"env": {"env": "production"}, "approvers": {"approvers": [ALICE]}}
        over = await slack.submit_view(RITA, form, {**chosen, "canary": {"canary": "150"}})
        assert over.status == 0
        assert form.errors == {"canary": "Enter a number between 1 and 100."}
        receiver.statuses = [500]  # the release system stumbles once
        done = await slack.submit_view(RITA, form, {**chosen, "canary": {"canary": "25"}})
        assert done.json["response_action"] == "update"
        await slack.click(ALICE, await bot.request_dm(ALICE), messages.APPROVE_ACTION)
        await bot.dm(RITA, "Release to production at 25%: approved", timeout=30)

        low = await slack.slash_command(
            RITA, f"env=staging canary=0 approvers={at(ALICE)}", command="/release"
        )
        assert "• `canary`: Input should be greater than or equal to 1" in low.json["text"]
        moon = await slack.slash_command(
            RITA, f"env=moon approvers={at(ALICE)}", command="/release"
        )
        assert "`env=moon` is not one of the choices: `staging`, `production`" in moon.json["text"]
        words = await slack.slash_command(
            RITA, f"env=staging canary=5 approvers={at(ALICE)}", command="/release"
        )
        assert words.json["text"].startswith("Started: Release")
        asks = [m for m in slack.visible(ALICE) if "Approval requested" in m.text]
        await poll(
            lambda: len([m for m in slack.visible(ALICE) if "staging" in m.text]) == 1,
            10,
            "alice was not asked again",
        )
        (second,) = [m for m in slack.visible(ALICE) if "staging" in m.text and m not in asks]
        await slack.click(ALICE, second, messages.APPROVE_ACTION)
        await bot.dm(RITA, "Release to staging at 5%: approved")

    assert sorted(receiver.accepted.values(), key=str) == [
        {"canary": 25, "env": "production"},
        {"canary": 5, "env": "staging"},
    ]
    keys = [key for key, _ in receiver.seen]
    assert len(keys) == 3
    assert len(set(keys)) == 2
    assert all(signed for _, signed in receiver.seen)


async def test_subcommands_of_one_command_from_two_blueprints(site: Path, tmp_path: Path) -> None:
    async with (
        standin(commands=["/ops"]) as slack,
        running_bot(
            slack, f"sqlite:///{tmp_path / 'bot.db'}", blueprints="mycompany.ops,mycompany.more_ops"
        ) as bot,
    ):
        listing = (await slack.slash_command(RITA, "", command="/ops")).json["text"]
        assert listing.splitlines() == [
            "*Usage:* `/ops SUBCOMMAND ...`",
            "• `/ops ping SERVICE`: Ping a service",
            "• `/ops again`: Ping twice",
            "• `/ops more`: More",
            "`/ops SUBCOMMAND help` tells more about each.",
        ]
        assert (await slack.slash_command(RITA, "help", command="/ops")).json["text"] == listing
        wrong = (await slack.slash_command(RITA, "pong api", command="/ops")).json["text"]
        assert wrong == f":warning: `/ops` has no subcommand `pong`\n\n{listing}"
        helped = await slack.slash_command(RITA, "ping help", command="/ops")
        assert helped.json["text"] == "*Usage:* `/ops ping SERVICE`\nPing a service"
        started = await slack.slash_command(RITA, "PING  api gateway", command="/ops")
        assert started.json["text"] == "Started: Ping"
        (record,) = await bot.service.engine.db.list_workflows()  # type: ignore[attr-defined]
        assert record.data == {"what": "api gateway"}
        await poll(lambda: finished(bot, record.id), 10, "ping did not finish")


def test_commands_and_types_belong_to_one_blueprint(site: Path) -> None:
    with pytest.raises(BlueprintError) as bare:
        load_blueprints(["mycompany.ops", "mycompany.bare_ops"])
    assert (
        str(bare.value)
        == "BLUEPRINTS: /ops is claimed by both mycompany.ops and mycompany.bare_ops"
    )
    with pytest.raises(BlueprintError) as twice:
        load_blueprints(["mycompany.hello", "mycompany.hello"])
    assert str(twice.value) == "BLUEPRINTS: mycompany.hello is named twice"
    with pytest.raises(BlueprintError) as nothing:
        load_blueprints(" , ")
    assert str(nothing.value).startswith("BLUEPRINTS: name at least one blueprint module")
    with pytest.raises(BlueprintError) as path:
        load_blueprints("my-company.x")
    assert str(path.value) == "BLUEPRINTS: 'my-company.x' is not a module path such as a.b.c"
    with pytest.raises(BlueprintError) as timers:
        load_blueprints("mycompany.timers")
    assert str(timers.value) == (
        "BLUEPRINTS: wait type 'timeout' has a manager in both bot.base and mycompany.timers"
    )
    with pytest.raises(BlueprintError) as wrong:
        load_blueprints("mycompany.wrong")
    assert str(wrong.value) == "BLUEPRINTS: mycompany.wrong.blueprint is a dict, not a Blueprint"
    with pytest.raises(BlueprintError) as shouting:
        load_blueprints("mycompany.bad_command")
    assert str(shouting.value) == (
        "BLUEPRINTS: importing mycompany.bad_command failed: ValueError: '/Hello' is not a "
        "slash command Slack accepts: a slash, then at most 31 lowercase letters, digits, - "
        f"or _ ({site}/mycompany/bad_command.py:4)"
    )
    # A form Slack would refuse stops start-up too, before anyone opens it.
    for module, problem in [
        ("huge_form", "100 fields do not fit a Slack modal (at most 99 beside its introduction)"),
        ("mapping_form", "field 'labels': no Slack input holds a dict[str, str]"),
        (
            "long_title",
            "the form's title 'Request a production deploy' is over Slack's 24 characters",
        ),
    ]:
        with pytest.raises(BlueprintError) as refused:
            load_blueprints(f"mycompany.{module}")
        assert str(refused.value) == (
            f"BLUEPRINTS: importing mycompany.{module} failed: ValueError: /form: {problem} "
            f"({site}/mycompany/{module}.py:3)"
        )
    loaded = load_blueprints(" mycompany.ops , mycompany.more_ops ")
    assert loaded.names == ["mycompany.ops", "mycompany.more_ops"]
    assert [launch.name for launch in loaded.commands()["/ops"]] == [
        "/ops ping",
        "/ops again",
        "/ops more",
    ]


async def test_two_services_of_one_type_are_refused_when_the_bot_is_built(
    site: Path, tmp_path: Path
) -> None:
    """`self.service(Greeter)` could not tell them apart."""
    async with standin() as slack:
        settings = settings_for(
            slack,
            f"sqlite:///{tmp_path / 'bot.db'}",
            blueprints="mycompany.hello,mycompany.greeter_too",
        )
        with pytest.raises(BlueprintError) as twice:
            build(settings)
    assert str(twice.value) == (
        "BLUEPRINTS: two services of type Greeter, from mycompany.hello and mycompany.greeter_too"
    )


def test_the_manifest_lists_each_command_its_scopes_and_the_home_tab_once(
    site: Path,
) -> None:
    # The base's App Home inbox shows every approval: any bot has the Home tab.
    shipped = manifest(load_blueprints("bot.blueprints.approval"))
    assert shipped["features"]["app_home"]["home_tab_enabled"] is True
    assert shipped["settings"]["event_subscriptions"]["bot_events"] == ["app_home_opened"]
    loaded = load_blueprints("bot.blueprints.approval,mycompany.ops,mycompany.more_ops")
    data = manifest(loaded)
    assert data["features"]["app_home"] == {"home_tab_enabled": True, "messages_tab_enabled": True}
    assert data["settings"]["event_subscriptions"] == {
        "request_url": "https://YOUR-HOST/slack/events",
        "bot_events": ["app_home_opened"],
    }
    assert [c["command"] for c in data["features"]["slash_commands"]] == ["/approval", "/ops"]
    ops = data["features"]["slash_commands"][1]
    assert ops == {
        "command": "/ops",
        "url": "https://YOUR-HOST/slack/events",
        "description": "ping: Ping a service · again: Ping twice · more: More",
        "usage_hint": "ping SERVICE | again | more",
        "should_escape": True,
    }
    assert data["oauth_config"]["scopes"]["bot"] == [
        "chat:write",
        "commands",
        "im:history",
        "im:write",
        "users:read",
    ]
    printed = CliRunner().invoke(
        cli,
        ["manifest"],
        env={"BLUEPRINTS": "bot.blueprints.approval,mycompany.ops,mycompany.more_ops"},
    )
    assert printed.exit_code == 0, printed.output
    assert printed.stdout == render(loaded)
    assert yaml.safe_load(printed.stdout) == data
    lines = printed.stdout.splitlines()
    assert "      - users:read   # look up who asks" in lines
    assert "      - commands     # the slash commands: /approval, /ops" in lines
    header = " ".join(line.removeprefix("# ") for line in lines if line.startswith("# "))
    assert "(bot.blueprints.approval, mycompany.ops, mycompany.more_ops)" in header
    assert all(len(line) <= 100 for line in lines if line.lstrip().startswith(("#", "- ")))


def start_bot(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("blueprints", "line"),
    [
        ("mycompany.nope", "BLUEPRINTS: no module named 'mycompany.nope'"),
        ("nowhere.deploys", "BLUEPRINTS: no module named 'nowhere.deploys'"),
        (
            "mycompany.empty",
            "BLUEPRINTS: mycompany.empty has no blueprint (declare `blueprint = "
            "Blueprint(...)` in it)",
        ),
        (
            "bot.blueprints.approval,mycompany.again",
            "BLUEPRINTS: /approval is claimed by both bot.blueprints.approval and mycompany.again",
        ),
        (
            "bot.blueprints.approval,mycompany.copy",
            "BLUEPRINTS: workflow type 'approval' is claimed by both bot.blueprints.approval "
            "and mycompany.copy",
        ),
        (
            "mycompany.broken",
            "BLUEPRINTS: importing mycompany.broken failed: NameError: name 'oops' is not "
            "defined ({site}/mycompany/broken.py:3)",
        ),
    ],
)
async def test_a_blueprint_that_cannot_load_stops_start_up_with_one_line(
    site: Path, tmp_path: Path, blueprints: str, line: str
) -> None:
    """A real `python -m bot`, stopped before it touches Slack or the database."""
    async with standin() as slack:
        env = bot_process_env(slack, f"sqlite:///{tmp_path / 'bot.db'}")
        env.update(BLUEPRINTS=blueprints, PYTHONPATH=f"{ROOT}{os.pathsep}{site}")
        result = await asyncio.to_thread(start_bot, env)
        assert result.returncode == 1
        assert result.stderr.splitlines() == [f"Error: {line.format(site=site)}"]
        assert slack.calls == []
        assert not (tmp_path / "bot.db").exists()
        if blueprints == "mycompany.nope":  # every command that loads them says the same
            commands = (("migrate",), ("workflows", "list"), ("manifest",), ("sandbox",))
            for command in commands:
                other = await asyncio.to_thread(start_bot, env, *command)
                assert other.returncode == 1
                assert other.stderr.splitlines()[-1] == f"Error: {line}", command
            assert not (tmp_path / "bot.db").exists()


async def test_a_real_bot_process_runs_a_user_blueprint(site: Path, tmp_path: Path) -> None:
    async with standin(commands=["/approval", "/hello"]) as slack:
        env = bot_process_env(slack, f"sqlite:///{tmp_path / 'bot.db'}")
        env.update(BLUEPRINTS=WITH_HELLO, PYTHONPATH=f"{ROOT}{os.pathsep}{site}")
        bot = BotProcess(env, tmp_path / "bot.log")
        await bot.ready()
        answer = await slack.slash_command(RITA, "from a process", command="/hello")
        assert answer.json["text"] == "Greeting from a process..."
        await poll(
            lambda: any(m.text == "hello from a process" for m in slack.visible(RITA)),
            15,
            "the requester was not greeted",
        )
        assert await bot.stop() == 0


async def test_the_sandbox_offers_the_commands_of_its_blueprints(
    site: Path, tmp_path: Path
) -> None:
    async with (
        running_sandbox(
            port=0, database_url=f"sqlite:///{tmp_path / 'sandbox.db'}", blueprints=WITH_HELLO
        ) as sandbox,
        aiohttp.ClientSession(base_url=sandbox.url) as http,
    ):
        async with http.get("/sandbox/api/state") as response:
            state = await response.json()
        assert state["commands"] == [
            {
                "command": "/approval",
                "usage": "@alice @bob [--quorum 2] [--timeout 2h] Deploy api v2.3 to production",
                "description": "Ask people to approve something",
            },
            {"command": "/hello", "usage": "NAME", "description": "Say hello"},
        ]
        assert sandbox.slack.commands == ("/approval", "/hello")
        for text in ("/hello sandbox", "/nope"):
            async with http.post("/sandbox/api/send", json={"user": RITA, "text": text}) as sent:
                assert (await sent.json())["ok"] is True
        await poll(
            lambda: any(m.text == "hello sandbox" for m in sandbox.slack.visible(RITA)),
            15,
            "the sandbox's /hello did not greet",
        )
        notes = [m.text for m in sandbox.slack.ephemerals(RITA)]
        assert any(n.startswith("`/nope` is not a valid command") for n in notes), notes
