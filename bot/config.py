"""A blueprint's own settings, read as the bot's are: from the environment or `.env`.

    class DeploySettings(BlueprintSettings):
        model_config = BlueprintSettings.prefixed("DEPLOY_")
        services: CommaList = ["api", "web"]       # DEPLOY_SERVICES=api,web,worker
        timeout: Duration = timedelta(hours=4)     # DEPLOY_TIMEOUT=90m

Lists are written comma-separated and durations as the commands read them (`2h`,
`1h30m`), so a `.env` holds what a person would type. A setting that cannot be read stops
the bot at start-up with its name (bot.loading imports the blueprint).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from pydantic import BeforeValidator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from bot.durations import parse_duration


def _comma_list(value: Any) -> Any:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


def _duration(value: Any) -> Any:
    if isinstance(value, str) and not value.strip().isdigit():
        return parse_duration(value, "the duration")
    return value


CommaList = Annotated[list[str], NoDecode, BeforeValidator(_comma_list)]
"""A list setting written `a,b,c`."""
Duration = Annotated[timedelta, BeforeValidator(_duration)]
"""A duration setting written `90s`, `10m`, `2h`, `1d`, `1h30m` (or seconds)."""


class BlueprintSettings(BaseSettings):
    """Subclass it with `model_config = BlueprintSettings.prefixed("MINE_")`."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    @staticmethod
    def prefixed(prefix: str) -> SettingsConfigDict:
        return SettingsConfigDict(
            env_prefix=prefix, env_file=".env", env_file_encoding="utf-8", extra="ignore"
        )
