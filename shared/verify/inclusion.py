"""A transparency log's inclusion proof, offline (RFC 9162 section 2.1.3.2, as Rekor and
sigstore-python check it): the entry's leaf hash ``SHA-256(0x00 || body)`` and the proof's
hashes give the root hash, which the checkpoint (a signed note: origin, tree size, root hash)
signed by the log's key names. proto3 JSON leaves out a ``logIndex`` of 0 and empty ``hashes``:
both read as absent."""

from __future__ import annotations

import base64
import binascii
import hashlib
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from shared.verify.findings import Unusable, b64

_MAX_HASHES = 64


def _children(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def root_from(leaf: bytes, index: int, size: int, path: list[bytes]) -> bytes:
    """The root hash ``path`` leads to from the leaf at ``index`` of a tree of ``size``."""
    if not 0 <= index < size:
        raise Unusable("inclusion proof's index is outside its tree")
    inner = (index ^ (size - 1)).bit_length()
    border = bin(index >> inner).count("1")
    if len(path) != inner + border:
        raise Unusable("inclusion proof has the wrong number of hashes")
    node = leaf
    for i, sibling in enumerate(path[:inner]):
        node = _children(node, sibling) if (index >> i) & 1 == 0 else _children(sibling, node)
    for sibling in path[inner:]:
        node = _children(sibling, node)
    return node


def _whole(value: Any, what: str) -> int:
    if value is None:
        return 0
    if isinstance(value, str) and value.isdigit():
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    raise Unusable(f"inclusion proof's {what} is not a whole number")


def _checkpoint(envelope: Any, size: int, root: bytes, key: ec.EllipticCurvePublicKey) -> None:
    """The signed note names this tree size and root, and one of its signatures is the log's."""
    if not isinstance(envelope, str) or "\n\n" not in envelope:
        raise Unusable("inclusion proof has no checkpoint")
    note, _, signatures = envelope.partition("\n\n")
    lines = note.split("\n")
    if len(lines) < 3 or lines[1] != str(size) or lines[2] != base64.b64encode(root).decode():
        raise Unusable("checkpoint names another tree than the inclusion proof")
    for line in signatures.split("\n")[:8]:
        parts = line.split(" ")
        if len(parts) != 3 or parts[0] != "\u2014":
            continue
        try:
            raw = base64.b64decode(parts[2], validate=True)
            key.verify(raw[4:], (note + "\n").encode(), ec.ECDSA(hashes.SHA256()))
            return
        except (binascii.Error, ValueError, InvalidSignature):
            continue
    raise Unusable("checkpoint is not signed by the log")


def check(proof: Any, body: bytes, key: ec.EllipticCurvePublicKey) -> None:
    """``proof`` (a bundle's ``inclusionProof``) includes ``body`` in a tree the log signed."""
    if not isinstance(proof, dict):
        raise Unusable("inclusion proof is not an object")
    size = _whole(proof.get("treeSize"), "treeSize")
    raw = proof.get("hashes") or []
    if not isinstance(raw, list) or len(raw) > _MAX_HASHES:
        raise Unusable("inclusion proof's hashes are not a short list")
    path = [b64(h, "inclusion proof hash") for h in raw]
    root = root_from(hashlib.sha256(b"\x00" + body).digest(), _whole(proof.get("logIndex"), "logIndex"), size, path)
    if root != b64(proof.get("rootHash"), "inclusion proof rootHash"):
        raise Unusable("inclusion proof does not lead to its root hash")
    checkpoint = proof.get("checkpoint")
    _checkpoint(checkpoint.get("envelope") if isinstance(checkpoint, dict) else None, size, root, key)
