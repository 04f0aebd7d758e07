"""lab.data.split: the one seeded hash split, against the rules it replaced and pinned on a small input.

The splits decide which items are train and which held out in every study; a change here moves
results, so the partitions are pinned (the pinned lists were checked equal to the three splitters it
replaced on the demo data: the domain task, the judge's HaluEval groups, the guardrail classifiers'
texts and the PII model's templates).
"""

from __future__ import annotations

import hashlib

import pytest

from lab.data.split import hash_order, hash_split

KEYS = [f"q{i}" for i in range(10)]


def test_partitions_are_pinned() -> None:
    assert hash_split(KEYS, 0, n_heldout=3) == ([0, 2, 9, 7, 8, 1, 3], [4, 6, 5])
    assert hash_split(KEYS, 0, fraction=0.3) == ([5, 0, 2, 9, 7, 8, 1, 3], [4, 6])
    assert hash_split(KEYS, 0, n_heldout=3, salt="split") == ([6, 2, 8, 9, 5, 4, 3], [1, 7, 0])
    assert hash_order(KEYS, 1, "shots") == [5, 1, 9, 0, 8, 2, 3, 4, 7, 6]


@pytest.mark.parametrize("seed", [0, 1, 7])
def test_same_partitions_as_the_rules_it_replaced(seed: int) -> None:
    keys = [f"text {i}" for i in range(200)] + ["text 3"]   # a duplicate keeps input order
    # sort-and-take-k (guardrail classifiers, domain task with the salt "split")
    for salt, prefix in ((None, f"{seed}:"), ("split", f"split:{seed}:")):
        order = sorted(range(len(keys)), key=lambda i: hashlib.sha256(f"{prefix}{keys[i]}".encode()).hexdigest())
        assert hash_order(keys, seed, salt) == order
        assert hash_split(keys, seed, n_heldout=50, salt=salt) == (order[50:], order[:50])
    # threshold on the first 4 bytes (judge groups): the same keys, whatever the others
    cut = int(0.3 * 2**32)
    inside = {i for i, k in enumerate(keys)
              if int.from_bytes(hashlib.sha256(f"{seed}:{k}".encode()).digest()[:4], "big") < cut}
    rest, held = hash_split(keys, seed, fraction=0.3)
    assert set(held) == inside and set(rest) == set(range(len(keys))) - inside
    assert set(hash_split(keys[:100], seed, fraction=0.3)[1]) == inside & set(range(100))


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        hash_split(KEYS, 0)
    with pytest.raises(ValueError, match="fraction must be in"):
        hash_split(KEYS, 0, fraction=1.0)
    with pytest.raises(ValueError, match="n_heldout must be in"):
        hash_split(KEYS, 0, n_heldout=11)
