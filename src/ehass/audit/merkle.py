"""The Merkle tree of RFC 9162 §2.1 over the chain's entry hashes, kept incrementally.

No I/O. A tree of n leaves is the sequence of perfect subtrees given by the binary digits
of n, largest first (its "frontier"); appending a leaf merges equal-sized subtrees like a
binary carry, so it costs O(log n) hashes and never re-reads the leaves before it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field

EMPTY_ROOT = hashlib.sha256(b"").digest()


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def tree_hash(leaves: Sequence[bytes]) -> bytes:
    """MTH(D[n]) exactly as RFC 9162 defines it, recursively: the reference for tests."""
    if not leaves:
        return EMPTY_ROOT
    if len(leaves) == 1:
        return leaf_hash(leaves[0])
    split = 1 << ((len(leaves) - 1).bit_length() - 1)  # the largest power of two < n
    return node_hash(tree_hash(leaves[:split]), tree_hash(leaves[split:]))


class CorruptFrontierError(ValueError):
    """The stored frontier cannot be the tree of that many leaves."""


@dataclass
class Frontier:
    size: int = 0
    roots: list[bytes] = field(default_factory=list)

    @classmethod
    def load(cls, size: int, roots: Sequence[str]) -> Frontier:
        if len(roots) != size.bit_count():
            raise CorruptFrontierError(f"{len(roots)} subtree roots for a tree of {size} leaves")
        return cls(size, [bytes.fromhex(root) for root in roots])

    def dump(self) -> list[str]:
        return [root.hex() for root in self.roots]

    def append(self, data: bytes) -> None:
        merged, size = leaf_hash(data), self.size
        # Each trailing 1 bit of the old size is a subtree as large as the one being built.
        while size & 1:
            merged = node_hash(self.roots.pop(), merged)
            size >>= 1
        self.roots.append(merged)
        self.size += 1

    def root(self) -> bytes:
        """MTH of the leaves so far: the subtrees folded right to left, as RFC 9162 splits."""
        if not self.roots:
            return EMPTY_ROOT
        root = self.roots[-1]
        for left in reversed(self.roots[:-1]):
            root = node_hash(left, root)
        return root
