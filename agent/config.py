"""The settings model: environment variables only, validated once, frozen. No I/O."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import AliasChoices, Field, ValidationError, ValidationInfo, field_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from agent.errors import ConfigError
from agent.settings import (
    ALLOW_ENTRY,
    ECS_NAME,
    KMS_KEY_ARN,
    MAX_RESTART_SPREAD,
    prefix_problem,
)

_ALIASES = {
    "parameter_store_prefix": "PARAMETER_STORE_PREFIX",
    "secrets_manager_prefix": "SECRETS_MANAGER_PREFIX",
    "override": "SECRETS_AGENT_OVERRIDE",
    "timeout": "SECRETS_AGENT_TIMEOUT",
    "watch_interval": "SECRETS_AGENT_WATCH_INTERVAL",
    "on_change": "SECRETS_AGENT_ON_CHANGE",
    "stop_timeout": "SECRETS_AGENT_STOP_TIMEOUT",
    "kms_key_arns": "SECRETS_AGENT_KMS_KEY_ARNS",
    "log_format": "SECRETS_AGENT_LOG_FORMAT",
    "log_level": "SECRETS_AGENT_LOG_LEVEL",
    "allow": "SECRETS_AGENT_ALLOW",
    "ecs_cluster": "SECRETS_AGENT_ECS_CLUSTER",
    "ecs_service": "SECRETS_AGENT_ECS_SERVICE",
    "restart_spread": "SECRETS_AGENT_RESTART_SPREAD",
}


def _env(field: str) -> Any:
    return AliasChoices(_ALIASES[field])


class Settings(BaseSettings):
    """The agent's configuration. ``repr`` shows settings, which hold no secret values."""

    model_config = SettingsConfigDict(
        frozen=True,
        env_ignore_empty=True,
        case_sensitive=True,
        extra="ignore",
        populate_by_name=False,
    )

    parameter_store_prefix: str | None = Field(
        None, validation_alias=_env("parameter_store_prefix")
    )
    secrets_manager_prefix: str | None = Field(
        None, validation_alias=_env("secrets_manager_prefix")
    )
    override: bool = Field(False, validation_alias=_env("override"))
    timeout: float = Field(30.0, gt=0, le=3600, validation_alias=_env("timeout"))
    watch_interval: float = Field(0.0, ge=0, le=86400, validation_alias=_env("watch_interval"))
    on_change: Literal["restart", "exit", "redeploy"] = Field(
        "restart", validation_alias=_env("on_change")
    )
    stop_timeout: float = Field(10.0, ge=0, le=3600, validation_alias=_env("stop_timeout"))
    kms_key_arns: Annotated[tuple[str, ...], NoDecode] = Field(
        (), validation_alias=_env("kms_key_arns")
    )
    log_format: Literal["json", "text"] | None = Field(None, validation_alias=_env("log_format"))
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        "info", validation_alias=_env("log_level")
    )
    allow: Annotated[tuple[str, ...] | None, NoDecode] = Field(
        None, validation_alias=_env("allow")
    )
    ecs_cluster: str | None = Field(None, validation_alias=_env("ecs_cluster"))
    ecs_service: str | None = Field(None, validation_alias=_env("ecs_service"))
    restart_spread: float = Field(
        0.0, ge=0, le=MAX_RESTART_SPREAD, validation_alias=_env("restart_spread")
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Only the mapping given to load_settings: never os.environ, a .env file or secrets dir.
        return (init_settings,)

    @field_validator("kms_key_arns", mode="before")
    @classmethod
    def _split_arns(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("kms_key_arns")
    @classmethod
    def _check_arns(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        import re

        for arn in value:
            if not re.fullmatch(KMS_KEY_ARN, arn):
                raise ValueError(
                    "each entry must be a KMS key ARN (arn:aws:kms:REGION:ACCOUNT:key/ID)"
                )
        return value

    @field_validator("allow", mode="before")
    @classmethod
    def _split_allow(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("allow")
    @classmethod
    def _check_allow(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if value is not None and (
            not value or not all(re.fullmatch(ALLOW_ENTRY, entry) for entry in value)
        ):
            raise ValueError(
                "give comma-separated variable names, where * matches any run of characters "
                "(DATABASE_URL,SECRET_KEY_BASE,RAILS_*)"
            )
        return value

    @field_validator("ecs_cluster", "ecs_service")
    @classmethod
    def _ecs_name(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not re.fullmatch(ECS_NAME, value.strip()):
            raise ValueError(
                "an ECS name holds 1 to 255 letters, digits, hyphens and underscores "
                "(the name, not the ARN)"
            )
        return value.strip()

    @field_validator("parameter_store_prefix", "secrets_manager_prefix")
    @classmethod
    def _strip(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        problem = prefix_problem(value, info.field_name or "")
        if problem is not None:
            raise ValueError(problem)
        return value.strip()

    @field_validator("on_change", "log_format", "log_level", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @property
    def supervise(self) -> bool:
        return self.watch_interval > 0


def load_settings(environ: Mapping[str, str]) -> Settings:
    """Build Settings from ``environ`` only; a bad value is a ConfigError naming the variable."""
    data = {alias: environ[alias] for alias in _ALIASES.values() if alias in environ}
    try:
        return Settings.model_validate(
            {k: v for k, v in data.items() if v != ""},
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = first.get("loc") or ("?",)
        var = str(loc[0])
        var = _ALIASES.get(var, var)
        raise ConfigError(
            f"{var} is invalid: {str(first.get('msg', 'bad value')).removeprefix('Value error, ')}",
            hint=f"fix or unset {var}",
        ) from None
