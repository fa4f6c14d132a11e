"""Settings from the environment or a `.env` file (see `.env.example`)."""

from __future__ import annotations

import logging
from typing import Literal

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from bot.blueprints import SHIPPED
from workflows.store import async_url


class SettingsError(Exception):
    """A setting is missing, malformed or does not work (Slack refuses the token, the
    database cannot be reached); the message is one line naming it, never its secret."""


# The example values of `.env.example`: a copied file left unedited fails at start-up with
# the setting named, not with Slack's `invalid_auth` or every request's bad signature.
PLACEHOLDERS = {
    "slack_bot_token": "xoxb-your-bot-token",
    "slack_signing_secret": "your-signing-secret",
}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    slack_bot_token: str = ""
    slack_signing_secret: str = ""
    slack_app_token: str = ""
    database_url: str = "sqlite:///workflows.db"
    port: int = 3000
    slack_api_url: str = ""
    log_level: str = "INFO"
    log_format: Literal["text", "json"] = "text"
    workflow_lease_seconds: float = Field(default=30.0, gt=0)
    sweep_interval_seconds: float = Field(default=1.0, gt=0)
    fsync_steps: bool = False
    slack_rate_share: float = Field(default=1.0, gt=0, le=1)
    slack_minute_seconds: float = Field(default=60.0, gt=0)
    blueprints: str = ",".join(SHIPPED)
    """The blueprint modules to load, comma-separated (bot.loading checks them)."""
    webhook_secret: str = ""
    """The key webhook steps sign their requests with (bot.routines.webhook)."""
    webhook_receiver: str = ""
    """Where webhooks go when a blueprint has no URL of its own configured: a base URL, the
    webhook's name appended (the sandbox sets it to its built-in receiver)."""

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, value: str) -> str:
        async_url(value)  # raises ValueError with the reason
        return value

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        if value.upper() not in logging.getLevelNamesMapping():
            raise ValueError(f"unknown log level {value!r}")
        return value.upper()

    @field_validator("slack_api_url")
    @classmethod
    def _api_url(cls, value: str) -> str:
        if value and not value.startswith(("http://", "https://")):
            raise ValueError("must be an http(s) URL such as https://slack.com/api/")
        return value if not value or value.endswith("/") else value + "/"

    @property
    def socket_mode(self) -> bool:
        return bool(self.slack_app_token)

    def require_slack(self) -> None:
        """Check what the chosen transport needs (Socket Mode when SLACK_APP_TOKEN is set)."""
        needed = ["slack_bot_token"]
        needed.append("slack_app_token" if self.socket_mode else "slack_signing_secret")
        for name in needed:
            if not getattr(self, name):
                mode = "Socket Mode" if self.socket_mode else "HTTP mode"
                raise SettingsError(
                    f"{name.upper()} is not set (required in {mode}); see .env.example"
                )
        for name, example in PLACEHOLDERS.items():
            if getattr(self, name) == example:
                raise SettingsError(
                    f"{name.upper()} is still the example value of .env.example: "
                    "set it to your app's own (see the comment above it there)"
                )
        if not self.slack_bot_token.startswith("xoxb-"):
            raise SettingsError("SLACK_BOT_TOKEN must be a bot token starting with xoxb-")
        if self.socket_mode and not self.slack_app_token.startswith("xapp-"):
            raise SettingsError("SLACK_APP_TOKEN must be an app-level token starting with xapp-")


def load_settings(**overrides: object) -> Settings:
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as e:
        first = e.errors()[0]
        name = str(first["loc"][0]).upper() if first["loc"] else "settings"
        raise SettingsError(f"{name}: {first['msg']}") from None
