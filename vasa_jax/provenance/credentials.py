"""The credential that signs the C2PA manifests: the user's own, or one this installation makes for itself.

Your own: VASA_JAX_C2PA_KEY and VASA_JAX_C2PA_CERT name PEM files, a private key (EC P-256 / P-384 / P-521,
Ed25519 or RSA) and its certificate chain, signer first (a certificate a C2PA trust list knows makes the
manifests verifiable by anyone). Otherwise, on first use, this installation makes its own: a local CA, and a
signing certificate that CA issues (C2PA validators refuse a self-signed end certificate), in the config folder
(VASA_JAX_CONFIG_DIR, else $XDG_CONFIG_HOME/vasa-jax, else ~/.config/vasa-jax), under c2pa/. The CA's private key
is discarded once it has issued the signing certificate. The certificates name vasa-jax only: no user, host or
other personal data.
"""

from __future__ import annotations

import dataclasses
import datetime
import os
import shutil
import tempfile
from pathlib import Path

from vasa_jax.errors import ConfigError

KEY_ENV = "VASA_JAX_C2PA_KEY"
CERT_ENV = "VASA_JAX_C2PA_CERT"
CONFIG_ENV = "VASA_JAX_CONFIG_DIR"
INSTALLATION_SIGNER = "vasa-jax installation credential (self-made, unverified)"
VALID_DAYS = 3650


@dataclasses.dataclass(frozen=True)
class Credential:
    key_pem: bytes
    chain_pem: bytes  # the signing certificate first, then its issuers
    algorithm: str  # C2PA's name: es256, es384, es512, ed25519, ps256
    source: str  # "user" (the environment's files) or "installation" (made here)


def config_dir() -> Path:
    if os.environ.get(CONFIG_ENV):
        return Path(os.environ[CONFIG_ENV])
    base = os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"
    return Path(base) / "vasa-jax"


def credential_dir() -> Path:
    return config_dir() / "c2pa"


def installation_ca() -> bytes | None:
    """This installation's CA certificate (PEM), or None if none was made yet: the checker trusts it."""
    path = credential_dir() / "ca.pem"
    return path.read_bytes() if path.is_file() else None


def load_credential() -> Credential:
    """The user's credential if the environment names one (ConfigError naming the file if it cannot sign), else
    this installation's, made on first use."""
    key_path, cert_path = os.environ.get(KEY_ENV), os.environ.get(CERT_ENV)
    if key_path or cert_path:
        if not (key_path and cert_path):
            raise ConfigError(f"set both {KEY_ENV} and {CERT_ENV} (a PEM private key and its certificate chain) "
                              "to sign with your own credential, or neither")
        return _user_credential(Path(key_path), Path(cert_path))
    folder = credential_dir()
    if not (folder / "signer.key").is_file():
        _make_installation_credential(folder)
    try:
        return Credential((folder / "signer.key").read_bytes(), (folder / "signer.pem").read_bytes(), "es256",
                          "installation")
    except OSError as e:
        raise ConfigError(f"{folder}: this installation's signing credential cannot be read ({e.strerror or e}); "
                          "delete the folder to make a new one") from None


def _user_credential(key_path: Path, cert_path: Path) -> Credential:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

    def read(path: Path, variable: str) -> bytes:
        try:
            return path.read_bytes()
        except OSError as e:
            raise ConfigError(f"{path} ({variable}): cannot be read ({e.strerror or e})") from None

    key_pem, chain_pem = read(key_path, KEY_ENV), read(cert_path, CERT_ENV)
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError) as e:
        raise ConfigError(f"{key_path} ({KEY_ENV}): not an unencrypted PEM private key ({e})") from None
    try:
        chain = x509.load_pem_x509_certificates(chain_pem)
    except ValueError as e:
        raise ConfigError(f"{cert_path} ({CERT_ENV}): not a PEM certificate chain ({e})") from None
    public = serialization.PublicFormat.SubjectPublicKeyInfo
    if chain[0].public_key().public_bytes(serialization.Encoding.DER, public) != \
            key.public_key().public_bytes(serialization.Encoding.DER, public):
        raise ConfigError(f"{cert_path} ({CERT_ENV}): its first certificate is not that of the key in {key_path}")
    if isinstance(key, ec.EllipticCurvePrivateKey):
        algorithm = {256: "es256", 384: "es384", 521: "es512"}.get(key.curve.key_size)
    elif isinstance(key, ed25519.Ed25519PrivateKey):
        algorithm = "ed25519"
    elif isinstance(key, rsa.RSAPrivateKey):
        algorithm = "ps256"
    else:
        algorithm = None
    if algorithm is None:
        raise ConfigError(f"{key_path} ({KEY_ENV}): C2PA signs with EC P-256 / P-384 / P-521, Ed25519 or RSA keys")
    return Credential(key_pem, chain_pem, algorithm, "user")


def _make_installation_credential(folder: Path) -> None:
    """A local CA and a signing certificate it issues, written to `folder` at once (a folder renamed into place:
    two processes starting together keep one pair)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    def name(common_name: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name),
                          x509.NameAttribute(NameOID.ORGANIZATION_NAME, "vasa-jax")])

    def usage(*, sign: bool, ca: bool) -> x509.KeyUsage:
        return x509.KeyUsage(digital_signature=sign, content_commitment=False, key_encipherment=False,
                             data_encipherment=False, key_agreement=False, key_cert_sign=ca, crl_sign=ca,
                             encipher_only=False, decipher_only=False)

    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())

    def certificate(subject, public_key, *, ca: bool):
        builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(name("vasa-jax installation CA"))
                   .public_key(public_key).serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(days=1))
                   .not_valid_after(now + datetime.timedelta(days=VALID_DAYS))
                   .add_extension(x509.BasicConstraints(ca=ca, path_length=0 if ca else None), critical=True)
                   .add_extension(usage(sign=not ca, ca=ca), critical=True)
                   .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False))
        if not ca:
            builder = (builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]),
                                             critical=False)
                       .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                                      critical=False))
        return builder.sign(ca_key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)

    ca_pem = certificate(name("vasa-jax installation CA"), ca_key.public_key(), ca=True)
    leaf_pem = certificate(name(INSTALLATION_SIGNER), key.public_key(), ca=False)
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".c2pa-", dir=folder.parent))
        (staging / "ca.pem").write_bytes(ca_pem)
        (staging / "signer.pem").write_bytes(leaf_pem + ca_pem)
        (staging / "signer.key").write_bytes(key_pem)  # mkdtemp made the folder private to this user
        try:
            staging.rename(folder)
        except OSError:  # another process made it first (or an empty folder is in the way: use it)
            if not (folder / "signer.key").is_file():
                folder.rmdir()
                staging.rename(folder)
            else:
                shutil.rmtree(staging)
    except OSError as e:
        raise ConfigError(f"{folder}: cannot create this installation's signing credential ({e.strerror or e}); "
                          f"set {CONFIG_ENV} to a writable folder, or {KEY_ENV} and {CERT_ENV} to your own") from None
