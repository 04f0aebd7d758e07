"""The one seeded hash split: keys ordered by sha256, a prefix of that order held out.

Every train / held-out partition of the lab (the domain task's questions, the judge's HaluEval
groups, the guardrail classifiers' texts and the PII model's templates) is made here, so the rule
is written once: order the keys by ``sha256("[salt:]seed:key")`` (the same order on every machine
and Python version: no ``hash()`` randomisation) and hold out a prefix of that order. The prefix is
chosen one of two ways, and they differ in what an item's side depends on:

``n_heldout``  exactly that many keys: the set's size is fixed, but whether a key is held out
               depends on the other keys (a new key ahead of it in hash order pushes it out).
``fraction``   the keys whose hash falls in the first ``fraction`` of the hash space (its first 4
               bytes below ``fraction * 2**32``): about ``fraction`` of them, and a key's side
               depends on its own hash only, so adding or removing others never moves it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence


def hash_digest(key: str, seed: int, salt: str | None = None) -> bytes:
    """sha256 of ``"salt:seed:key"`` (``"seed:key"`` without a salt)."""
    text = f"{seed}:{key}" if salt is None else f"{salt}:{seed}:{key}"
    return hashlib.sha256(text.encode("utf-8")).digest()


def hash_order(keys: Sequence[str], seed: int, salt: str | None = None) -> list[int]:
    """Indices of ``keys`` in hash order (:func:`hash_digest`); equal keys keep their input order."""
    digests = [hash_digest(k, seed, salt) for k in keys]
    return sorted(range(len(keys)), key=digests.__getitem__)


def hash_split(keys: Sequence[str], seed: int, *, n_heldout: int | None = None, fraction: float | None = None,
               salt: str | None = None) -> tuple[list[int], list[int]]:
    """``(rest, heldout)``: indices of ``keys``, each list in hash order; give ``n_heldout`` or
    ``fraction`` (see the module docstring for how they differ).

    Raises
    ------
    ValueError
        Neither or both of ``n_heldout`` and ``fraction``, ``n_heldout`` outside ``[0, len(keys)]``
        or ``fraction`` outside ``(0, 1)``.
    """
    if (n_heldout is None) == (fraction is None):
        raise ValueError("hash_split: give exactly one of n_heldout and fraction")
    order = hash_order(keys, seed, salt)
    if fraction is not None:
        if not 0.0 < fraction < 1.0:
            raise ValueError(f"fraction must be in (0, 1), got {fraction}")
        cut = int(fraction * 2**32)
        k = sum(int.from_bytes(hash_digest(keys[i], seed, salt)[:4], "big") < cut for i in order)
    else:
        if not 0 <= n_heldout <= len(keys):  # type: ignore[operator]
            raise ValueError(f"n_heldout must be in [0, {len(keys)}], got {n_heldout}")
        k = int(n_heldout)  # type: ignore[arg-type]
    return order[k:], order[:k]
