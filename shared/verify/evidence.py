"""Where signatures are found, read as data an attacker may have pushed: every read through
:class:`RegistryClient` (bounded by the exchange layer: manifests at most 4 MiB, each signature
blob at most :data:`MAX_SIGNATURE_BYTES`, its digest and size checked), at most
:data:`MAX_REFERRERS` referrers and :data:`MAX_LAYERS` ``.sig`` layers looked at, and only in
the image's own repository. A referrer whose own manifest names another subject, or another
artifact type than the list said, never counts (the list lies)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from shared.errors import ContentIntegrityError, ManifestError, NotFoundError
from shared.oci.digest import Digest
from shared.oci.manifest import Descriptor
from shared.registry.client import RegistryClient
from shared.strict import loads_bounded
from shared.verify import bundle, cosign, notary
from shared.verify.findings import BUNDLE, COSIGN, NOTARY, Unusable

MAX_REFERRERS = 32
MAX_LAYERS = 16
MAX_SIGNATURE_BYTES = 256 * 1024
_KINDS = {bundle.MEDIA_TYPE: BUNDLE, notary.ARTIFACT_TYPE: NOTARY}


@dataclass
class Evidence:
    """A signature manifest in the source repository, read and checked for shape."""

    kind: str
    manifest: Descriptor
    data: bytes
    #: cosign: the ``sha256-<hex>.sig`` tag it is found (and copied) under; referrers: None.
    tag: str | None
    #: Each signature layer: its annotations and its bytes.
    layers: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    #: The digest it signs (the image, or one platform of it).
    subject: Digest | None = None


@dataclass
class Gathered:
    evidence: list[Evidence] = field(default_factory=list)
    #: Why a candidate proved nothing before any key was tried.
    rejected: list[str] = field(default_factory=list)


async def read_blob(client: RegistryClient, repository: str, desc: Descriptor) -> bytes:
    if desc.size > MAX_SIGNATURE_BYTES:
        raise Unusable(f"signature blob {desc.digest} is {desc.size} bytes, over {MAX_SIGNATURE_BYTES}")
    chunks = [chunk async for chunk in client.fetch_blob(repository, desc)]
    return b"".join(chunks)


def _layers(doc: dict[str, Any]) -> list[Descriptor]:
    raw = doc.get("layers")
    if not isinstance(raw, list):
        raise Unusable("signature manifest has no layers")
    try:
        return [Descriptor.from_json(item, "layer") for item in raw[:MAX_LAYERS]]
    except ManifestError as exc:
        raise Unusable(f"signature manifest: {exc}") from None


async def cosign_signatures(client: RegistryClient, repository: str, subject: Digest) -> Evidence | None:
    """The ``sha256-<hex>.sig`` manifest's simple-signing layers, or None without the tag."""
    tag = cosign.tag_for(subject)
    try:
        desc, data = await client.fetch_manifest(repository, tag)
    except NotFoundError:
        return None
    doc = loads_bounded(data)
    found = Evidence(COSIGN, desc, data, tag)
    for layer in _layers(doc if isinstance(doc, dict) else {}):
        if layer.media_type == cosign.SIMPLE_SIGNING:
            found.layers.append((layer.annotations, await read_blob(client, repository, layer)))
    return found


async def referrer(client: RegistryClient, repository: str, listed: Descriptor, subject: Digest) -> Evidence:
    """One referrer the list names, fetched by digest and checked against what the list said."""
    kind = _KINDS[listed.artifact_type or ""]
    desc, data = await client.fetch_manifest(repository, str(listed.digest), expected=listed.digest)
    doc = loads_bounded(data)
    if not isinstance(doc, dict):
        raise Unusable("referrer is not a manifest")
    named = doc.get("subject")
    if not isinstance(named, dict) or named.get("digest") != str(subject):
        raise Unusable(f"referrer {listed.digest} names another subject (the referrer list lies)")
    config = doc.get("config")
    artifact_type = doc.get("artifactType") or (config.get("mediaType") if isinstance(config, dict) else None)
    if artifact_type != listed.artifact_type:
        raise Unusable(f"referrer {listed.digest} is not the artifact type the list said (the referrer list lies)")
    wanted = bundle.MEDIA_TYPES if kind == BUNDLE else {notary.JWS}
    layers = [layer for layer in _layers(doc) if layer.media_type in wanted]
    if len(layers) != 1:
        raise Unusable(f"referrer {listed.digest} has no single {kind} layer")
    found = Evidence(kind, desc, data, None)
    found.layers.append((layers[0].annotations, await read_blob(client, repository, layers[0])))
    return found


async def gather(client: RegistryClient, repository: str, subject: Digest) -> Gathered:
    """Every signature manifest attached to ``subject`` in ``repository``: the cosign tag, and
    the referrers (the API, or the tag schema where the registry lacks it)."""
    sig, listed = await asyncio.gather(
        _safely(cosign_signatures(client, repository, subject)), client.referrers(repository, subject)
    )
    out = Gathered()
    candidates = [d for d in listed if d.artifact_type in _KINDS][:MAX_REFERRERS]
    read = await asyncio.gather(*(_safely(referrer(client, repository, d, subject)) for d in candidates))
    for item in [sig, *read]:
        if item is None:
            continue
        if isinstance(item, Evidence):
            item.subject = subject
            out.evidence.append(item)
        else:
            out.rejected.append(item)
    return out


async def _safely(pending: Any) -> Evidence | str | None:
    """The evidence, or why it proved nothing: a manifest or blob that is missing, malformed or
    not what its digest says is the attacker's problem, not the job's (a registry that does not
    answer still fails the job, to be retried)."""
    try:
        found: Evidence | None = await pending
        return found
    except Unusable as exc:
        return str(exc)
    except (NotFoundError, ManifestError, ContentIntegrityError) as exc:
        return f"signature manifest unreadable: {exc}"
