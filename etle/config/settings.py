"""The ``ETLE_*`` environment, read in this one place (pydantic-settings).

Every module that honours an environment variable asks :func:`settings` for it instead of reading
``os.environ`` itself, so the names, types and defaults are declared once here (and listed in the
README).  :func:`settings` reads the environment at each call -- it is cheap, and a test or a
worker process that changes a variable sees the change; the composition root
(:func:`etle.runner.build_pipeline`) takes one reading and passes it down.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from etle.config.run import DEFAULT_DB, DEVICES
from etle.errors import ConfigError

DEFAULT_KEYS_DIR = Path("etle-keys")


class Settings(BaseSettings):
    """What the environment says (``ETLE_<FIELD>``, upper case); unset fields keep these defaults."""

    model_config = SettingsConfigDict(env_prefix="ETLE_", extra="ignore", frozen=True, case_sensitive=False, env_ignore_empty=True)

    #: folder of derived and user-supplied model files
    model_dir: Path = Field(default_factory=lambda: Path.home() / ".cache" / "etle" / "models")
    #: another model manifest (default: the packaged models/manifest.yaml)
    model_manifest: Path | None = None
    #: where the detectors run (as --device): cpu, cuda or auto
    device: str = "cpu"
    #: ONNX Runtime threads per session (0: every core)
    threads: int = Field(0, ge=0)
    #: let ONNX Runtime's threads spin between runs (faster, burns idle CPU)
    ort_spin: bool = False
    #: folder of the site signing key
    keys_dir: Path = DEFAULT_KEYS_DIR
    #: passphrase of an encrypted site key
    key_passphrase: str | None = None
    #: the table of articles and fines (default: the packaged etle/data/articles.yaml)
    articles: Path | None = None
    #: the central store a run syncs to in the background (both or neither)
    central_db: str = ""
    central_evidence: str = ""
    #: bearer token of an HTTP vehicle registry
    registry_token: str | None = None
    #: the ticket database of `etle serve`'s factory and of the commands' --db
    db: str = DEFAULT_DB
    #: the evidence root the review app serves
    evidence_root: Path | None = None
    #: the review app's session secret (hex or text; default: a random one per start)
    web_secret: str | None = None
    #: "1": cookies without the Secure flag (a trial over plain http)
    web_insecure_cookies: str = ""
    #: base URL printed on letters (QR code)
    web_public_url: str = ""
    #: the password of `etle users add` when not typed (for scripts)
    user_password: str | None = None

    @field_validator("device")
    @classmethod
    def _known_device(cls, value: str) -> str:
        value = value.strip().lower() or "cpu"
        if value not in DEVICES:
            raise ValueError(f"device {value!r} is not one of {', '.join(DEVICES)}")
        return value


def settings() -> Settings:
    """The environment now; a bad value is a :class:`ConfigError` naming the variable."""
    try:
        return Settings()
    except ValidationError as exc:
        err = exc.errors()[0]
        name = "ETLE_" + str(err["loc"][0]).upper() if err.get("loc") else "an ETLE_ variable"
        raise ConfigError(f"{name}={err.get('input')!r}: {err['msg']}") from None
