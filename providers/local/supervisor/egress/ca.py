"""The certificate authority the proxy signs its stand-in certificates with, where it must read HTTPS to add a
secret: made once per data directory (its key readable by its owner alone), trusted only inside the sandbox
through the bundle `write_trust_bundle` writes."""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import functools
import os
import ssl
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ..records import write_new
from .policy import parse_address

CERT_FILE = "ca.pem"
KEY_FILE = "ca-key.pem"
CA_NAME = "runtimes-mcp sandbox egress CA"
CA_DAYS = 3650
LEAF_DAYS = 30
LEAF_CACHE = 256
_SYSTEM_BUNDLES = (
    "/etc/ssl/certs/ca-certificates.crt",  # Debian, Ubuntu, Alpine, Arch
    "/etc/pki/tls/certs/ca-bundle.crt",  # Fedora, RHEL
    "/etc/ssl/ca-bundle.pem",  # openSUSE
    "/etc/ssl/cert.pem",  # macOS, BSDs
)


class CertificateAuthority:
    """A CA in a directory, with per-host server contexts for TLS termination (cached in memory)."""

    def __init__(self, certificate: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> None:
        self.certificate = certificate
        self._key = key
        # One key for every leaf: making a key per host would cost more than signing does, for nothing.
        self._leaf_key = ec.generate_private_key(ec.SECP256R1())
        self._contexts: OrderedDict[str, tuple[ssl.SSLContext, datetime.datetime]] = OrderedDict()

    @classmethod
    def load_or_create(cls, directory: str | os.PathLike[str]) -> CertificateAuthority:
        """The CA in `directory`, made there first if there is none. Several processes may race to make it:
        the first to hold the directory's lock does."""
        path = Path(directory)
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        with open(path / ".lock", "a+", opener=functools.partial(os.open, mode=0o600)) as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not (path / CERT_FILE).exists():
                _create(path)
            key_path = path / KEY_FILE
            mode = key_path.stat().st_mode
            if mode & 0o077:
                raise PermissionError(
                    f"the egress CA key {key_path} is readable by others (mode {mode & 0o777:o}); remove "
                    f"{path} to make a new CA"
                )
            key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
            certificate = x509.load_pem_x509_certificate((path / CERT_FILE).read_bytes())
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ValueError(f"the egress CA key {key_path} is not an EC key; remove {path} to make a new CA")
        return cls(certificate, key)

    def server_context(self, host: str) -> ssl.SSLContext:
        """A TLS server context presenting a certificate for `host` (a name or an address) signed by this CA."""
        now = datetime.datetime.now(datetime.UTC)
        cached = self._contexts.get(host)
        if cached is not None and cached[1] - now > datetime.timedelta(days=1):
            self._contexts.move_to_end(host)
            return cached[0]
        context, expires = self._make_context(host, now)
        self._contexts[host] = (context, expires)
        while len(self._contexts) > LEAF_CACHE:
            self._contexts.popitem(last=False)
        return context

    def _make_context(self, host: str, now: datetime.datetime) -> tuple[ssl.SSLContext, datetime.datetime]:
        address = parse_address(host)
        name: x509.GeneralName = x509.IPAddress(address) if address is not None else x509.DNSName(host)
        expires = min(now + datetime.timedelta(days=LEAF_DAYS), self.certificate.not_valid_after_utc)
        leaf = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host[:64])]))
            .issuer_name(self.certificate.subject)
            .public_key(self._leaf_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(expires)
            .add_extension(x509.SubjectAlternativeName([name]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_key_usage(signing=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(self._leaf_key.public_key()), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self._key.public_key()), critical=False)
            .sign(self._key, hashes.SHA256())
        )
        pem = (
            leaf.public_bytes(serialization.Encoding.PEM)
            + self.certificate.public_bytes(serialization.Encoding.PEM)
            + _private_pem(self._leaf_key)
        )
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.set_alpn_protocols(["http/1.1"])  # the proxy reads HTTP/1.1 only
        with _secret_file(pem) as path:
            context.load_cert_chain(path)
        return context, expires


def write_trust_bundle(
    ca_dir: str | os.PathLike[str], path: str | os.PathLike[str], extra_ca_files: Sequence[str] = ()
) -> Path:
    """Write what a sandboxed client should trust to `path`: the system's bundle, the CA in `ca_dir` (made first if
    need be) and the certificates in `extra_ca_files` (nothing else they hold, such as a key). Replaced whole, mode
    0644."""
    certificate = CertificateAuthority.load_or_create(ca_dir).certificate
    parts = [_system_bundle(), certificate.public_bytes(serialization.Encoding.PEM)]
    for extra in extra_ca_files:
        parts.extend(_certificates(extra))
    target = Path(path)
    write_new(target, b"\n".join(part.strip() for part in parts if part.strip()) + b"\n", 0o644)
    return target


@functools.cache
def upstream_context(extra_ca_file: str | None = None) -> ssl.SSLContext:
    """How the proxy checks the real server it forwards a terminated request to: the system's trust store,
    plus `extra_ca_file` when given. Made on first use and kept: loading the store takes ~20 ms, most runs never
    reach a secret's host, and a supervisor serves run after run."""
    context = ssl.create_default_context(cafile=None)
    if extra_ca_file is not None:
        context.load_verify_locations(cafile=extra_ca_file)
    context.set_alpn_protocols(["http/1.1"])
    return context


def _create(directory: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, CA_NAME),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "runtimes-mcp"),
        ]
    )
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(signing=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    # The key first, created 0600 (never a moment world-readable); the certificate last, so a CA whose
    # certificate exists is whole.
    write_new(directory / KEY_FILE, _private_pem(key), 0o600)
    write_new(directory / CERT_FILE, certificate.public_bytes(serialization.Encoding.PEM), 0o644)


def _key_usage(signing: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not signing,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=signing,
        crl_sign=signing,
        encipher_only=False,
        decipher_only=False,
    )


def _private_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


@contextlib.contextmanager
def _secret_file(data: bytes) -> Iterator[str]:
    """A path `ssl` can load a key from (it takes only paths): an anonymous memory file, never on a disk."""
    fd = os.memfd_create("egress-leaf", os.MFD_CLOEXEC)
    try:
        os.write(fd, data)
        yield f"/proc/self/fd/{fd}"
    finally:
        os.close(fd)


def _system_bundle() -> bytes:
    paths = ssl.get_default_verify_paths()
    for candidate in (paths.cafile, paths.openssl_cafile, *_SYSTEM_BUNDLES):
        if candidate and os.path.isfile(candidate):
            return Path(candidate).read_bytes()
    return b""


def _certificates(path: str) -> list[bytes]:
    """The certificates in a PEM file, and nothing else it holds (such as a key)."""
    try:
        found = x509.load_pem_x509_certificates(Path(path).read_bytes())
    except ValueError:
        raise ValueError(f"{path} holds no PEM certificate") from None
    return [certificate.public_bytes(serialization.Encoding.PEM) for certificate in found]
