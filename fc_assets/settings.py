"""Environment settings, read once, with defaults that point at the local stack (`make demo`).

Production sets the environment variables listed in the README. Nothing here does I/O at import time;
`get_settings()` reads the environment on first call and caches the result (tests call
`get_settings.cache_clear()` after changing the environment).

A pydantic model (Dagster imports pydantic anyway) filled from the environment the way pydantic-settings'
`BaseSettings` would (`from_environment`; a test holds the two equal): pydantic-settings costs ~0.1 s to
import (its CLI source alone ~80 ms) in every process that loads the code location.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from functools import lru_cache

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, SecretStr, field_validator

LOCALHOST = "127.0.0.1"


class Settings(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Each field from its variable (the first of its alias choices that is set), else from its own
        name, case-insensitive, else its default; values are parsed and validated by pydantic (errors name
        the variable)."""
        env = {k.upper(): v for k, v in (os.environ if environ is None else environ).items()}
        values: dict[str, str] = {}
        for name, field in cls.model_fields.items():
            alias = field.validation_alias
            variables = list(alias.choices) if isinstance(alias, AliasChoices) else [field.alias or name]
            for variable in [*variables, name]:
                if str(variable).upper() in env:
                    values[str(variable)] = env[str(variable).upper()]
                    break
        return cls.model_validate(values)

    # Fluent
    fluent_base_url: str = Field(f"http://{LOCALHOST}:8099", alias="FLUENT_BASE_URL")
    fluent_client_id: str = Field("fc-sandbox", alias="FLUENT_CLIENT_ID")
    fluent_client_secret: SecretStr = Field(SecretStr("fc-sandbox-secret"), alias="FLUENT_CLIENT_SECRET")
    fluent_username: str | None = Field(None, alias="FLUENT_USERNAME")
    fluent_password: SecretStr | None = Field(None, alias="FLUENT_PASSWORD")
    fluent_retailer_id: str = Field("1", alias="FLUENT_RETAILER_ID")
    fluent_page_size: int = Field(100, alias="FC_FLUENT_PAGE_SIZE")
    fluent_concurrency: int = Field(4, alias="FC_FLUENT_CONCURRENCY")
    fluent_timeout_s: float = Field(30.0, alias="FC_FLUENT_TIMEOUT_S")
    fluent_max_retries: int = Field(5, alias="FC_FLUENT_MAX_RETRIES")
    fluent_backoff_s: float = Field(0.5, alias="FC_FLUENT_BACKOFF_S")

    # The lake (s3://bucket/prefix or file:///abs/path)
    lake_uri: str = Field("s3://fc-lake/lake", alias="FC_LAKE_URI")
    aws_endpoint_url: str | None = Field(f"http://{LOCALHOST}:9000", alias="AWS_ENDPOINT_URL")
    aws_access_key_id: str = Field("testing", alias="AWS_ACCESS_KEY_ID")
    aws_secret_access_key: SecretStr = Field(SecretStr("testing"), alias="AWS_SECRET_ACCESS_KEY")
    aws_region: str = Field("us-east-1", validation_alias=AliasChoices("AWS_REGION", "AWS_DEFAULT_REGION"))

    @field_validator("aws_endpoint_url")
    @classmethod
    def _empty_endpoint_is_aws(cls, value: str | None) -> str | None:
        """`AWS_ENDPOINT_URL=""` means AWS itself (boto3 rejects an empty endpoint)."""
        return value or None

    # SFTP
    sftp_host: str = Field(LOCALHOST, alias="FC_SFTP_HOST")
    sftp_port: int = Field(2222, alias="FC_SFTP_PORT")
    sftp_username: str = Field("fc", alias="FC_SFTP_USERNAME")
    sftp_password: SecretStr | None = Field(SecretStr("fc-sftp"), alias="FC_SFTP_PASSWORD")
    sftp_key_path: str | None = Field(None, alias="FC_SFTP_KEY_PATH")
    sftp_known_hosts: str | None = Field(None, alias="FC_SFTP_KNOWN_HOSTS")
    sftp_trust_on_first_use: bool = Field(False, alias="FC_SFTP_TRUST_ON_FIRST_USE")

    # Extraction
    extract_start_date: str = Field("2025-01-01", alias="FC_EXTRACT_START_DATE")
    late_update_days: int = Field(3, alias="FC_LATE_UPDATE_DAYS")

    # Ingestion: where feeds' files arrive (each feed has its own sub-prefix / sub-directory)
    inbox_s3_uri: str = Field("s3://fc-inbox", alias="FC_INBOX_S3_URI")
    sftp_inbox_dir: str = Field("inbox", alias="FC_SFTP_INBOX_DIR")
    reject_threshold: float = Field(0.05, alias="FC_REJECT_THRESHOLD")
    max_files_per_tick: int = Field(50, alias="FC_MAX_FILES_PER_TICK")
    max_file_bytes: int = Field(2 * 1024**3, alias="FC_MAX_FILE_BYTES")
    # feeds whose rows missing from a file (but in the last snapshot) are sent as deletions (inventory: qty 0)
    send_disappeared: str = Field("", alias="FC_SEND_DISAPPEARED")

    @property
    def send_disappeared_feeds(self) -> frozenset[str]:
        return frozenset(n.strip() for n in self.send_disappeared.split(",") if n.strip())

    sensor_lookback_s: float = Field(3600.0, alias="FC_SENSOR_LOOKBACK_S")
    sensor_full_scan_minutes: float = Field(30.0, alias="FC_SENSOR_FULL_SCAN_MINUTES")
    feed_max_retries: int = Field(3, alias="FC_FEED_MAX_RETRIES")
    feed_retry_delay_s: float = Field(30.0, alias="FC_FEED_RETRY_DELAY_S")
    feed_lease_s: float = Field(1800.0, alias="FC_FEED_LEASE_S")
    state_retention_days: int = Field(90, alias="FC_STATE_RETENTION_DAYS")
    max_decompressed_bytes: int = Field(4 * 1024**3, alias="FC_MAX_DECOMPRESSED_BYTES")
    max_value_bytes: int = Field(8 * 1024**2, alias="FC_MAX_VALUE_BYTES")

    # Alerts: a Slack-compatible webhook for failed runs (no alert sensor when unset) and the UI's address
    # for the link to the run
    alert_webhook_url: SecretStr | None = Field(None, alias="FC_ALERT_WEBHOOK_URL")
    dagster_ui_url: str | None = Field(None, alias="FC_DAGSTER_UI_URL")

    @field_validator("alert_webhook_url", "dagster_ui_url", mode="before")
    @classmethod
    def _empty_is_unset(cls, value):
        return value or None

    # Local stack ports (make demo)
    sandbox_port: int = Field(8099, alias="FC_SANDBOX_PORT")
    s3_port: int = Field(9000, alias="FC_S3_PORT")
    dagster_port: int = Field(3000, alias="FC_DAGSTER_PORT")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings.from_environment()
