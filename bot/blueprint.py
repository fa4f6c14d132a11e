"""`Blueprint`: everything one feature of the bot needs, declared in one importable module.

A blueprint module holds a module-level `blueprint = Blueprint(...)`; the bot loads the
modules named in `BLUEPRINTS` (bot.loading) and wires what they declare: the workflow types
into the engine, each `Launch` as a slash command, the wait managers and services (built
when the bot starts, from `Parts`), the extra Bolt listeners, and, for the manifest, the
OAuth scopes, bot events and Home tab the blueprint's own code needs.

The declaration is static: importing the module builds nothing that talks to Slack or the
database, so the operator CLI, `approval-bot manifest` and the sandbox page read the same
blueprints the running bot does. What needs the running bot (a Slack client, the engine)
is a factory or a listener function, called with the bot's parts when it starts.

    blueprint = Blueprint(
        workflows=[Hello],
        launches=[Launch("/hello", start_hello, description="Say hello", usage="NAME")],
        services=[Greeter],                  # called with Parts: Greeter(parts)
    )
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from pydantic import BaseModel

from workflows.workflow import Workflow

if TYPE_CHECKING:
    from slack_bolt.async_app import AsyncApp
    from slack_sdk.web.async_client import AsyncWebClient

    from bot.forms import Form
    from bot.priority import RequestsFirst
    from bot.settings import Settings
    from callbacks.slack import Posts
    from workflows import CallbackManager, Engine

W = TypeVar("W", bound=Workflow)

COMMAND = re.compile(r"^/[a-z0-9_-]{1,31}$")
"""Slack's slash command names: lowercase, at most 32 characters with the slash."""
SUBCOMMAND = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
DESCRIPTION_MAX = 2000  # Slack's limits for a command's description and usage hint
USAGE_MAX = 1000


class UsageError(ValueError):
    """The command is malformed; the message names the problem (shown above the help)."""


@dataclass(frozen=True)
class Invocation:
    """A slash command as a launch sees it: who typed what, where. `text` is what follows
    the command (and its subcommand), exactly as Slack delivered it, mentions escaped
    (`<@U123|alice>`), line breaks kept. `payload` is all Slack sent."""

    user: str
    text: str
    command: str
    channel: str = ""
    subcommand: str = ""
    payload: Mapping[str, Any] = field(default_factory=dict)
    settings: Settings | None = None
    """The running bot's settings (None outside it, as in a unit test)."""


@dataclass(frozen=True)
class Launch(Generic[W]):
    """A slash command (or one subcommand of it) that starts a workflow.

    `start` turns the command into the workflow to store, or raises `UsageError` (or the
    model's own `pydantic.ValidationError`) to refuse it: the person then reads the
    problem above `help`, and nothing starts. It may be a coroutine function. The workflow
    is stored before Slack is answered, so "started" is never lost; `confirm` says what
    the person reads then. `help` answers `/command help` (default: the usage hint and the
    description); `description` and `usage` are what Slack's autocompletion shows.

    With a `form` (a pydantic model: bot.forms), the command alone opens it as a modal
    titled `title`, `key=value` words fill it in (all required ones given: it starts at
    once; some missing: the modal opens with the rest to fill), and `start` is called
    with the validated form: `start(invocation, form)`. `help` then lists the fields."""

    command: str
    start: Callable[..., W | Awaitable[W]]
    description: str
    usage: str = ""
    subcommand: str = ""
    help: str = ""
    confirm: Callable[[W], str] | None = None
    form: type[BaseModel] | None = None
    title: str = ""
    """The form's title (at most 24 characters; default: the description, if it fits)."""
    submit: str = "Submit"

    def __post_init__(self) -> None:
        if not COMMAND.match(self.command):
            raise ValueError(
                f"{self.command!r} is not a slash command Slack accepts: a slash, then at "
                "most 31 lowercase letters, digits, - or _"
            )
        if self.subcommand and not SUBCOMMAND.match(self.subcommand):
            raise ValueError(f"subcommand {self.subcommand!r} must be one lowercase word")
        if not 0 < len(self.description) <= DESCRIPTION_MAX:
            raise ValueError(f"{self.name}: the description must be 1 to 2,000 characters")
        if len(self.usage) > USAGE_MAX:
            raise ValueError(f"{self.name}: the usage hint can be at most 1,000 characters")
        if self.form is not None:
            from bot.forms import Form  # the form's rendering needs this module's UsageError

            try:
                form = Form.of(self.form)
                form.check(self.form_title)
            except (TypeError, ValueError) as e:
                raise ValueError(f"{self.name}: {e}") from None
            object.__setattr__(self, "_form", form)

    @property
    def launch_form(self) -> Form | None:
        """The form of `form`, checked against Slack's limits when the launch was made."""
        return getattr(self, "_form", None)

    @property
    def form_title(self) -> str:
        return self.title or self.description

    @property
    def name(self) -> str:
        """How a person types it: `/approval`, or `/ops deploy`."""
        return f"{self.command} {self.subcommand}" if self.subcommand else self.command

    @property
    def help_text(self) -> str:
        form = self.launch_form
        fields = f"\n{form.help(self.name)}" if form is not None else ""
        if self.help:
            return self.help + fields
        usage = f"{self.name} {self.usage}".rstrip()
        return f"*Usage:* `{usage}`\n{self.description}{fields}"

    def confirmation(self, workflow: W) -> str:
        if self.confirm is not None:
            return self.confirm(workflow)
        return f"Started: {workflow.summary().title}"


@dataclass(frozen=True)
class Parts:
    """What the running bot lends a blueprint's factories and listeners: the settings, the
    Slack client (rate-limited, retried), `posts` (DMs posted at most once by key, found
    and deleted again, recorded in the engine's database: callbacks.slack) and
    `requests_first` (work deferred until Slack's requests in flight are answered:
    bot.priority)."""

    settings: Settings
    client: AsyncWebClient
    posts: Posts
    requests_first: RequestsFirst


Factory = Callable[[Parts], Any]
"""Builds a service or a wait manager when the bot starts (a class taking `Parts` will do)."""
Listener = Callable[["AsyncApp", "Engine", Parts], None]
"""Registers Bolt listeners (`@app.action`, `@app.view`, `@app.event`) on the bot's app."""


@dataclass(frozen=True)
class Blueprint:
    """One feature: its workflow types and how they are launched, what they wait with,
    what their steps reach (`self.service(...)`), and what Slack must grant it.

    - `callbacks`: a wait manager factory for each handler type its workflows wait on
      (`{Timeout.type: ...}`), built with `Parts`;
    - `services`: factories of the objects its steps reach through `self.service(Type)`
      (one with an `async close()` is closed when the bot stops);
    - `listeners`: functions that register extra Bolt listeners (buttons, modals, events);
    - `scopes`: the bot scopes its own code needs beyond the bot's base, each with what it
      is for (the manifest prints it beside the scope); `commands` comes with any launch;
    - `events`: the bot events its listeners receive (subscribed in the manifest);
    - `home_tab`: it publishes an App Home tab (enabled in the manifest)."""

    workflows: Sequence[type[Workflow]] = ()
    launches: Sequence[Launch[Any]] = ()
    callbacks: Mapping[str, Callable[[Parts], CallbackManager]] = field(default_factory=dict)
    services: Sequence[Factory] = ()
    listeners: Sequence[Listener] = ()
    scopes: Mapping[str, str] = field(default_factory=dict)
    events: Sequence[str] = ()
    home_tab: bool = False
