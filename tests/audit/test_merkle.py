"""The Merkle tree against RFC 9162 §2.1, by hand and against the published test vectors."""

from __future__ import annotations

import hashlib
import random

import pytest

from ehass.audit.merkle import EMPTY_ROOT, CorruptFrontierError, Frontier, tree_hash

# The leaf inputs and roots of the Certificate Transparency reference test vectors
# (RFC 6962 and RFC 9162 hash trees the same way).
LEAVES = [
    bytes.fromhex(h)
    for h in (
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    )
]
ROOTS = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]


def sha(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def leaf(data: bytes) -> bytes:
    return sha(b"\x00" + data)


def node(left: bytes, right: bytes) -> bytes:
    return sha(b"\x01" + left + right)


def by_hand(d: list[bytes]) -> list[bytes]:
    """MTH for sizes 1..8 written out split by split, as RFC 9162 §2.1.1 defines them."""
    h = [leaf(x) for x in d]
    n01, n23, n45, n67 = node(h[0], h[1]), node(h[2], h[3]), node(h[4], h[5]), node(h[6], h[7])
    return [
        h[0],
        n01,
        node(n01, h[2]),  # k = 2
        node(n01, n23),
        node(node(n01, n23), h[4]),  # k = 4
        node(node(n01, n23), n45),
        node(node(n01, n23), node(n45, h[6])),  # right part of 3: k = 2 again
        node(node(n01, n23), node(n45, n67)),
    ]


@pytest.mark.parametrize("size", range(1, 9))
def test_the_tree_of_each_size_matches_the_rfc(size):
    expected = by_hand(LEAVES)[size - 1]
    assert expected.hex() == ROOTS[size - 1]
    assert tree_hash(LEAVES[:size]) == expected
    frontier = Frontier()
    for data in LEAVES[:size]:
        frontier.append(data)
    assert frontier.root() == expected
    assert len(frontier.roots) == size.bit_count()  # one perfect subtree per binary digit


def test_the_empty_tree_is_the_hash_of_nothing():
    assert Frontier().root() == EMPTY_ROOT == tree_hash([]) == sha(b"")


def test_the_frontier_matches_the_definition_at_every_size_and_survives_storage():
    rng = random.Random(9162)
    leaves = [rng.randbytes(32) for _ in range(130)]
    frontier = Frontier()
    for size, data in enumerate(leaves, start=1):
        frontier = Frontier.load(frontier.size, frontier.dump())  # as the head stores it
        frontier.append(data)
        assert frontier.root() == tree_hash(leaves[:size]), size


def test_a_frontier_of_the_wrong_shape_is_refused():
    with pytest.raises(CorruptFrontierError):
        Frontier.load(3, ["00" * 32])  # 3 leaves are two perfect subtrees (2 + 1)
