"""Launch forms: a pydantic model rendered as a Slack modal, read back from a submission or
from `key=value` words on the command, and validated by the model itself.

    class DeployForm(BaseModel):
        service: Service = Field(title="Service")                 # an Enum: a select
        version: str = Field(title="Version", pattern=r"^\\d+(\\.\\d+)*$")
        approvers: list[UserId] = Field(title="Approvers")        # a multi-users select
        notes: Annotated[str, Multiline()] = Field("", title="Notes")

What each field type becomes (its `title` the label, its `description` the hint, its
default the initial value; a field with a default, or `X | None`, is optional):

- `str`: a plain-text input, multiline when annotated `Multiline()`, with the model's
  `min_length` / `max_length`;
- `int`, `float`, `Decimal`: a number input with the model's bounds (`ge`, `gt`, `le`,
  `lt`); `bool`: one checkbox;
- an `Enum`, a `Literal` or `Annotated[str, Choices([...])]`: a static select (a list of
  them: a multi-select);
- `UserId` / `list[UserId]`: a users select / multi-users select; `ChannelId`: a
  conversations select;
- `date`, `time`, `datetime`: a date, time or date-and-time picker (a datetime is UTC);
- `timedelta`: a text input read by the commands' own duration parser (`2h`, `1h30m`).

A form is rendered once when its launch is declared and checked with slack_sdk's models
(a modal holds at most 100 blocks; a title at most 24 characters), so a form Slack would
refuse stops the bot at start-up, not a person at their first try. Errors come back as
Slack shows them: one line per input (`response_action: errors`); nothing starts until the
model accepts the whole submission.
"""

from __future__ import annotations

import enum
import re
import shlex
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Annotated, Any, Literal, Union

import annotated_types
from pydantic import BaseModel, GetCoreSchemaHandler, ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined, core_schema
from slack_sdk.models.views import View

from bot.blueprint import UsageError
from bot.durations import format_duration, parse_duration

MODAL_BLOCKS_MAX = 100
MODAL_TITLE_MAX = 24
LABEL_MAX = 2000
HINT_MAX = 2000
OPTIONS_MAX = 100
OPTION_TEXT_MAX = 75
PLACEHOLDER_MAX = 150
TEXT_INPUT_MAX = 3000
"""Slack's limit for a plain-text input's `max_length` (and the longest value it takes)."""


class _Marker:
    """A mark in a field's `Annotated[...]`; two of one kind are equal."""

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self)

    def __hash__(self) -> int:
        return hash(type(self))


class Multiline(_Marker):
    """Marks a `str` field as a multi-line text input: `Annotated[str, Multiline()]`."""


class SlackUser(_Marker):
    """Marks a `str` field as a Slack user ID (see `UserId`)."""


class SlackChannel(_Marker):
    """Marks a `str` field as a Slack conversation ID (see `ChannelId`)."""


class Choices:
    """Offers `values` (and accepts only them): `Annotated[str, Choices(["api", "web"])]`,
    for choices known only when the bot starts (from its configuration); a static select."""

    def __init__(self, values: Sequence[str]) -> None:
        if not values:
            raise ValueError("Choices needs at least one value")
        self.values = tuple(str(v) for v in values)

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> Any:
        return core_schema.no_info_after_validator_function(self._check, handler(source))

    def _check(self, value: str) -> str:
        if value not in self.values:
            raise ValueError("choose one of " + ", ".join(self.values))
        return value


class InvalidField(UsageError):
    """Raised by a launch's `start` to refuse one field of its form, so the person reads
    the problem under that input (a `UsageError` on the command line)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


UserId = Annotated[str, SlackUser()]
"""A Slack user ID (`U…`): a users select in a form, an @mention on the command line."""
ChannelId = Annotated[str, SlackChannel()]
"""A Slack conversation ID (`C…`): a conversations select, a #channel on the command line."""

_USER = re.compile(r"^<@([UW][A-Z0-9]+)(?:\|[^>]*)?>$|^([UW][A-Z0-9]{2,})$")
_CHANNEL = re.compile(r"^<#([CGD][A-Z0-9]+)(?:\|[^>]*)?>$|^([CGD][A-Z0-9]{2,})$")
_TRUE = frozenset({"yes", "true", "on", "1", "y"})
_FALSE = frozenset({"no", "false", "off", "0", "n"})

Kind = Literal[
    "text", "integer", "decimal", "boolean", "choice", "choices", "user", "users",
    "channel", "date", "time", "datetime", "duration",
]  # fmt: skip


@dataclass(frozen=True)
class FormField:
    """One field of a form: its name, what input it is, and what the model says of it."""

    name: str
    kind: Kind
    label: str
    hint: str
    required: bool
    default: Any
    multiline: bool = False
    options: tuple[tuple[str, str], ...] = ()
    """(value, text) of each choice."""
    low: Any = None
    high: Any = None
    min_length: int | None = None
    max_length: int | None = None
    example: str = ""

    def describe(self) -> str:
        """One line of `help`: how to give this field on the command line."""
        what = {
            "text": "text",
            "integer": "a whole number",
            "decimal": "a number",
            "boolean": "yes or no",
            "choice": "one of " + ", ".join(f"`{v}`" for v, _ in self.options),
            "choices": "some of " + ", ".join(f"`{v}`" for v, _ in self.options),
            "user": "an @mention",
            "users": "@mentions, separated by commas",
            "channel": "a #channel",
            "date": "a date like 2026-12-31",
            "time": "a time like 14:30",
            "datetime": "a UTC time like 2026-12-31T14:30",
            "duration": "a duration like 90s, 10m, 2h, 1d or 1h30m",
        }[self.kind]
        if self.low is not None or self.high is not None:
            what += f" ({_bounds(self)})"
        need = "required" if self.required else "optional"
        hint = f": {self.hint}" if self.hint else ""
        return f"• `{self.name}=` {self.label}, {what}, {need}{hint}"


@dataclass(frozen=True)
class Form:
    """A model's fields as a form: rendered as a modal, read from a submission or from a
    command's words, validated by the model."""

    model: type[BaseModel]
    fields: tuple[FormField, ...]

    @classmethod
    def of(cls, model: type[BaseModel]) -> Form:
        """The form for `model`; `TypeError` names a field no Slack input can hold."""
        return cls(model, tuple(_field(name, info) for name, info in model.model_fields.items()))

    @property
    def names(self) -> list[str]:
        return [f.name for f in self.fields]

    # --- the modal --------------------------------------------------------------------------

    def modal(
        self,
        *,
        title: str,
        callback_id: str,
        private_metadata: str = "",
        submit: str = "Submit",
        initial: Mapping[str, Any] | None = None,
        intro: str = "",
    ) -> dict[str, Any]:
        """The modal asking for every field, filled with `initial` (else the defaults)."""
        given = dict(initial or {})
        blocks: list[dict[str, Any]] = []
        if intro:
            blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": intro}})
        blocks.extend(_input(f, given.get(f.name, f.default)) for f in self.fields)
        view: dict[str, Any] = {
            "type": "modal",
            "callback_id": callback_id,
            "title": {"type": "plain_text", "text": title},
            "submit": {"type": "plain_text", "text": submit},
            "close": {"type": "plain_text", "text": "Cancel"},
            "blocks": blocks,
        }
        if private_metadata:
            view["private_metadata"] = private_metadata
        return view

    def check(self, title: str) -> None:
        """Raise `ValueError` unless Slack would accept the modal (slack_sdk's models)."""
        if len(title) > MODAL_TITLE_MAX:
            raise ValueError(f"the form's title {title!r} is over Slack's 24 characters")
        view = self.modal(title=title, callback_id="check", intro="x")
        if len(view["blocks"]) > MODAL_BLOCKS_MAX:
            raise ValueError(
                f"{len(self.fields)} fields do not fit a Slack modal (at most "
                f"{MODAL_BLOCKS_MAX - 1} beside its introduction)"
            )
        try:
            View(**view).validate_json()
        except Exception as e:  # slack_sdk raises SlackObjectFormationError
            raise ValueError(f"Slack would refuse the form: {e}") from None

    # --- reading a submission ---------------------------------------------------------------

    def read_submission(self, values: Mapping[str, Any]) -> BaseModel:
        """The model from `view.state.values`, or `FormErrors` (block id -> message)."""
        raw: dict[str, Any] = {}
        errors: dict[str, str] = {}
        for f in self.fields:
            entry = (values.get(f.name) or {}).get(f.name) or {}
            try:
                value = _submitted(f, entry)
            except UsageError as e:
                errors[f.name] = str(e)
                continue
            if value is not None:
                raw[f.name] = value
        return self._validated(raw, errors)

    # --- reading the command line -----------------------------------------------------------

    def read_words(self, text: str) -> tuple[dict[str, Any], list[str]]:
        """The values `key=value` words give, and the required fields they leave out;
        `UsageError` for words that are no field or values that are no value of it."""
        words = _words(text)
        by_name = {f.name: f for f in self.fields}
        given: dict[str, list[str]] = {}
        for word in words:
            key, sep, value = word.partition("=")
            name = key.strip().lower().replace("-", "_")
            if not sep or not name:
                raise UsageError(
                    f"`{word}` is not `field=value` (a value with spaces goes in double "
                    "quotes): the fields are " + ", ".join(f"`{n}`" for n in self.names)
                )
            if name not in by_name:
                raise UsageError(
                    f"there is no field `{key}`: the fields are "
                    + ", ".join(f"`{n}`" for n in self.names)
                )
            given.setdefault(name, []).append(value)
        values = {name: _typed(by_name[name], pieces) for name, pieces in given.items()}
        missing = [f.name for f in self.fields if f.required and f.name not in values]
        return values, missing

    def validate(self, values: Mapping[str, Any]) -> BaseModel:
        """The model from values `read_words` gave, or `FormErrors`."""
        return self._validated(dict(values), {})

    def _validated(self, raw: dict[str, Any], errors: dict[str, str]) -> BaseModel:
        try:
            model = self.model.model_validate(raw)
        except ValidationError as e:
            for name, message in self.errors_of(e).items():
                errors.setdefault(name, message)
            raise FormErrors(errors) from None
        if errors:
            raise FormErrors(errors)
        return model

    def errors_of(self, error: ValidationError | UsageError) -> dict[str, str]:
        """Each message on the field it is about (a rule of the whole model: the first)."""
        found: dict[str, str] = {}
        if isinstance(error, InvalidField) and error.field in self.names:
            return {error.field: str(error)}
        problems = error.errors() if isinstance(error, ValidationError) else []
        if not problems:
            found[self.names[0]] = str(error)
            return found
        for problem in problems:
            loc = problem.get("loc") or ()
            name = str(loc[0]) if loc and str(loc[0]) in self.names else self.names[0]
            found.setdefault(name, _message(problem))
        return found

    def help(self, command: str) -> str:
        """The fields and how to give them on the command line."""
        lines = ["*Fields:*", *(f.describe() for f in self.fields)]
        example = " ".join(f"{f.name}={_example(f)}" for f in self.fields if f.required)
        lines.append(
            f"`{command}` alone opens the form; `{command} {example}` starts at once."
            if example
            else f"`{command}` alone opens the form."
        )
        return "\n".join(lines)


class FormErrors(Exception):
    """What is wrong with a submission: block id (the field's name) -> one line."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors

    def lines(self) -> str:
        return "\n".join(f"• `{name}`: {message}" for name, message in self.errors.items())


# --- from the model -------------------------------------------------------------------------


def _field(name: str, info: FieldInfo) -> FormField:
    annotation, optional = _unwrap_optional(info.annotation)
    metadata = list(info.metadata)
    annotation, more = _unwrap_annotated(annotation)
    metadata.extend(more)
    kind, options = _kind(name, annotation, metadata)
    low: Any = None
    high: Any = None
    min_length = max_length = None
    for m in metadata:
        if isinstance(m, annotated_types.Ge):
            low = m.ge
        elif isinstance(m, annotated_types.Gt):
            above: Any = m.gt
            low = above + 1 if kind == "integer" else above
        elif isinstance(m, annotated_types.Le):
            high = m.le
        elif isinstance(m, annotated_types.Lt):
            below: Any = m.lt
            high = below - 1 if kind == "integer" else below
        elif isinstance(m, annotated_types.MinLen):
            min_length = m.min_length
        elif isinstance(m, annotated_types.MaxLen):
            max_length = m.max_length
    default = None if info.default is PydanticUndefined else info.default
    if info.default_factory is not None:
        default = info.default_factory()  # type: ignore[call-arg]
    required = info.is_required() and not optional
    label = info.title or name.replace("_", " ").capitalize()
    if len(label) > LABEL_MAX:
        raise TypeError(f"field {name!r}: its title is over Slack's {LABEL_MAX} characters")
    if kind == "text" and (max_length or 0) > TEXT_INPUT_MAX:
        raise TypeError(f"field {name!r}: a text input holds at most {TEXT_INPUT_MAX} characters")
    if kind in ("choice", "choices") and len(options) > OPTIONS_MAX:
        raise TypeError(f"field {name!r}: a select offers at most {OPTIONS_MAX} options")
    return FormField(
        name=name,
        kind=kind,
        label=label,
        hint=(info.description or "")[:HINT_MAX],
        required=required,
        default=default,
        multiline=Multiline() in metadata,
        options=options,
        low=low,
        high=high,
        min_length=min_length,
        max_length=max_length,
        example=str(info.examples[0]) if info.examples else "",
    )


def _unwrap_optional(annotation: Any) -> tuple[Any, bool]:
    origin = typing.get_origin(annotation)
    if origin in (Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return annotation, False


def _unwrap_annotated(annotation: Any) -> tuple[Any, list[Any]]:
    if typing.get_origin(annotation) is Annotated:
        base, *metadata = typing.get_args(annotation)
        return base, metadata
    return annotation, []


def _kind(
    name: str, annotation: Any, metadata: list[Any]
) -> tuple[Kind, tuple[tuple[str, str], ...]]:
    if typing.get_origin(annotation) in (list, tuple, set, frozenset, Sequence):
        (inner,) = typing.get_args(annotation)[:1]
        inner, more = _unwrap_annotated(inner)
        if SlackUser() in more:
            return "users", ()
        options = _options(inner, more)
        if options:
            return "choices", options
        raise TypeError(f"field {name!r}: a list is a form field only of users or of choices")
    if SlackUser() in metadata:
        return "user", ()
    if SlackChannel() in metadata:
        return "channel", ()
    options = _options(annotation, metadata)
    if options:
        return "choice", options
    if annotation is bool:
        return "boolean", ()
    if annotation is int:
        return "integer", ()
    if annotation in (float, Decimal):
        return "decimal", ()
    if annotation is datetime:
        return "datetime", ()
    if annotation is date:
        return "date", ()
    if annotation is time:
        return "time", ()
    if annotation is timedelta:
        return "duration", ()
    if annotation is str:
        return "text", ()
    raise TypeError(f"field {name!r}: no Slack input holds a {annotation!r}")


def _options(annotation: Any, metadata: Sequence[Any] = ()) -> tuple[tuple[str, str], ...]:
    for m in metadata:
        if isinstance(m, Choices):
            return tuple((v, v[:OPTION_TEXT_MAX]) for v in m.values)
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return tuple((str(m.value), str(m.value)[:OPTION_TEXT_MAX]) for m in annotation)
    if typing.get_origin(annotation) is Literal:
        return tuple((str(v), str(v)[:OPTION_TEXT_MAX]) for v in typing.get_args(annotation))
    return ()


# --- to Slack -------------------------------------------------------------------------------


def _plain(text: str) -> dict[str, Any]:
    return {"type": "plain_text", "text": text}


def _option(value: str, text: str) -> dict[str, Any]:
    return {"text": _plain(text), "value": value}


def _input(f: FormField, initial: Any) -> dict[str, Any]:
    element = _element(f, initial)
    block: dict[str, Any] = {
        "type": "input",
        "block_id": f.name,
        "label": _plain(f.label),
        "optional": not f.required,
        "element": {"action_id": f.name, **element},
    }
    if f.hint or f.kind == "duration":
        hint = f.hint or "Like 90s, 10m, 2h, 1d or 1h30m"
        block["hint"] = _plain(hint)
    return block


def _element(f: FormField, initial: Any) -> dict[str, Any]:
    present = initial not in (None, "", [], ())
    if f.kind in ("text", "duration"):
        element: dict[str, Any] = {"type": "plain_text_input", "multiline": f.multiline}
        if f.max_length:
            element["max_length"] = f.max_length
        if f.min_length:
            element["min_length"] = f.min_length
        if f.kind == "duration":
            element["placeholder"] = _plain("2h")
            if isinstance(initial, timedelta):
                element["initial_value"] = format_duration(initial)
        elif present:
            element["initial_value"] = str(initial)
        return element
    if f.kind in ("integer", "decimal"):
        element = {"type": "number_input", "is_decimal_allowed": f.kind == "decimal"}
        if f.low is not None:
            element["min_value"] = str(f.low)
        if f.high is not None:
            element["max_value"] = str(f.high)
        if present:
            element["initial_value"] = str(initial)
        return element
    if f.kind == "boolean":
        element = {"type": "checkboxes", "options": [_option("yes", f.label)]}
        if initial is True:
            element["initial_options"] = [_option("yes", f.label)]
        return element
    if f.kind in ("choice", "choices"):
        options = [_option(v, t) for v, t in f.options]
        multi = f.kind == "choices"
        element = {"type": "multi_static_select" if multi else "static_select", "options": options}
        element["placeholder"] = _plain("Choose")
        chosen = [_value(v) for v in (initial if multi and present else [initial])]
        picked = [o for o in options if o["value"] in chosen]
        if picked and multi:
            element["initial_options"] = picked
        elif picked:
            element["initial_option"] = picked[0]
        return element
    if f.kind == "user":
        element = {"type": "users_select", "placeholder": _plain("Choose a person")}
        if present:
            element["initial_user"] = str(initial)
        return element
    if f.kind == "users":
        element = {"type": "multi_users_select", "placeholder": _plain("Choose people")}
        if present:
            element["initial_users"] = [str(u) for u in initial]
        return element
    if f.kind == "channel":
        element = {"type": "conversations_select", "placeholder": _plain("Choose a channel")}
        if present:
            element["initial_conversation"] = str(initial)
        return element
    if f.kind == "date":
        element = {"type": "datepicker"}
        if isinstance(initial, date):
            element["initial_date"] = initial.isoformat()
        return element
    if f.kind == "time":
        element = {"type": "timepicker"}
        if isinstance(initial, time):
            element["initial_time"] = initial.strftime("%H:%M")
        return element
    element = {"type": "datetimepicker"}
    if isinstance(initial, datetime):
        element["initial_date_time"] = int(initial.timestamp())
    return element


def _value(value: Any) -> str:
    return str(value.value) if isinstance(value, enum.Enum) else str(value)


# --- from Slack -----------------------------------------------------------------------------


def _submitted(f: FormField, entry: Mapping[str, Any]) -> Any:
    """What one input of a submission holds, as the model takes it (None: left empty)."""
    if f.kind in ("text", "integer", "decimal"):
        value = entry.get("value")
        return None if value in (None, "") else value
    if f.kind == "duration":
        value = entry.get("value")
        return None if not value else parse_duration(str(value), f"`{f.name}`")
    if f.kind == "boolean":
        return bool(entry.get("selected_options"))
    if f.kind == "choice":
        option = entry.get("selected_option")
        return None if not option else option.get("value")
    if f.kind == "choices":
        return [o.get("value") for o in entry.get("selected_options") or []] or None
    if f.kind == "user":
        return entry.get("selected_user") or None
    if f.kind == "users":
        return list(entry.get("selected_users") or []) or None
    if f.kind == "channel":
        return entry.get("selected_conversation") or None
    if f.kind == "date":
        return entry.get("selected_date") or None
    if f.kind == "time":
        return entry.get("selected_time") or None
    stamp = entry.get("selected_date_time")
    return None if stamp is None else datetime.fromtimestamp(int(stamp), UTC)


def _typed(f: FormField, pieces: list[str]) -> Any:
    """A field's value from its `key=value` words (commas separate a list's items)."""
    many = f.kind in ("users", "choices")
    if len(pieces) > 1 and not many:
        raise UsageError(f"`{f.name}` is given {len(pieces)} times")
    items = [item.strip() for piece in pieces for item in piece.split(",")] if many else pieces
    items = [item for item in items if item]
    if f.kind == "users":
        return [_user(f, item) for item in items]
    if f.kind == "choices":
        return [_choice(f, item) for item in items]
    (value,) = items or [""]
    if f.kind == "user":
        return _user(f, value)
    if f.kind == "channel":
        match = _CHANNEL.match(value)
        if match is None:
            raise UsageError(f"`{f.name}={value}` is not a channel: pick it from the # menu")
        return match.group(1) or match.group(2)
    if f.kind == "choice":
        return _choice(f, value)
    if f.kind == "boolean":
        if value.lower() in _TRUE:
            return True
        if value.lower() in _FALSE:
            return False
        raise UsageError(f"`{f.name}={value}`: say yes or no")
    if f.kind == "duration":
        return parse_duration(value, f"`{f.name}`")
    return value


def _user(f: FormField, value: str) -> str:
    match = _USER.match(value)
    if match is None:
        raise UsageError(
            f"`{f.name}={value}` is not a Slack user mention: pick the person from the @ menu"
        )
    return match.group(1) or match.group(2)


def _choice(f: FormField, value: str) -> str:
    for option, _ in f.options:
        if option.lower() == value.lower():
            return option
    choices = ", ".join(f"`{v}`" for v, _ in f.options)
    raise UsageError(f"`{f.name}={value}` is not one of the choices: {choices}")


def _message(problem: Mapping[str, Any]) -> str:
    message = str(problem.get("msg", "")).removeprefix("Value error, ")
    if problem.get("type") == "missing":
        return "This field is required."
    return message[:1].upper() + message[1:]


def _bounds(f: FormField) -> str:
    if f.low is not None and f.high is not None:
        return f"{_shown(f.low)} to {_shown(f.high)}"
    if f.low is not None:
        return f"at least {_shown(f.low)}"
    return f"at most {_shown(f.high)}"


def _shown(value: Any) -> str:
    return format_duration(value) if isinstance(value, timedelta) else str(value)


def _example(f: FormField) -> str:
    if f.example:
        return shlex.quote(f.example)
    if f.options:
        return f.options[0][0]
    return {
        "user": "@alice",
        "users": "@alice,@bob",
        "channel": "#general",
        "integer": str(f.low if f.low is not None else 1),
        "decimal": str(f.low if f.low is not None else 1),
        "boolean": "yes",
        "date": "2026-12-31",
        "time": "14:30",
        "datetime": "2026-12-31T14:30",
        "duration": "2h",
    }.get(f.kind, "…")


def _words(text: str) -> list[str]:
    """The command's words; double quotes (straight or as Slack's clients curl them) hold
    spaces, an apostrophe is a letter (`notes="don't wait"`)."""
    lexer = shlex.shlex(text.replace("\u201c", '"').replace("\u201d", '"'), posix=True)
    lexer.whitespace_split = True
    lexer.quotes = '"'
    lexer.escape = ""
    lexer.commenters = ""  # `#general` is a channel, not a comment
    try:
        return list(lexer)
    except ValueError:
        raise UsageError("a double quote is not closed") from None
