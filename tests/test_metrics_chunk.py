import numpy as np
import pytest

from lab.metrics.chunk import Located, merge, precision_omega, retrieval_scores, subtract


def L(s, e, d="a"):
    return Located(d, s, e)


def test_merge_and_subtract():
    assert merge([(5, 8), (0, 3), (3, 4), (7, 10)]) == [(0, 4), (5, 10)]
    assert subtract([(0, 10)], (3, 5)) == [(0, 3), (5, 10)]
    assert subtract([(0, 10)], (10, 12)) == [(0, 10)]  # touching only: Chroma keeps it whole
    assert subtract([(2, 4)], (0, 10)) == []


def test_scores_hand_computed():
    # reference [10, 30); chunks [0, 20) and [25, 45): covered 10 + 5 = 15 chars
    s = retrieval_scores([L(10, 30)], [L(0, 20), L(25, 45)])
    assert s["recall"] == pytest.approx(15 / 20)
    assert s["precision"] == pytest.approx(15 / 40)
    assert s["iou"] == pytest.approx(15 / (40 + 5))


def test_other_document_chunks_only_dilute_precision():
    s = retrieval_scores([L(0, 10)], [L(0, 10, "b"), L(0, 10)])
    assert s["recall"] == 1.0 and s["precision"] == 0.5 and s["iou"] == 0.5


def test_overlapping_chunks_count_with_multiplicity_in_precision():
    s = retrieval_scores([L(0, 10)], [L(0, 10), L(0, 10)])
    assert s["recall"] == 1.0 and s["precision"] == 0.5


def test_two_references_nothing_found():
    s = retrieval_scores([L(0, 10), L(50, 60)], [L(20, 40)])
    assert s == {"recall": 0.0, "precision": 0.0, "iou": 0.0}


def test_precision_omega_and_min_k():
    chunks = {"a": np.array([[0, 10], [10, 20], [20, 30], [30, 40]])}
    # reference [12, 25) touches chunks 2 and 3; chunk 1 ends at 10 < 12
    omega, k = precision_omega([L(12, 25)], chunks)
    assert k == 2 and omega == pytest.approx(13 / 20)
    # a reference ending exactly where a chunk starts also touches it (Chroma's <=)
    omega, k = precision_omega([L(5, 10)], chunks)
    assert k == 2 and omega == pytest.approx(5 / 20)


def test_reference_in_unchunked_document():
    omega, k = precision_omega([L(0, 5, "zzz")], {"a": np.array([[0, 10]])})
    assert (omega, k) == (0.0, 0)


def test_bad_ranges():
    with pytest.raises(ValueError):
        retrieval_scores([], [L(0, 1)])
    with pytest.raises(ValueError):
        retrieval_scores([L(5, 1)], [])


# --- against an independent definition: sets of character positions (hypothesis) -----------------

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_range = st.tuples(st.integers(0, 60), st.integers(1, 25)).map(lambda t: (t[0], t[0] + t[1]))


@settings(max_examples=300, deadline=None)
@given(refs=st.lists(_range, min_size=1, max_size=3), chunks=st.lists(_range, max_size=6),
       other=st.lists(_range, max_size=2))
def test_scores_equal_character_set_definition(refs, chunks, other):
    retrieved = [L(s, e) for s, e in chunks] + [L(s, e, "b") for s, e in other]
    got = retrieval_scores([L(s, e) for s, e in refs], retrieved)
    ref_chars = set().union(*(range(s, e) for s, e in refs))
    hit = ref_chars & set().union(*(range(s, e) for s, e in chunks)) if chunks else set()
    ref_len = sum(e - s for s, e in refs)                      # references counted with multiplicity
    # as Chroma: each reference's uncovered part counts, overlapping references with multiplicity
    uncovered = sum(len(set(range(s, e)) - hit) for s, e in refs)
    retrieved_len = sum(e - s for s, e in chunks + other)
    assert got["recall"] == pytest.approx(len(hit) / ref_len)
    assert got["precision"] == pytest.approx(len(hit) / retrieved_len if retrieved_len else 0.0)
    denom = retrieved_len + uncovered
    assert got["iou"] == pytest.approx(len(hit) / denom if denom else 0.0)
