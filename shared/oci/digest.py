"""Content digests (OCI image-spec, descriptor.md "Digests").

``algorithm:encoded``. Ferry takes only digests it can verify: sha256 and sha512 (registered by
the image spec) and sha384 (which go-digest verifies too). The spec lets other algorithms that
match the grammar stand as values, but content pinned by a digest nobody checks is content
taken on trust: such a digest is refused with a message naming its algorithm, before anything
moves.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from shared.errors import InvalidReferenceError

_ALGORITHM = re.compile(r"[a-z0-9]+(?:[+._-][a-z0-9]+)*")
_ENCODED = re.compile(r"[a-zA-Z0-9=_-]+")
#: Registered algorithms and the exact form of their encoded part.
_REGISTERED = {
    "sha256": re.compile(r"[a-f0-9]{64}"),
    "sha384": re.compile(r"[a-f0-9]{96}"),
    "sha512": re.compile(r"[a-f0-9]{128}"),
}
_LENGTHS = {"sha256": 64, "sha384": 96, "sha512": 128}


@dataclass(frozen=True, slots=True)
class Digest:
    algorithm: str
    encoded: str

    @classmethod
    def parse(cls, text: str) -> Digest:
        algorithm, sep, encoded = text.partition(":")
        if not sep:
            raise InvalidReferenceError(text, "digest must be algorithm:hex")
        if not _ALGORITHM.fullmatch(algorithm):
            raise InvalidReferenceError(text, f"bad digest algorithm {algorithm!r}")
        exact = _REGISTERED.get(algorithm)
        if exact is None:
            if not _ENCODED.fullmatch(encoded):
                raise InvalidReferenceError(text, "bad digest encoding")
            raise InvalidReferenceError(
                text, f"digest algorithm {algorithm} cannot be verified: Ferry takes sha256, sha384 and sha512"
            )
        if not exact.fullmatch(encoded):
            want = _LENGTHS[algorithm]
            raise InvalidReferenceError(text, f"{algorithm} digest must be {want} lowercase hex characters")
        return cls(algorithm, encoded)

    @classmethod
    def of(cls, data: bytes, algorithm: str = "sha256") -> Digest:
        return cls(algorithm, hashlib.new(algorithm, data).hexdigest())

    def hasher(self) -> hashlib._Hash:
        return hashlib.new(self.algorithm)

    @property
    def tag_schema(self) -> str:
        """The referrers tag-schema tag for this digest (distribution-spec 1.1, "Referrers Tag Schema")."""
        return f"{self.algorithm}-{self.encoded}"[:128]

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.encoded}"
