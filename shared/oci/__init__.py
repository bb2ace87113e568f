"""Pure OCI values: references, digests, descriptors, media types, manifests. No I/O."""

from shared.oci.digest import Digest
from shared.oci.manifest import Descriptor, Index, Manifest, Platform, parse_manifest, successors
from shared.oci.reference import Reference, parse_reference, parse_registry

__all__ = [
    "Descriptor",
    "Digest",
    "Index",
    "Manifest",
    "Platform",
    "Reference",
    "parse_manifest",
    "parse_reference",
    "parse_registry",
    "successors",
]
