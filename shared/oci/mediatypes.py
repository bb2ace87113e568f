"""Media types Ferry knows (OCI image-spec media-types.md; Docker manifest-v2-2.md)."""

from __future__ import annotations

from typing import Final

DOCKER_MANIFEST: Final = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST: Final = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG: Final = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER: Final = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_FOREIGN_LAYER: Final = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
DOCKER_PLUGIN_CONFIG: Final = "application/vnd.docker.plugin.v1+json"
DOCKER_SCHEMA1: Final = "application/vnd.docker.distribution.manifest.v1+json"
DOCKER_SCHEMA1_SIGNED: Final = "application/vnd.docker.distribution.manifest.v1+prettyjws"

OCI_MANIFEST: Final = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX: Final = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG: Final = "application/vnd.oci.image.config.v1+json"
OCI_LAYER: Final = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP: Final = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_ZSTD: Final = "application/vnd.oci.image.layer.v1.tar+zstd"
OCI_EMPTY: Final = "application/vnd.oci.empty.v1+json"
OCI_NONDISTRIBUTABLE: Final = frozenset(
    {
        "application/vnd.oci.image.layer.nondistributable.v1.tar",
        "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
        "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
    }
)

HELM_CONFIG: Final = "application/vnd.cncf.helm.config.v1+json"
HELM_CHART: Final = "application/vnd.cncf.helm.chart.content.v1.tar+gzip"
HELM_PROVENANCE: Final = "application/vnd.cncf.helm.chart.provenance.v1.prov"

#: The empty descriptor's content, `{}` (image-spec manifest.md "Guidance for an Empty Descriptor").
EMPTY_JSON: Final = b"{}"

INDEXES: Final = frozenset({OCI_INDEX, DOCKER_MANIFEST_LIST})
MANIFESTS: Final = frozenset({OCI_MANIFEST, DOCKER_MANIFEST})
SCHEMA1: Final = frozenset({DOCKER_SCHEMA1, DOCKER_SCHEMA1_SIGNED, "application/json"})
#: Layers that are never pushed: registries fetch them from their descriptor's ``urls``.
FOREIGN_LAYERS: Final = OCI_NONDISTRIBUTABLE | {DOCKER_FOREIGN_LAYER}

#: What Ferry asks for on a manifest GET or HEAD. Listing the v2 and OCI types keeps old
#: registries from rewriting the manifest to schema 1 on the fly (manifest-v2-2.md, "Backward
#: compatibility"); schema 1 is listed last so that it is recognised and refused with a clear message.
MANIFEST_ACCEPT: Final = ", ".join(
    (OCI_INDEX, OCI_MANIFEST, DOCKER_MANIFEST_LIST, DOCKER_MANIFEST, DOCKER_SCHEMA1_SIGNED, DOCKER_SCHEMA1)
)


def is_index(media_type: str) -> bool:
    return media_type in INDEXES


def is_manifest(media_type: str) -> bool:
    return media_type in INDEXES or media_type in MANIFESTS


def is_schema1(media_type: str) -> bool:
    return media_type in (DOCKER_SCHEMA1, DOCKER_SCHEMA1_SIGNED)
