"""Content digests (OCI image-spec, descriptor.md "Digests").

``algorithm:encoded``. sha256 and sha512 are registered and verifiable; other algorithms that
match the grammar are accepted as values, as the spec asks, but cannot be verified.
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
    "sha512": re.compile(r"[a-f0-9]{128}"),
}


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
        if exact is not None:
            if not exact.fullmatch(encoded):
                want = 64 if algorithm == "sha256" else 128
                raise InvalidReferenceError(text, f"{algorithm} digest must be {want} lowercase hex characters")
        elif not _ENCODED.fullmatch(encoded):
            raise InvalidReferenceError(text, "bad digest encoding")
        return cls(algorithm, encoded)

    @classmethod
    def of(cls, data: bytes, algorithm: str = "sha256") -> Digest:
        return cls(algorithm, hashlib.new(algorithm, data).hexdigest())

    @property
    def verifiable(self) -> bool:
        return self.algorithm in _REGISTERED

    def hasher(self) -> hashlib._Hash:
        if not self.verifiable:
            raise InvalidReferenceError(str(self), f"cannot verify {self.algorithm} digests")
        return hashlib.new(self.algorithm)

    @property
    def tag_schema(self) -> str:
        """The referrers tag-schema tag for this digest (distribution-spec 1.1, "Referrers Tag Schema")."""
        return f"{self.algorithm}-{self.encoded}"[:128]

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.encoded}"
