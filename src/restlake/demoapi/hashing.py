"""Stateless 64-bit mixing: every "random" choice of the demo API is a pure function of its inputs.

A counter-based generator (splitmix64 finaliser) instead of ``random.Random`` because records,
updates and faults must be derivable from ``(seed, index)`` alone, in any order, in O(1).
"""

from __future__ import annotations

MASK64 = (1 << 64) - 1
_TWO_64 = float(1 << 64)


def mix64(x: int) -> int:
    """splitmix64 finaliser: a bijection on 64-bit ints with good avalanche."""
    x = (x + 0x9E3779B97F4A7C15) & MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & MASK64
    return x ^ (x >> 31)


def hash64(*parts: int) -> int:
    """Combine integers into one well-mixed 64-bit value; order matters."""
    h = 0x6A09E667F3BCC908
    for part in parts:
        h = mix64(h ^ (part & MASK64))
    return h


def unit_float(*parts: int) -> float:
    """A float in [0, 1) determined by ``parts``."""
    return hash64(*parts) / _TWO_64


def hash3(a: int, b: int, c: int) -> int:
    """``hash64(a, b, c)`` without the argument-tuple loop: this sits on the per-record hot path."""
    h = 0x6A09E667F3BCC908
    for part in (a, b, c):
        x = ((h ^ (part & MASK64)) + 0x9E3779B97F4A7C15) & MASK64
        x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
        x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & MASK64
        h = x ^ (x >> 31)
    return h
