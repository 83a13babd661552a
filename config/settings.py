"""The one settings object of altcredit, and the one loader that builds it.

Precedence, lowest to highest: ``config/defaults.toml`` (shipped with the
code), the TOML file named by ``ALTCREDIT_CONFIG``, environment variables
``ALTCREDIT_<KEY>``, and keyword overrides given by the caller (tests). A bad
value anywhere raises :class:`SettingsError` naming the key, so that start-up
can stop with one line instead of a traceback.
"""

from __future__ import annotations

import os
import secrets
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

DEFAULTS_FILE = Path(__file__).with_name("defaults.toml")
ENV_PREFIX = "ALTCREDIT_"
CONFIG_ENV = "ALTCREDIT_CONFIG"


class SettingsError(ValueError):
    """A setting is missing, unknown or invalid; ``str()`` is one line for the user."""

    def __init__(self, key: str, problem: str) -> None:
        self.key = key
        self.problem = problem
        super().__init__(f"invalid setting {key}: {problem}")


class Settings(BaseSettings):
    """Everything an operator can configure. See config/defaults.toml for the meaning of each key."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        extra="forbid",
        validate_default=True,
        frozen=True,
    )

    home: Path = Field(description="Data home: database, event lake, snapshots, models.")
    database_url: str = Field(description="SQLAlchemy URL; empty for SQLite in the data home.")
    sqlite_busy_timeout: float = Field(gt=0, description="Seconds a SQLite writer waits for a lock.")
    redis_url: str = Field(description="Redis URL for shared rate limits and nonces; empty: in-process.")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(description="Log level.")
    log_format: Literal["json", "text"] = Field(description="Log lines as JSON or plain text.")
    serve_host: str = Field(min_length=1, description="Address `altcredit serve` binds.")
    serve_port: int = Field(ge=1, le=65535, description="Port `altcredit serve` binds.")
    serve_workers: int = Field(ge=1, le=64, description="Gunicorn worker processes.")
    serve_timeout: int = Field(ge=1, description="Gunicorn worker timeout, seconds.")
    secret_key: str = Field(description="Session signing key; empty: generated in the data home.")
    ingest_max_batch: int = Field(
        ge=1, le=1_000_000, description="Most events in one ingestion batch (more: refused, 413).")
    ingest_max_problems: int = Field(
        ge=1, le=10_000, description="Most bad rows named when input is refused.")
    ingest_chunk_rows: int = Field(
        ge=1000, description="Rows read, validated and written at a time by file ingestion.")
    lake_compression: Literal["zstd", "snappy", "lz4", "none"] = Field(
        description="Parquet compression of lake files.")
    lake_fsync: bool = Field(
        description="fsync lake files and folders at each commit (off: faster, not crash-safe).")
    lake_late_days: float = Field(
        gt=0, description="Days from event_time to known_at beyond which an event arrived late.")
    lake_compact_target_rows: int = Field(
        ge=1000, description="Compaction merges small lake files into files of about this many rows.")
    lake_retire_seconds: float = Field(
        ge=0, description="Seconds a file replaced by compaction stays for readers still using it.")
    model_min_auc_drop: float = Field(
        ge=0, le=1, description="Promotion refused when the challenger's out-of-time AUC is this "
        "far below the champion's.")
    model_max_psi: float = Field(
        gt=0, description="Promotion refused when the challenger's score PSI against the "
        "champion exceeds this.")
    model_approval_cutoff: int = Field(
        ge=350, le=950, description="Score at or above which a report counts a user as approved (fairness).")
    model_search_budget: int = Field(
        ge=1, le=200, description="Hyper-parameter candidates the trainer's search tries.")
    model_cv_folds: int = Field(ge=2, le=20, description="Cross-validation folds of the trainer's search.")
    model_max_rounds: int = Field(ge=1, description="Most boosting rounds (trees) of a model.")
    model_search_rows: int = Field(
        ge=100, description="The search runs on a stratified sample of at most this many rows.")
    model_threads: int = Field(
        ge=0, le=512, description="XGBoost threads for training (0: all cores; 1 on a busy machine).")
    model_training_dates: int = Field(
        ge=2, le=60, description="Monthly as-of dates a training run uses, ending at the latest "
        "with a full outcome window, which is held out.")
    features_default_engine: Literal["polars", "spark"] = Field(
        description="Engine `features build` uses when --engine is not given.")
    features_chunk_rows: int = Field(
        ge=1000, description="Feature builds read and reduce the events at most this many "
        "rows at a time, two such pieces read at once (bounds memory; every user and contact "
        "is still seen whole).")
    features_spark_master: str = Field(
        min_length=1, description="Spark master for --engine spark (local[*]: this machine).")
    features_spark_shuffle_partitions: int = Field(
        ge=1, description="spark.sql.shuffle.partitions for feature builds on Spark.")
    simulate_bad_rate: float = Field(
        gt=0, le=0.5, description="Share of simulated users who go bad within a year (the "
        "simulator's risk knob).")
    simulate_chunk_users: int = Field(
        ge=1, description="Simulated users per events file (rounded up to blocks of 1,000).")
    partner_clock_skew: int = Field(
        ge=30, le=3600, description="Seconds a signed request's X-Timestamp may differ from the "
        "server's clock; nonces are kept twice as long.")
    partner_rate_limit: str = Field(
        pattern=r"^\d+ ?/ ?(second|minute|hour|day)$",
        description="Default rate limit of a new partner, such as `600/minute`.")
    partner_batch_max: int = Field(ge=1, le=10_000, description="Most open ids in one batch lookup.")
    partner_idempotency_hours: int = Field(
        ge=1, le=168, description="Hours a repeated X-Transaction-Id gets the first answer again.")
    consent_default_days: int = Field(ge=1, le=3650, description="Days a consent lasts unless "
                                      "granted for another period.")
    accounts_cookie_secure: bool = Field(description="Mark consumer session cookies Secure "
                                         "(HTTPS only); turn off only for local development.")
    accounts_signin_limit: str = Field(
        pattern=r"^\d+ ?/ ?(second|minute|hour|day)$",
        description="Sign-in attempts allowed per client address, such as `10/minute`.")
    drift_psi_warn: float = Field(gt=0, description="PSI above which a feature or the score drifts (warn).")
    drift_psi_alarm: float = Field(gt=0, description="PSI above which drift is an alarm: not ready, "
                                   "no automatic promotion.")
    disputes_deadline_days: int = Field(
        ge=1, le=3650, description="Days an open dispute may wait for an operator's decision "
        "before the daily job flags it overdue.")
    disputes_text_max_chars: int = Field(
        ge=10, le=100_000, description="Most characters of a dispute's reason or of a "
        "resolution note.")

    @model_validator(mode="after")
    def _drift_thresholds_ordered(self) -> Settings:
        if self.drift_psi_warn >= self.drift_psi_alarm:
            raise ValueError("drift_psi_warn must be below drift_psi_alarm")
        return self

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, value: str) -> str:
        if value and not value.startswith(("sqlite", "postgresql")):
            raise ValueError("must be empty, a sqlite:// URL or a postgresql+psycopg:// URL")
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        user_file = os.environ.get(CONFIG_ENV)
        if user_file:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=Path(user_file)))
        sources.append(TomlConfigSettingsSource(settings_cls, toml_file=DEFAULTS_FILE))
        return tuple(sources)

    # -- derived locations -------------------------------------------------

    def path(self, *parts: str) -> Path:
        """A path inside the data home, creating the home (not the leaf) on demand."""
        home = self.home.expanduser().resolve()
        home.mkdir(parents=True, exist_ok=True)
        target = home.joinpath(*parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        return target

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.path('altcredit.db')}"

    def session_secret(self) -> str:
        """The configured secret, or one generated once and kept (mode 600) in the data home."""
        if self.secret_key:
            return self.secret_key
        key_file = self.path("secret_key")
        if not key_file.exists():
            # Written beside and linked into place, so concurrent processes agree on one
            # key and no reader ever sees a half-written file.
            draft = key_file.with_name(f".secret_key.{os.getpid()}.{secrets.token_hex(4)}")
            fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_hex(32))
            try:
                os.link(draft, key_file)
            except FileExistsError:
                pass  # another process won the race; its key is the key
            finally:
                draft.unlink()
        return key_file.read_text().strip()


def load_settings(**overrides: Any) -> Settings:
    """Build the settings, or raise :class:`SettingsError` naming the first bad key."""
    _check_config_file()
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        error = exc.errors()[0]
        key = str(error["loc"][0]) if error["loc"] else _key_named_in(error["msg"])
        raise SettingsError(_describe_key(key), _describe_problem(error)) from None


def _check_config_file() -> None:
    user_file = os.environ.get(CONFIG_ENV)
    if not user_file:
        return
    path = Path(user_file)
    if not path.is_file():
        raise SettingsError(CONFIG_ENV, f"no such file: {user_file}")
    try:
        tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise SettingsError(CONFIG_ENV, f"{user_file} is not valid TOML ({exc})") from None


def _key_named_in(message: str) -> str:
    """The first setting a cross-field error message names (those errors carry no location)."""
    words = message.replace(",", " ").split()
    return next((word for word in words if word in Settings.model_fields), "settings")


def _describe_key(key: str) -> str:
    env_name = f"{ENV_PREFIX}{key.upper()}"
    if key in Settings.model_fields and env_name in os.environ:
        return env_name
    return key


def _describe_problem(error: dict[str, Any]) -> str:
    if error["type"] == "extra_forbidden":
        return "unknown key"
    value = error.get("input")
    shown = f", got {value!r}" if isinstance(value, str | int | float) else ""
    return f"{error['msg']}{shown}"
