"""Loading the blueprints `BLUEPRINTS` names: one list for the app, the operator CLI, the
sandbox and the manifest.

The bot's base (bot.base: the Slack side of the wait conditions) comes first, then each
named module in its order. Whatever cannot work stops start-up with one line naming the
setting: a module that cannot be imported, one without a `blueprint`, and two blueprints
claiming the same slash command, workflow type, wait type or service type.
"""

from __future__ import annotations

import importlib
import importlib.util
import re
import traceback
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bot.blueprint import Blueprint, Launch, Parts
from bot.settings import SettingsError

if TYPE_CHECKING:
    from slack_bolt.async_app import AsyncApp

    from workflows import CallbackManager, Engine, Workflow

BASE = "bot.base"
_MODULE = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")


class BlueprintError(SettingsError):
    """A blueprint named in BLUEPRINTS cannot be loaded, or clashes with another."""


@dataclass(frozen=True)
class Loaded:
    module: str
    blueprint: Blueprint


@dataclass(frozen=True)
class Blueprints:
    """The loaded blueprints, the bot's base first, and what they add up to."""

    loaded: tuple[Loaded, ...]

    def __iter__(self) -> Iterator[Loaded]:
        return iter(self.loaded)

    @property
    def names(self) -> list[str]:
        """The modules BLUEPRINTS named (the base left out)."""
        return [entry.module for entry in self.loaded if entry.module != BASE]

    @property
    def workflows(self) -> list[type[Workflow]]:
        return [cls for entry in self for cls in entry.blueprint.workflows]

    @property
    def launches(self) -> list[Launch[Any]]:
        return [launch for entry in self for launch in entry.blueprint.launches]

    def commands(self) -> dict[str, list[Launch[Any]]]:
        """Each slash command with its launches: one without a subcommand, or several
        subcommands; in the order they were declared."""
        found: dict[str, list[Launch[Any]]] = {}
        for launch in self.launches:
            found.setdefault(launch.command, []).append(launch)
        return found

    def scopes(self) -> dict[str, list[str]]:
        """Every bot scope asked for, with what each is for (one line per blueprint);
        `commands` whenever there is a slash command."""
        scopes: dict[str, list[str]] = {}
        for entry in self:
            for scope, why in entry.blueprint.scopes.items():
                scopes.setdefault(scope, []).append(why)
        if self.launches:
            scopes.setdefault("commands", []).append(
                "the slash commands: " + ", ".join(self.commands())
            )
        return dict(sorted(scopes.items()))

    @property
    def events(self) -> list[str]:
        events = {event for entry in self for event in entry.blueprint.events}
        if self.home_tab:
            events.add("app_home_opened")
        return sorted(events)

    @property
    def home_tab(self) -> bool:
        return any(entry.blueprint.home_tab for entry in self)

    def callbacks(self, parts: Parts) -> dict[str, CallbackManager]:
        """The wait managers, built for the running bot."""
        return {
            kind: make(parts) for entry in self for kind, make in entry.blueprint.callbacks.items()
        }

    def services(self, parts: Parts) -> list[object]:
        """The services, built for the running bot; two of one type would leave
        `self.service(Type)` to chance, so they are refused."""
        built: dict[type, tuple[str, object]] = {}
        for entry in self:
            for make in entry.blueprint.services:
                service = make(parts)
                kind = type(service)
                if kind in built:
                    raise BlueprintError(
                        f"BLUEPRINTS: two services of type {kind.__name__}, from "
                        f"{built[kind][0]} and {entry.module}"
                    )
                built[kind] = (entry.module, service)
        return [service for _, service in built.values()]

    def listen(self, app: AsyncApp, engine: Engine, parts: Parts) -> None:
        """Register every blueprint's extra Bolt listeners."""
        for entry in self:
            for register in entry.blueprint.listeners:
                register(app, engine, parts)


def modules(setting: str) -> list[str]:
    """The module paths of a BLUEPRINTS value (comma-separated)."""
    names = [name.strip() for name in setting.split(",") if name.strip()]
    if not names:
        raise BlueprintError(
            "BLUEPRINTS: name at least one blueprint module (the shipped one is "
            "bot.blueprints.approval)"
        )
    for name in names:
        if not _MODULE.match(name):
            raise BlueprintError(f"BLUEPRINTS: {name!r} is not a module path such as a.b.c")
    return names


def load_blueprints(setting: str | Sequence[str]) -> Blueprints:
    """Import the bot's base and the named blueprint modules, and check they fit together."""
    names = modules(setting) if isinstance(setting, str) else list(setting)
    loaded: list[Loaded] = []
    for name in [BASE, *names]:
        if any(entry.module == name for entry in loaded):
            raise BlueprintError(f"BLUEPRINTS: {name} is named twice")
        loaded.append(Loaded(name, _blueprint_of(name)))
    _check_claims(loaded)
    return Blueprints(tuple(loaded))


def _blueprint_of(name: str) -> Blueprint:
    try:
        module = importlib.import_module(name)
    except ModuleNotFoundError as e:
        if e.name is not None and (name == e.name or name.startswith(e.name + ".")):
            raise BlueprintError(f"BLUEPRINTS: no module named {name!r}") from None
        raise BlueprintError(f"BLUEPRINTS: {name} cannot be imported: {e}") from None
    except Exception as e:
        raise BlueprintError(f"BLUEPRINTS: importing {name} failed: {_where(e, name)}") from None
    blueprint = getattr(module, "blueprint", None)
    if blueprint is None:
        raise BlueprintError(
            f"BLUEPRINTS: {name} has no blueprint (declare `blueprint = Blueprint(...)` in it)"
        )
    if not isinstance(blueprint, Blueprint):
        raise BlueprintError(
            f"BLUEPRINTS: {name}.blueprint is a {type(blueprint).__name__}, not a Blueprint"
        )
    return blueprint


def _where(error: Exception, name: str) -> str:
    """The error on one line, with the line of the module that raised it (else the last
    place in the traceback)."""
    frames = [f for f in traceback.extract_tb(error.__traceback__) if "<frozen" not in f.filename]
    try:
        spec = importlib.util.find_spec(name)
    except Exception:
        spec = None
    own = [f for f in frames if spec is not None and f.filename == spec.origin]
    chosen = own or frames
    place = f" ({chosen[-1].filename}:{chosen[-1].lineno})" if chosen else ""
    return f"{type(error).__name__}: {error}{place}"


def _check_claims(loaded: Iterable[Loaded]) -> None:
    """A slash command (or subcommand), a workflow type or a wait type belongs to one
    blueprint; a command with subcommands is shared only through its subcommands."""
    commands: dict[tuple[str, str], str] = {}
    types: dict[str, str] = {}
    waits: dict[str, str] = {}
    for entry in loaded:
        bp, module = entry.blueprint, entry.module
        for launch in bp.launches:
            key = (launch.command, launch.subcommand)
            clash = commands.get(key) or next(
                (
                    owner
                    for (command, sub), owner in commands.items()
                    if command == launch.command and not (sub and launch.subcommand)
                ),
                None,
            )
            if clash is not None and clash != module:
                raise BlueprintError(
                    f"BLUEPRINTS: {launch.command} is claimed by both {clash} and {module}"
                )
            if clash is not None:
                raise BlueprintError(
                    f"BLUEPRINTS: {module} launches {launch.name} twice"
                    if key in commands
                    else f"BLUEPRINTS: {module} launches {launch.command} both with and "
                    "without a subcommand"
                )
            commands[key] = module
        for cls in bp.workflows:
            owner = types.get(cls.workflow_type)
            if owner is not None:
                raise BlueprintError(
                    f"BLUEPRINTS: workflow type {cls.workflow_type!r} is claimed by both "
                    f"{owner} and {module}"
                )
            types[cls.workflow_type] = module
        for kind in bp.callbacks:
            owner = waits.get(kind)
            if owner is not None:
                raise BlueprintError(
                    f"BLUEPRINTS: wait type {kind!r} has a manager in both {owner} and {module}"
                )
            waits[kind] = module
