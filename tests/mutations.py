"""Seeded random corruptions of file bytes, for the detectors' "junk only raises FormatError" tests."""

from __future__ import annotations

import random


def mutations(data: bytes, count: int, seed: int) -> list[bytes]:
    """Seeded random corruptions of ``data``: flipped bytes, cuts, insertions, overwritten runs."""
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        b = bytearray(data)
        for _ in range(rng.randint(1, 4)):
            at = rng.randrange(len(b)) if b else 0
            kind = rng.randrange(4)
            if kind == 0 and b:
                b[at] = rng.randrange(256)
            elif kind == 1:
                del b[at:]
            elif kind == 2:
                b.insert(at, rng.randrange(256))
            else:
                b[at : at + 8] = rng.randbytes(8)
        out.append(bytes(b))
    return out
