"""The table the ingest benchmark sends, generated from a seed and encoded once into one blob.

Two shapes bracket real feeds. *Dense*: a handful of attribute sets, 500 /24s per UPDATE, the
best case for any receiver (one attribute decode per 500 routes). *Realistic*: 1-8 prefixes
per UPDATE (about 3 on average), each UPDATE its own attribute set with an AS path of 1-8 ASes
from a pool of a few thousand, varied origin, MED on some and communities on about half, the
shape a full Internet table has and the one that makes per-UPDATE costs show.

Encoding a million realistic routes takes seconds, so the blob of UPDATE messages is cached under
bench/results/ (gitignored); the sender just `sendall()`s it. The cache key includes a version
number: bump GENERATOR_VERSION whenever the generator changes what it produces.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from bench.ingest_common import RECEIVER_ASN, SENDER_ADDRESS, SENDER_ASN
from bgplab.bgp.wire.attributes import PathAttributes, as_sequence
from bgplab.bgp.wire.constants import MAX_MESSAGE_LEN, Origin
from bgplab.bgp.wire.update import IPV4_UNICAST, CodecContext
from bgplab.bgp.wire.update_encoder import pack_announcements

GENERATOR_VERSION = 1
WORKLOADS = ("dense", "realistic")
RESULTS = Path(__file__).resolve().parent / "results"
DENSE_PER_UPDATE = 500
DENSE_ATTRIBUTE_SETS = 4
ASN_POOL_SIZE = 3000

_CTX = CodecContext(four_octet_as=True, ebgp=True, families=frozenset({IPV4_UNICAST}))
# Unicast space only, and away from the benchmark link (192.0.2.0/24): FRR drops class D/E
# prefixes, and a route covering the next hop would make the run depend on resolution rules.
_FIRST_OCTETS = tuple(o for o in range(1, 224) if o not in (10, 127, 192))
_LENGTHS = (16, 17, 18, 19, 20, 21, 22, 23, 24)
_LENGTH_WEIGHTS = (1, 2, 3, 4, 6, 6, 10, 8, 60)  # roughly a full table's mix, /24 dominant
_PER_UPDATE = (1, 2, 3, 4, 5, 6, 7, 8)
_PER_UPDATE_WEIGHTS = (30, 22, 15, 10, 8, 6, 5, 4)  # mean about 3
_MASKS = tuple((0xFFFFFFFF << (32 - n)) & 0xFFFFFFFF for n in range(33))


@dataclass(frozen=True)
class Table:
    """A cached, encoded table: `path` holds `updates` UPDATE messages carrying `prefixes` routes."""

    workload: str
    prefixes: int
    updates: int
    nbytes: int
    path: Path

    def describe(self) -> str:
        return (f"{self.prefixes:,} prefixes, {self.workload} ({self.updates:,} UPDATEs, "
                f"{self.nbytes / 1e6:.1f} MB, {self.prefixes / self.updates:.1f} prefixes/UPDATE)")


def load_table(workload: str, prefixes: int, seed: int = 1, next_hop: str = SENDER_ADDRESS) -> Table:
    """The table for (workload, size, seed), from the cache or generated and cached now.

    `next_hop` does not touch the random stream: tables that differ only in it carry the same
    prefixes and attributes, which is what two peers of one customer AS announcing the same
    routes (bench.bestpath) send. Only a non-default next hop is part of the cache name.
    """
    if workload not in WORKLOADS:
        raise ValueError(f"workload must be one of {WORKLOADS}")
    via = "" if next_hop == SENDER_ADDRESS else f"-nh{next_hop}"
    stem = RESULTS / "tables" / f"ingest-{workload}-{prefixes}-seed{seed}{via}-v{GENERATOR_VERSION}"
    blob, meta = stem.with_suffix(".bgp"), stem.with_suffix(".json")
    if not (blob.exists() and meta.exists()):
        messages = list(_generate(workload, prefixes, random.Random(f"{workload}-{prefixes}-{seed}"), next_hop))
        stem.parent.mkdir(parents=True, exist_ok=True)
        tmp = blob.with_suffix(".tmp")
        tmp.write_bytes(b"".join(messages))
        tmp.replace(blob)
        meta.write_text(json.dumps({"prefixes": prefixes, "updates": len(messages)}))
    info = json.loads(meta.read_text())
    return Table(workload, info["prefixes"], info["updates"], blob.stat().st_size, blob)


def _generate(workload: str, n: int, rng: random.Random, next_hop: str) -> Iterator[bytes]:
    if workload == "dense":
        return _dense(n, rng, next_hop)
    return _realistic(n, rng, next_hop)


def _dense(n: int, rng: random.Random, next_hop: str) -> Iterator[bytes]:
    """Consecutive /24s from 1.0.0.0, 500 to an UPDATE, cycling through a few attribute sets."""
    pool = _asn_pool(rng)
    sets = [PathAttributes(origin=int(Origin.IGP), as_path=as_sequence(SENDER_ASN, *rng.sample(pool, 2)),
                           next_hop=next_hop) for _ in range(DENSE_ATTRIBUTE_SETS)]
    base = 1 << 24
    for index, start in enumerate(range(0, n, DENSE_PER_UPDATE)):
        keys = [((base + (i << 8)) << 8) | 24 for i in range(start, min(start + DENSE_PER_UPDATE, n))]
        yield from _pack(sets[index % len(sets)], keys)


def _realistic(n: int, rng: random.Random, next_hop: str) -> Iterator[bytes]:
    """Unique prefixes of mixed lengths, a few to an UPDATE, each UPDATE its own attributes."""
    pool = _asn_pool(rng)
    keys = _unique_prefixes(n, rng)
    start = 0
    while start < n:
        count = rng.choices(_PER_UPDATE, _PER_UPDATE_WEIGHTS)[0]
        yield from _pack(_random_attributes(rng, pool, next_hop), keys[start : start + count])
        start += count


def _pack(attrs: PathAttributes, keys: list[int]) -> list[bytes]:
    messages = pack_announcements(IPV4_UNICAST, attrs, keys, _CTX, MAX_MESSAGE_LEN)
    assert len(messages) == 1, "a benchmark UPDATE must fit one message"
    return messages


def _asn_pool(rng: random.Random) -> list[int]:
    """Public 2- and 4-octet ASNs, never the sender's or the receiver's (a loop would drop routes)."""
    candidates = [*range(1, 23456), *range(23457, 64496), *range(131072, 400000)]
    return [a for a in rng.sample(candidates, ASN_POOL_SIZE + 2) if a not in (SENDER_ASN, RECEIVER_ASN)][
        :ASN_POOL_SIZE]


def _unique_prefixes(n: int, rng: random.Random) -> list[int]:
    seen: set[int] = set()
    out: list[int] = []
    for length in rng.choices(_LENGTHS, _LENGTH_WEIGHTS, k=n):
        while True:
            network = ((rng.choice(_FIRST_OCTETS) << 24) | rng.getrandbits(24)) & _MASKS[length]
            key = (network << 8) | length
            if key not in seen:
                break
        seen.add(key)
        out.append(key)
    return out


def _random_attributes(rng: random.Random, pool: list[int], next_hop: str) -> PathAttributes:
    path = (SENDER_ASN, *rng.sample(pool, rng.randint(0, 7)))
    origin = rng.choices((int(Origin.IGP), int(Origin.EGP), int(Origin.INCOMPLETE)), (80, 5, 15))[0]
    med = rng.randrange(1000) if rng.random() < 0.3 else None
    communities: tuple[int, ...] = ()
    if rng.random() < 0.5:
        communities = tuple(sorted({(rng.randrange(1, 65000) << 16) | rng.randrange(65536)
                                    for _ in range(rng.randint(1, 3))}))
    return PathAttributes(origin=origin, as_path=as_sequence(*path), next_hop=next_hop, med=med,
                          communities=communities)
