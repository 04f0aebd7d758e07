"""Properties every chunker keeps on arbitrary text (hypothesis), and equality with LangChain on random text.

For every chunker (semantic/cluster/llm with lab.embed.HashedBagOfWords and the fake generator of
lab.chunking.fakes):
* each chunk is an exact slice: ``text[c.start:c.end] == c.text``, non-empty, numbered in order;
* chunks are in document order (``start`` and ``end`` never decrease);
* together they cover every non-whitespace character (whitespace stripped at chunk edges may be
  left out: that is the documented convention);
* no chunk contains U+FFFD unless the document does.
"""

from __future__ import annotations

import itertools
import os
from functools import lru_cache

import pytest
from conftest import DATA
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from lab.chunking import Chunk, make_chunker
from lab.chunking.fakes import EveryNthSplit
from lab.embed import HashedBagOfWords
from lab.tokens import get_encoding

SEPARATORS = ["\n\n", "\n", ".", "?", "!", " ", ""]
FRAGMENTS = [
    "a", "b", "word", "Word", " ", "  ", "\n", "\n\n", "\t", "\r\n", ".", "?", "!", "...", "Dr.", "U.S.",
    "0.5", "😀", "🦛", "👩\u200d👩\u200d👧", "🇯🇵", "日本語", "。", "𠮷", "é", "ß", "—", "“quote”",
    "\u3000", "\u00a0", "\u2028", "<|endoftext|>", "\ufffd",
]
PROFILE = settings(max_examples=int(os.environ.get("LAB_HYPOTHESIS_EXAMPLES", "300")), deadline=None,
                   suppress_health_check=[HealthCheck.too_slow])


@lru_cache(maxsize=1)
def paragraphs() -> list[str]:
    out: list[str] = []
    for path in sorted((DATA / "chroma_chunking" / "corpora").glob("*.md")):
        text = path.read_text(encoding="utf-8")
        out.extend(p for p in text.split("\n\n")[:400] if p.strip() and len(p) < 3000)
    for path in sorted((DATA / "cuad_sample" / "contracts").glob("*.txt"))[:3]:
        text = path.read_text(encoding="utf-8")
        out.extend(p for p in text.split("\n\n")[:100] if p.strip() and len(p) < 3000)
    if not out:
        pytest.fail("data/ is missing: run `bash scripts/setup.sh` (it runs `dvc pull`) before the tests")
    return out


unicode_text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=300)
fragment_text = st.lists(st.sampled_from(FRAGMENTS), max_size=80).map("".join)
real_text = st.lists(st.integers(min_value=0, max_value=10**9), min_size=1, max_size=3).map(
    lambda picks: "\n\n".join(paragraphs()[i % len(paragraphs())] for i in picks))
mixed_text = st.tuples(real_text, fragment_text).map(lambda t: t[1] + t[0] + t[1][::-1])
any_text = st.one_of(unicode_text, fragment_text, real_text, mixed_text)


def size_overlap(max_size: int = 40) -> st.SearchStrategy[tuple[int, int]]:
    return st.integers(1, max_size).flatmap(lambda s: st.tuples(st.just(s), st.integers(0, s - 1)))


@st.composite
def chunker_configs(draw) -> tuple[str, dict]:
    name = draw(st.sampled_from(["token", "recursive", "sentence", "semantic", "cluster", "llm"]))
    if name in ("token", "recursive"):
        size, overlap = draw(size_overlap())
        return name, {"size": size, "overlap": overlap}
    if name == "sentence":
        return name, {"max_tokens": draw(st.integers(1, 60)), "overlap_sentences": draw(st.integers(0, 3))}
    if name == "semantic":
        return name, {"embed": HashedBagOfWords(32), "buffer_size": draw(st.integers(0, 2)),
                      "breakpoint_percentile": draw(st.sampled_from([50.0, 80.0, 95.0, 100.0])),
                      "max_tokens": draw(st.one_of(st.none(), st.integers(1, 60)))}
    if name == "cluster":
        piece = draw(st.integers(1, 20))
        return name, {"embed": HashedBagOfWords(32), "piece_size": piece,
                      "size": piece * draw(st.integers(1, 6))}
    return name, {"generate": EveryNthSplit(draw(st.integers(1, 5)), garbage_every=draw(st.integers(0, 3))),
                  "piece_size": draw(st.integers(1, 20)), "window_tokens": draw(st.integers(1, 100))}


def check_invariants(text: str, chunks: list[Chunk], doc_id: str) -> None:
    if not text.strip():
        assert chunks == []
        return
    assert chunks, "a document with text gave no chunk"
    covered = [0] * (len(text) + 1)
    for i, c in enumerate(chunks):
        assert (c.doc_id, c.index) == (doc_id, i)
        assert 0 <= c.start < c.end <= len(text)
        assert text[c.start:c.end] == c.text
        assert "\ufffd" not in c.text or "\ufffd" in text
        covered[c.start] += 1
        covered[c.end] -= 1
    for a, b in itertools.pairwise(chunks):
        assert a.start <= b.start and a.end <= b.end, (a, b)
    depth = 0
    for i, ch in enumerate(text):
        depth += covered[i]
        assert depth > 0 or ch.isspace(), f"character {i} ({ch!r}) is in no chunk"


@PROFILE
@given(config=chunker_configs(), text=any_text)
def test_every_chunker_maps_back_in_order_and_covers(config: tuple[str, dict], text: str) -> None:
    name, kwargs = config
    chunks = make_chunker(name, **kwargs).chunk(text, doc_id="doc")
    check_invariants(text, chunks, "doc")


@pytest.mark.parametrize("name", ["token", "recursive", "sentence", "semantic", "cluster", "llm"])
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=st.one_of(unicode_text, mixed_text))
def test_each_chunker_with_default_sizes(name: str, text: str) -> None:
    kwargs = {"semantic": {"embed": HashedBagOfWords(32)}, "cluster": {"embed": HashedBagOfWords(32)},
              "llm": {"generate": EveryNthSplit(2)}}.get(name, {})
    check_invariants(text, make_chunker(name, **kwargs).chunk(text, doc_id="d"), "d")


@PROFILE
@given(so=size_overlap(30), text=st.one_of(unicode_text, fragment_text, real_text))
def test_recursive_equals_langchain_on_random_text(so: tuple[int, int], text: str) -> None:
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    enc = get_encoding()
    size, overlap = so
    lc = RecursiveCharacterTextSplitter(chunk_size=size, chunk_overlap=overlap, separators=SEPARATORS,
                                        length_function=lambda s: len(enc.encode_ordinary(s)))
    chunks = make_chunker("recursive", size=size, overlap=overlap).chunk(text)
    expected = lc.split_text(text) if text.strip() else []
    assert [c.text for c in chunks] == expected


@PROFILE
@given(so=size_overlap(30), text=st.one_of(unicode_text, fragment_text, real_text))
def test_token_equals_langchain_where_no_character_is_cut(so: tuple[int, int], text: str) -> None:
    from langchain_text_splitters import TokenTextSplitter

    assume("<|" not in text and "\ufffd" not in text and text.strip())  # LangChain raises on special tokens
    size, overlap = so
    lc = TokenTextSplitter(encoding_name=get_encoding().name, chunk_size=size, chunk_overlap=overlap)
    windows = lc.split_text(text)
    chunks = make_chunker("token", size=size, overlap=overlap).chunk(text)
    assert len(chunks) == len(windows)
    for window, c in zip(windows, chunks, strict=True):
        if "\ufffd" in window:  # a cut character: ours holds it whole, LangChain's has U+FFFD
            assert len(c.text) >= len(window.strip("\ufffd"))
            assert window.strip("\ufffd") in c.text
        else:
            assert c.text == window


@pytest.mark.parametrize("name,kwargs", [
    ("token", {"size": 250, "overlap": 125}),
    ("recursive", {"size": 250, "overlap": 125}),
    ("sentence", {"max_tokens": 250, "overlap_sentences": 1}),
    ("semantic", {"max_tokens": 250}),
    ("cluster", {"size": 250}),
    ("llm", {}),
])
def test_every_chunker_on_the_chroma_corpora(name: str, kwargs: dict) -> None:
    kwargs = dict(kwargs)
    if name in ("semantic", "cluster"):
        kwargs["embed"] = HashedBagOfWords(256)
    if name == "llm":
        kwargs["generate"] = EveryNthSplit(4, garbage_every=5)
    chunker = make_chunker(name, **kwargs)
    for path in sorted((DATA / "chroma_chunking" / "corpora").glob("*.md")):
        text = path.read_text(encoding="utf-8")
        check_invariants(text, chunker.chunk(text, doc_id=path.stem), path.stem)
