"""Real signatures for tests, made by the signing side's own code, never by Ferry's code under
test: Sigstore bundles by sigstore-js (``@sigstore/sign``, key-based, run with the machine's
Node through ``sigstore_sign.js``), cosign ``.sig`` manifests and Notary JWS envelopes built from
their specifications with ``cryptography``; attached to images in real registries as cosign,
sigstore-js and notation attach them (the ``.sig`` tag; referrers, through the referrers tag
schema when the registry lacks the API)."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from shared.errors import NotFoundError
from shared.oci import mediatypes as mt
from shared.oci.digest import Digest
from shared.oci.manifest import Descriptor
from shared.registry import RegistryClient
from tests.harness.images import Blob, Image, push_image

ROOT = Path(__file__).resolve().parents[2]
BUNDLE = "application/vnd.dev.sigstore.bundle.v0.3+json"
NOTARY = "application/vnd.cncf.notary.signature"
SIMPLE_SIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"
IN_TOTO = "application/vnd.in-toto+json"
SIGN_PREDICATE = "https://sigstore.dev/cosign/sign/v1"
SLSA = "https://slsa.dev/provenance/v1"


@dataclass
class Key:
    """An ECDSA P-256 key pair, as ``cosign generate-key-pair`` makes (plain PEM here)."""

    private: ec.EllipticCurvePrivateKey = field(default_factory=lambda: ec.generate_private_key(ec.SECP256R1()))

    @property
    def public_pem(self) -> str:
        return (
            self.private.public_key()
            .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
            .decode()
        )

    @property
    def private_pem(self) -> str:
        return self.private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode()

    def sign(self, data: bytes) -> bytes:
        return self.private.sign(data, ec.ECDSA(hashes.SHA256()))


def _desc(blob: Blob) -> dict[str, Any]:
    return blob.descriptor.to_json()


# -- cosign's tag scheme (specs/SIGNATURE_SPEC.md) --------------------------------------------


def simple_signing(reference: str, digest: Digest) -> bytes:
    doc = {
        "critical": {
            "identity": {"docker-reference": reference},
            "image": {"docker-manifest-digest": str(digest)},
            "type": "cosign container image signature",
        },
        "optional": None,
    }
    return json.dumps(doc, separators=(",", ":")).encode()


def cosign_layer(payload: bytes, key: Key, **extra: str) -> tuple[bytes, dict[str, str]]:
    annotations = {"dev.cosignproject.cosign/signature": base64.b64encode(key.sign(payload)).decode(), **extra}
    return payload, annotations


def cosign_manifest(layers: list[tuple[bytes, dict[str, str]]]) -> Image:
    """A ``.sig`` manifest as cosign writes it: OCI config, one simple-signing layer each."""
    config = Blob(b'{"architecture":"","os":"","rootfs":{"type":"layers","diff_ids":[]},"config":{}}', mt.OCI_CONFIG)
    blobs = [Blob(payload, SIMPLE_SIGNING) for payload, _ in layers]
    doc = {
        "schemaVersion": 2,
        "mediaType": mt.OCI_MANIFEST,
        "config": _desc(config),
        "layers": [{**_desc(b), "annotations": ann} for b, (_, ann) in zip(blobs, layers, strict=True)],
    }
    return Image(json.dumps(doc).encode(), mt.OCI_MANIFEST, [config, *blobs])


async def push_cosign(client: RegistryClient, repo: str, subject: Digest, sig: Image) -> Digest:
    return await push_image(client, repo, sig, f"{subject.algorithm}-{subject.encoded}.sig")


# -- Sigstore bundles, by sigstore-js ---------------------------------------------------------


def statement(subject: Digest, predicate_type: str, predicate: Any, name: str = "image") -> bytes:
    doc = {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": name, "digest": {subject.algorithm: subject.encoded}}],
        "predicateType": predicate_type,
        "predicate": predicate,
    }
    return json.dumps(doc).encode()


def sigstore_js(jobs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Bundles made by ``@sigstore/sign`` (see sigstore_sign.js)."""
    done = subprocess.run(
        ["node", str(ROOT / "tests" / "harness" / "sigstore_sign.js")],
        input=json.dumps(jobs).encode(),
        capture_output=True,
        cwd=ROOT,
        timeout=60,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"sigstore_sign.js failed: {done.stderr.decode()[-2000:]}")
    bundles: list[dict[str, Any]] = json.loads(done.stdout)
    return bundles


def dsse_bundle(key: Key, payload: bytes) -> dict[str, Any]:
    return sigstore_js(
        [{"key": key.private_pem, "kind": "dsse", "data": base64.b64encode(payload).decode(), "type": IN_TOTO}]
    )[0]


def message_bundle(key: Key, manifest: bytes) -> dict[str, Any]:
    return sigstore_js([{"key": key.private_pem, "kind": "message", "data": base64.b64encode(manifest).decode()}])[0]


def bundle_referrer(subject: Descriptor, bundle: dict[str, Any], predicate_type: str | None = None) -> Image:
    """The referrer cosign v3 and sigstore-js attach: artifactType and layer the bundle's media
    type, the empty config, ``subject`` the image (cosign ``specs/BUNDLE_SPEC.md``)."""
    empty = Blob(mt.EMPTY_JSON, mt.OCI_EMPTY)
    layer = Blob(json.dumps(bundle).encode(), BUNDLE)
    content = "dsse-envelope" if "dsseEnvelope" in bundle else "message-signature"
    annotations = {"dev.sigstore.bundle.content": content}
    if predicate_type:
        annotations["dev.sigstore.bundle.predicateType"] = predicate_type
    doc = {
        "schemaVersion": 2,
        "mediaType": mt.OCI_MANIFEST,
        "artifactType": BUNDLE,
        "config": _desc(empty),
        "layers": [_desc(layer)],
        "subject": subject.to_json(),
        "annotations": annotations,
    }
    return Image(json.dumps(doc).encode(), mt.OCI_MANIFEST, [empty, layer], artifact_type=BUNDLE)


async def attach(
    client: RegistryClient, repo: str, subject: Digest, referrer: Image, listed: Descriptor | None = None
) -> Digest:
    """Push ``referrer`` by digest; where the registry does not index its subject, add it to the
    ``sha256-<hex>`` referrers index as a client must (distribution-spec 1.1). ``listed`` puts
    another entry in that index instead (a referrer list that lies)."""
    digest = await push_image(client, repo, referrer)
    try:
        _, body = await client.fetch_manifest(repo, subject.tag_schema)
        entries = json.loads(body)["manifests"]
    except NotFoundError:
        entries = []
    entry = listed or Descriptor(mt.OCI_MANIFEST, digest, len(referrer.manifest), artifact_type=referrer.artifact_type)
    entries.append(entry.to_json())
    index = json.dumps({"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": entries}).encode()
    await client.push_manifest(repo, subject.tag_schema, index, mt.OCI_INDEX)
    return digest


# -- Notary Project JWS (signature-envelope-jws.md), from the specification ---------------------


def _name(**attrs: str) -> x509.Name:
    oids = {
        "C": NameOID.COUNTRY_NAME,
        "ST": NameOID.STATE_OR_PROVINCE_NAME,
        "O": NameOID.ORGANIZATION_NAME,
        "CN": NameOID.COMMON_NAME,
    }
    return x509.Name([x509.NameAttribute(oids[k], v) for k, v in attrs.items()])


@dataclass
class NotaryCA:
    """A root CA and a code-signing leaf, as ``notation cert generate-test`` makes (ES256 here)."""

    subject: dict[str, str] = field(default_factory=lambda: {"C": "US", "ST": "WA", "O": "Acme", "CN": "release"})
    key: Key = field(default_factory=Key)
    leaf_key: Key = field(default_factory=Key)
    leaf_days: tuple[int, int] = (-1, 30)
    eku: x509.ObjectIdentifier = ExtendedKeyUsageOID.CODE_SIGNING

    def __post_init__(self) -> None:
        now = dt.datetime.now(dt.UTC)
        root_name = _name(O="Acme", CN="Acme Root")
        self.root = (
            x509.CertificateBuilder().subject_name(root_name).issuer_name(root_name)
            .public_key(self.key.private.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=2)).not_valid_after(now + dt.timedelta(days=365))
            .add_extension(x509.BasicConstraints(ca=True, path_length=1), critical=True)
            .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(self.key.private.public_key()), critical=False)
            .sign(self.key.private, hashes.SHA256())
        )  # fmt: skip
        self.leaf = (
            x509.CertificateBuilder().subject_name(_name(**self.subject)).issuer_name(root_name)
            .public_key(self.leaf_key.private.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now + dt.timedelta(days=self.leaf_days[0]))
            .not_valid_after(now + dt.timedelta(days=self.leaf_days[1]))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([self.eku]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.private.public_key()), critical=False)
            .sign(self.key.private, hashes.SHA256())
        )  # fmt: skip

    @property
    def root_pem(self) -> str:
        return self.root.public_bytes(serialization.Encoding.PEM).decode()

    def jws(self, target: Descriptor, *, expiry: dt.datetime | None = None, tamper: bool = False) -> bytes:
        """A JWS envelope (JSON serialization) over ``{"targetArtifact": target}``."""
        now = dt.datetime.now(dt.UTC).replace(microsecond=0)
        protected: dict[str, Any] = {
            "alg": "ES256",
            "cty": "application/vnd.cncf.notary.payload.v1+json",
            "crit": ["io.cncf.notary.signingScheme"],
            "io.cncf.notary.signingScheme": "notary.x509",
            "io.cncf.notary.signingTime": now.isoformat().replace("+00:00", "Z"),
        }
        if expiry is not None:
            protected["crit"].append("io.cncf.notary.expiry")
            protected["io.cncf.notary.expiry"] = expiry.isoformat().replace("+00:00", "Z")
        target_json = {"mediaType": target.media_type, "digest": str(target.digest), "size": target.size}
        payload = json.dumps({"targetArtifact": target_json}).encode()
        p64, b64 = _b64url(json.dumps(protected).encode()), _b64url(payload)
        der = self.leaf_key.sign(f"{p64}.{b64}".encode())
        r, s = decode_dss_signature(der)
        signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")
        if tamper:
            b64 = _b64url(payload.replace(b"sha256", b"sha256 "))
        x5c = [base64.b64encode(c.public_bytes(serialization.Encoding.DER)).decode() for c in (self.leaf, self.root)]
        envelope = {"payload": b64, "protected": p64, "header": {"x5c": x5c}, "signature": _b64url(signature)}
        return json.dumps(envelope).encode()


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def notary_referrer(subject: Descriptor, envelope: bytes, ca: NotaryCA) -> Image:
    """The referrer notation pushes: artifactType Notary signature, empty config, one JWS layer,
    the chain's thumbprint annotation."""
    empty = Blob(mt.EMPTY_JSON, mt.OCI_EMPTY)
    layer = Blob(envelope, "application/jose+json")
    thumbs = [hashlib.sha256(c.public_bytes(serialization.Encoding.DER)).hexdigest() for c in (ca.leaf, ca.root)]
    doc = {
        "schemaVersion": 2,
        "mediaType": mt.OCI_MANIFEST,
        "artifactType": NOTARY,
        "config": _desc(empty),
        "layers": [_desc(layer)],
        "subject": subject.to_json(),
        "annotations": {"io.cncf.notary.x509chain.thumbprint#S256": json.dumps(thumbs)},
    }
    return Image(json.dumps(doc).encode(), mt.OCI_MANIFEST, [empty, layer], artifact_type=NOTARY)


def sigstore_verify(jobs: list[dict[str, Any]]) -> list[str]:
    """``@sigstore/verify``'s answer for each bundle (see sigstore_verify.js): ``ok`` or the error."""
    done = subprocess.run(
        ["node", str(ROOT / "tests" / "harness" / "sigstore_verify.js")],
        input=json.dumps(jobs).encode(),
        capture_output=True,
        cwd=ROOT,
        timeout=60,
        check=True,
    )
    answers: list[str] = json.loads(done.stdout)
    return answers
