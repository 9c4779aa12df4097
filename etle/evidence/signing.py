"""Ed25519 site keys that sign evidence manifests (with the ``cryptography`` library).

A site (an edge box, or the central office) has one signing key, made by ``etle keys init``::

    <keys dir>/site.key            private key, PKCS#8 PEM, mode 0600 (encrypted when
                                   ETLE_KEY_PASSPHRASE is set)
    <keys dir>/site.pub            its public key, SubjectPublicKeyInfo PEM
    <keys dir>/trusted/<id>.pub    every public key this site ever used (rotation keeps the
                                   old ones, so old manifests still verify); other sites'
                                   public keys may be dropped here too

A key's id is the first 16 hex digits of the SHA-256 of its raw 32-byte public key.  Each bundle
gets ``manifest.sig`` beside ``manifest.json``: a small JSON object holding the key id and the
base64 Ed25519 signature of the manifest's exact bytes.  The signature is a separate file so the
manifest's bytes (and so its SHA-256, which the next manifest of the camera chains to) are
final before signing.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from etle.config.settings import DEFAULT_KEYS_DIR as _DEFAULT_KEYS_DIR, settings
from etle.errors import StoreError

log = logging.getLogger(__name__)

PRIVATE_NAME = "site.key"
PUBLIC_NAME = "site.pub"
TRUSTED_DIR = "trusted"
SIGNATURE_NAME = "manifest.sig"
SIGNATURE_SCHEMA = "etle.signature"
ALGORITHM = "Ed25519"
KEYS_ENV = "ETLE_KEYS_DIR"
PASSPHRASE_ENV = "ETLE_KEY_PASSPHRASE"
DEFAULT_KEYS_DIR = _DEFAULT_KEYS_DIR


def default_keys_dir() -> Path:
    """``$ETLE_KEYS_DIR`` or ``./etle-keys``."""
    return settings().keys_dir


def _raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id_of(key: Ed25519PublicKey) -> str:
    return hashlib.sha256(_raw_public(key)).hexdigest()[:16]


def public_b64(key: Ed25519PublicKey) -> str:
    return base64.b64encode(_raw_public(key)).decode("ascii")


def public_from_b64(text: str) -> Ed25519PublicKey:
    try:
        return Ed25519PublicKey.from_public_bytes(base64.b64decode(text, validate=True))
    except ValueError as exc:
        raise StoreError(f"not an Ed25519 public key: {exc}") from exc


@dataclass(frozen=True, slots=True)
class KeyInfo:
    """A site key on disk."""

    key_id: str
    private_path: Path
    public_path: Path
    public_key_b64: str


def _passphrase() -> bytes | None:
    value = settings().key_passphrase
    return value.encode() if value else None


def _write_private(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _write_public(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def init_keys(directory: Path | str | None = None, *, force: bool = False) -> KeyInfo:
    """Create the site's signing key in ``directory`` (default :func:`default_keys_dir`).

    Refuses to replace an existing key unless ``force``; a replaced key is kept as
    ``retired/<id>.key`` and its public key stays trusted.  Raises :class:`StoreError`.
    """
    folder = Path(directory) if directory is not None else default_keys_dir()
    private_path, public_path = folder / PRIVATE_NAME, folder / PUBLIC_NAME
    try:
        if private_path.exists():
            if not force:
                existing = load_signer(folder)
                raise StoreError(
                    f"a site key ({existing.key_id}) exists in {folder}; pass --force to replace it"
                )
            old = load_signer(folder)
            retired = folder / "retired"
            retired.mkdir(mode=0o700, exist_ok=True)
            shutil.move(str(private_path), retired / f"{old.key_id}.key")
            log.warning("site key %s retired to %s", old.key_id, retired)
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        (folder / TRUSTED_DIR).mkdir(exist_ok=True)
        key = Ed25519PrivateKey.generate()
        passphrase = _passphrase()
        encryption: serialization.KeySerializationEncryption = (
            serialization.BestAvailableEncryption(passphrase) if passphrase else serialization.NoEncryption()
        )
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)
        pub = key.public_key()
        pub_pem = pub.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        kid = key_id_of(pub)
        _write_public(folder / TRUSTED_DIR / f"{kid}.pub", pub_pem)
        _write_public(public_path, pub_pem)
        _write_private(private_path, pem)
    except OSError as exc:
        raise StoreError(f"cannot write the site key in {folder}: {exc}") from exc
    log.info("site key %s created in %s", kid, folder)
    return KeyInfo(kid, private_path, public_path, public_b64(pub))


class ManifestSigner:
    """Signs manifest bytes with a site's private key."""

    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        self._key = private_key
        self.public_key = private_key.public_key()
        self.key_id = key_id_of(self.public_key)
        self.public_key_b64 = public_b64(self.public_key)

    def __repr__(self) -> str:
        return f"ManifestSigner(key_id={self.key_id!r})"

    @classmethod
    def generate(cls) -> ManifestSigner:
        """A throw-away signer (tests)."""
        return cls(Ed25519PrivateKey.generate())

    def sign(self, manifest: bytes) -> bytes:
        """The ``manifest.sig`` file content for ``manifest`` (its exact bytes)."""
        signature = self._key.sign(manifest)
        body = {
            "schema": SIGNATURE_SCHEMA,
            "alg": ALGORITHM,
            "key_id": self.key_id,
            "manifest_sha256": hashlib.sha256(manifest).hexdigest(),
            "signature": base64.b64encode(signature).decode("ascii"),
        }
        return (json.dumps(body, indent=2, sort_keys=True) + "\n").encode()


def load_signer(directory: Path | str | None = None) -> ManifestSigner:
    """The site's signer from ``directory``; :class:`StoreError` when absent or unreadable."""
    folder = Path(directory) if directory is not None else default_keys_dir()
    path = folder / PRIVATE_NAME
    try:
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise StoreError(f"no site key in {folder}: create one with 'etle keys init'") from exc
    except OSError as exc:
        raise StoreError(f"cannot read the site key {path}: {exc.strerror or exc}") from exc
    try:
        key = serialization.load_pem_private_key(data, password=_passphrase())
    except (ValueError, TypeError) as exc:
        raise StoreError(f"site key {path} is unreadable (wrong {PASSPHRASE_ENV}?): {exc}") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise StoreError(f"site key {path} is not an Ed25519 key")
    return ManifestSigner(key)


def load_signer_if_present(directory: Path | str | None = None) -> ManifestSigner | None:
    folder = Path(directory) if directory is not None else default_keys_dir()
    return load_signer(folder) if (folder / PRIVATE_NAME).exists() else None


def trusted_keys(
    directory: Path | str | None = None, extra: Mapping[str, str] | None = None
) -> dict[str, Ed25519PublicKey]:
    """``{key_id: public key}`` of every ``*.pub`` in ``directory`` and ``directory/trusted``,
    plus ``extra`` (``{key_id: base64}``, e.g. the site keys registered in a ticket database).
    A key whose id does not match its material is ignored with a warning."""
    folder = Path(directory) if directory is not None else default_keys_dir()
    keys: dict[str, Ed25519PublicKey] = {}
    for path in sorted([*folder.glob("*.pub"), *(folder / TRUSTED_DIR).glob("*.pub")]):
        try:
            key = serialization.load_pem_public_key(path.read_bytes())
        except (OSError, ValueError) as exc:
            log.warning("ignoring unreadable public key %s: %s", path, exc)
            continue
        if isinstance(key, Ed25519PublicKey):
            keys[key_id_of(key)] = key
    for kid, b64 in (extra or {}).items():
        try:
            key = public_from_b64(b64)
        except StoreError as exc:
            log.warning("ignoring site key %s: %s", kid, exc)
            continue
        if key_id_of(key) != kid:
            log.warning("ignoring site key %s: its id does not match its key material", kid)
            continue
        keys.setdefault(kid, key)
    return keys


def signature_problem(manifest: bytes, signature_file: bytes, keys: Mapping[str, Ed25519PublicKey]) -> str | None:
    """Why ``signature_file`` is not a valid signature of ``manifest`` by one of ``keys`` (None if it is)."""
    try:
        body = json.loads(signature_file)
        kid = str(body["key_id"])
        signature = base64.b64decode(str(body["signature"]), validate=True)
        if body.get("alg") != ALGORITHM or body.get("schema") != SIGNATURE_SCHEMA:
            return f"unsupported signature {body.get('schema')!r}/{body.get('alg')!r}"
        if set(body) != {"schema", "alg", "key_id", "manifest_sha256", "signature"}:
            return "signature file has unexpected fields"
        if (json.dumps(body, indent=2, sort_keys=True) + "\n").encode() != signature_file:
            return "signature file is not in its canonical form (edited?)"
    except (ValueError, KeyError, TypeError) as exc:
        return f"signature file unparsable ({exc})"
    key = keys.get(kid)
    if key is None:
        return f"signed by unknown key {kid} (not in the trusted keys)"
    try:
        key.verify(signature, manifest)
    except InvalidSignature:
        return f"signature by key {kid} does not match the manifest"
    if body.get("manifest_sha256") not in (None, hashlib.sha256(manifest).hexdigest()):
        return "signature file names another manifest hash"
    return None
