"""lab.chunking: registry, parameter errors, exact offsets, and equality with LangChain on real corpora."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
from conftest import require_data

from lab.chunking import CHUNKERS, Chunk, Chunker, make_chunker
from lab.chunking.cluster import optimal_segmentation
from lab.chunking.fakes import EveryNthSplit
from lab.chunking.llm import parse_split_after
from lab.embed import HashedBagOfWords
from lab.errors import ConfigError, DataError, LabError, RegistryError
from lab.tokens import get_encoding

SEPARATORS = ["\n\n", "\n", ".", "?", "!", " ", ""]
EMBED = HashedBagOfWords(64)


def corpus(name: str) -> str:
    return (require_data() / "chroma_chunking" / "corpora" / name).read_text(encoding="utf-8")


def contract(prefix: str) -> str:
    folder = require_data() / "cuad_sample" / "contracts"
    (path,) = [p for p in folder.glob("*.txt") if p.name.startswith(prefix)]
    return path.read_text(encoding="utf-8")


def build(name: str, **kwargs) -> Chunker:
    """Every chunker, with the injected fakes where one is needed."""
    if name in ("semantic", "cluster"):
        kwargs.setdefault("embed", EMBED)
    if name == "llm":
        kwargs.setdefault("generate", EveryNthSplit(3))
    return make_chunker(name, **kwargs)


def assert_exact(text: str, chunks: list[Chunk], doc_id: str = "") -> None:
    for i, c in enumerate(chunks):
        assert c.index == i and c.doc_id == doc_id
        assert text[c.start:c.end] == c.text, (c.start, c.end)
        assert c.text and "\ufffd" not in c.text


def n_tokens(text: str) -> int:
    return len(get_encoding().encode_ordinary(text))


def lc_recursive(size: int, overlap: int):
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    return RecursiveCharacterTextSplitter(chunk_size=size, chunk_overlap=overlap, separators=SEPARATORS,
                                          length_function=n_tokens)


def lc_token(size: int, overlap: int):
    from langchain_text_splitters import TokenTextSplitter

    # TokenTextSplitter calls tiktoken.get_encoding(name): the offline twin is registered by name.
    return TokenTextSplitter(encoding_name=get_encoding().name, chunk_size=size, chunk_overlap=overlap)


# --------------------------------------------------------------------------- registry and API


def test_registry_lists_every_chunker_and_unknown_name_lists_them() -> None:
    assert {"token", "recursive", "sentence", "semantic", "cluster", "llm"} <= set(CHUNKERS.names())
    with pytest.raises(RegistryError) as err:
        make_chunker("paragraphs")
    msg = str(err.value)
    assert "Unknown chunker 'paragraphs'" in msg
    assert all(name in msg for name in ("token", "recursive", "sentence", "semantic", "cluster", "llm"))


def test_unknown_kwarg_names_the_chunker_and_what_it_accepts() -> None:
    with pytest.raises(ConfigError) as err:
        make_chunker("token", size=100, chunk_overlap=10)
    msg = str(err.value)
    assert "'token'" in msg and "chunk_overlap" in msg
    assert "size" in msg and "overlap" in msg and "encoding" in msg


@pytest.mark.parametrize("name", ["token", "recursive"])
@pytest.mark.parametrize("size,overlap", [(100, 100), (100, 150)])
def test_overlap_not_below_size_is_an_error_naming_both(name: str, size: int, overlap: int) -> None:
    with pytest.raises(ConfigError) as err:
        make_chunker(name, size=size, overlap=overlap)
    assert f"overlap={overlap}" in str(err.value) and f"size={size}" in str(err.value)
    assert isinstance(err.value, ValueError)


@pytest.mark.parametrize("name,key", [("token", "size"), ("recursive", "size"), ("sentence", "max_tokens"),
                                      ("cluster", "size"), ("cluster", "piece_size"),
                                      ("llm", "piece_size"), ("semantic", "max_tokens")])
@pytest.mark.parametrize("bad", [0, -5, 2.5, True])
def test_size_must_be_a_positive_integer(name: str, key: str, bad) -> None:
    with pytest.raises(ConfigError, match=key):
        build(name, **{key: bad})


def test_other_parameter_errors() -> None:
    with pytest.raises(ConfigError, match="overlap"):
        make_chunker("token", size=10, overlap=-1)
    with pytest.raises(ConfigError, match="overlap_sentences"):
        make_chunker("sentence", overlap_sentences=-1)
    with pytest.raises(ConfigError, match="piece_size=100 must not exceed size=50"):
        build("cluster", size=50, piece_size=100)
    with pytest.raises(ConfigError, match="breakpoint_percentile"):
        build("semantic", breakpoint_percentile=0)
    with pytest.raises(ConfigError, match="separators"):
        make_chunker("recursive", separators="\n")


@pytest.mark.parametrize("name", ["semantic", "cluster"])
def test_embedding_chunkers_need_an_embedder(name: str) -> None:
    with pytest.raises(ConfigError, match="embed callable"):
        make_chunker(name)


def test_llm_chunker_needs_a_backend() -> None:
    with pytest.raises(ConfigError, match="an LLM backend must be configured"):
        make_chunker("llm")


@pytest.mark.parametrize("name", ["token", "recursive", "sentence", "semantic", "cluster", "llm"])
def test_empty_and_whitespace_documents_give_no_chunks(name: str) -> None:
    chunker = build(name)
    assert isinstance(chunker, Chunker)
    for text in ["", " ", "\n\n\t  \u3000\n"]:
        assert chunker.chunk(text, doc_id="empty") == []


@pytest.mark.parametrize("name", ["token", "recursive", "sentence", "semantic", "cluster", "llm"])
def test_invalid_unicode_is_a_data_error(name: str) -> None:
    with pytest.raises(DataError, match="doc-7.*not valid Unicode"):
        build(name).chunk("fine text \ud800 then more", doc_id="doc-7")


def test_params_are_json_and_name_everything_that_changes_output() -> None:
    a = build("semantic", buffer_size=1).params()
    b = build("semantic", buffer_size=2).params()
    assert a != b and a["embed"] == "hashed-bow-64"
    named = build("cluster", embed=lambda t: EMBED(t), embed_id="minilm@abc").params()
    assert named["embed"] == "minilm@abc"

    class Embedder:  # the shape of lab.embed's embedders: name + fingerprint()
        name = "tiny"

        def __init__(self, revision: str) -> None:
            self.revision = revision

        def fingerprint(self) -> dict:
            return {"weights": self.revision}

        def encode(self, texts: list[str]) -> np.ndarray:
            return EMBED(texts)

    ids = {build("semantic", embed=Embedder(rev).encode).params()["embed"] for rev in ("r1", "r1", "r2")}
    assert len(ids) == 2 and all(i.startswith("tiny@") for i in ids)
    for name in CHUNKERS.names():
        p = build(name).params()
        json.dumps(p)
        assert p["chunker"] == name and "version" in p


# --------------------------------------------------------------------------- token


@pytest.mark.parametrize("size,overlap", [(250, 125), (200, 0)])
def test_token_equals_langchain_token_splitter_on_ascii_corpus(size: int, overlap: int) -> None:
    text = corpus("finance.md")
    assert text.isascii()
    chunks = make_chunker("token", size=size, overlap=overlap).chunk(text, doc_id="finance")
    assert_exact(text, chunks, "finance")
    assert [c.text for c in chunks] == lc_token(size, overlap).split_text(text)
    # On ASCII text a window re-tokenizes to at most `size` tokens.
    assert max(n_tokens(c.text) for c in chunks) <= size


def test_token_window_cutting_a_character_takes_it_whole() -> None:
    enc = get_encoding()
    # cl100k spreads these characters over several byte-level tokens.
    for ch in ["🦛", "😀", "𠮷", "語"]:
        assert len(enc.encode_ordinary(ch)) > 1
    text = "ab🦛 日本語 𠮷😀 end"
    lc_windows = lc_token(1, 0).split_text(text)
    assert any("\ufffd" in w for w in lc_windows)  # the pitfall: decoding a cut window
    for size, overlap in [(1, 0), (2, 1), (2, 0), (3, 1), (4, 2)]:
        chunks = make_chunker("token", size=size, overlap=overlap).chunk(text)
        assert_exact(text, chunks)
        assert chunks[0].start == 0 and chunks[-1].end == len(text)
    # Rule: the window grows outward to whole characters, so the cut emoji is in both windows.
    chunks = make_chunker("token", size=1).chunk("🦛")
    assert [c.text for c in chunks] == ["🦛", "🦛", "🦛"]


def test_token_real_contract_with_a_cut_character() -> None:
    # At 200/0 cl100k's first window of this contract ends inside "○" (3 UTF-8 bytes).
    text = contract("GIGGLESN_HUGS")
    chunks = make_chunker("token", size=200).chunk(text)
    assert_exact(text, chunks)
    first, second = chunks[0], chunks[1]
    assert first.text.endswith("○") and second.text.startswith("○")
    assert second.start == first.end - 1
    lc = lc_token(200, 0).split_text(text)
    assert lc[0].endswith("\ufffd") and lc[0][:-1] == first.text[:-1]


# --------------------------------------------------------------------------- recursive


@pytest.mark.parametrize("size,overlap", [(250, 125), (200, 0)])
@pytest.mark.parametrize("name", ["state_of_the_union.md", "chatlogs.md"])
def test_recursive_equals_langchain_on_real_corpora(name: str, size: int, overlap: int) -> None:
    text = corpus(name)
    chunks = make_chunker("recursive", size=size, overlap=overlap).chunk(text, doc_id=name)
    assert_exact(text, chunks, name)
    assert [c.text for c in chunks] == lc_recursive(size, overlap).split_text(text)
    assert max(n_tokens(c.text) for c in chunks) <= size
    assert all(a.start < b.start and a.end < b.end for a, b in itertools.pairwise(chunks))


def test_recursive_equals_langchain_on_a_contract_with_repeated_boilerplate() -> None:
    text = contract("BloomEnergyCorp")
    for size, overlap in [(250, 125), (100, 60)]:
        chunks = make_chunker("recursive", size=size, overlap=overlap).chunk(text)
        assert_exact(text, chunks)
        assert [c.text for c in chunks] == lc_recursive(size, overlap).split_text(text)


def test_recursive_offsets_on_repetitive_text() -> None:
    # Identical chunk texts: any search for them is ambiguous; spans are carried instead.
    text = "alpha beta gamma. " * 60
    chunks = make_chunker("recursive", size=20, overlap=10).chunk(text)
    assert_exact(text, chunks)
    assert [c.text for c in chunks] == lc_recursive(20, 10).split_text(text)
    assert len({c.text for c in chunks}) < len(chunks)
    assert all(a.start < b.start for a, b in itertools.pairwise(chunks))
    assert chunks[-1].end == len(text.rstrip())


# --------------------------------------------------------------------------- sentence


def test_sentence_keeps_abbreviations_and_packs_whole_sentences() -> None:
    text = ("Dr. Smith went to the U.S. in Jan. 2020. He paid $3.50 for coffee at 5 p.m. and left. "
            "Was it fun? Yes! 日本語の文です。次の文です。")
    one = make_chunker("sentence", max_tokens=1000).chunk(text)
    assert [c.text for c in one] == [text]
    chunks = make_chunker("sentence", max_tokens=20).chunk(text)
    assert_exact(text, chunks)
    assert [c.text for c in chunks] == ["Dr. Smith went to the U.S. in Jan. 2020.",
                                        "He paid $3.50 for coffee at 5 p.m. and left.",
                                        "Was it fun? Yes! 日本語の文です。次の文です。"]
    assert all(n_tokens(c.text) <= 20 for c in chunks)


def test_sentence_overlap_repeats_sentences() -> None:
    text = " ".join(f"Sentence number {i} is here." for i in range(12))
    chunks = make_chunker("sentence", max_tokens=20, overlap_sentences=1).chunk(text)
    assert_exact(text, chunks)
    for a, b in itertools.pairwise(chunks):
        last_sentence = a.text.rsplit(". ", 1)[-1]
        assert b.text.startswith(last_sentence)


def test_sentence_document_without_boundary() -> None:
    short = "  a line with no full stop at all  "
    assert [c.text for c in make_chunker("sentence", max_tokens=50).chunk(short)] == [short.strip()]
    # Over max_tokens: the single "sentence" is cut into token windows (documented behaviour).
    long = " ".join(["word"] * 1000)
    chunks = make_chunker("sentence", max_tokens=100).chunk(long)
    assert_exact(long, chunks)
    assert len(chunks) == 10 and all(n_tokens(c.text) <= 100 for c in chunks)


def test_sentence_max_tokens_on_real_corpus() -> None:
    text = corpus("pubmed.md")[:60_000]
    chunks = make_chunker("sentence", max_tokens=120, overlap_sentences=1).chunk(text)
    assert_exact(text, chunks)
    assert max(n_tokens(c.text) for c in chunks) <= 120


# --------------------------------------------------------------------------- semantic


def test_semantic_breaks_between_topics() -> None:
    cats = " ".join(f"Cats purr and cats nap in the sun{'!' * (i + 1)}" for i in range(6))
    rockets = " ".join(f"Rockets burn fuel to reach orbit{'?' * (i + 1)}" for i in range(6))
    text = cats + " " + rockets
    chunks = build("semantic", breakpoint_percentile=90).chunk(text)
    assert_exact(text, chunks)
    assert any(c.end == len(cats) for c in chunks)
    capped = build("semantic", breakpoint_percentile=99, max_tokens=15).chunk(text)
    assert_exact(text, capped)
    assert all(n_tokens(c.text) <= 15 for c in capped)


def test_semantic_rejects_a_bad_embedder() -> None:
    chunker = make_chunker("semantic", embed=lambda texts: np.zeros((1, 4)))
    with pytest.raises(LabError, match="one row per text"):
        chunker.chunk("One sentence. Two sentences. Three sentences.")


def test_semantic_single_sentence() -> None:
    assert [c.text for c in build("semantic").chunk("  Just one.  ")] == ["Just one."]


# --------------------------------------------------------------------------- cluster


def chroma_reference_segmentation(emb: np.ndarray, max_cluster: int) -> list[tuple[int, int]]:
    """Chroma's _optimal_segmentation as published (full matrix, np.sum of sub-matrices)."""
    matrix = emb @ emb.T
    matrix = matrix - np.mean(matrix[np.triu_indices(matrix.shape[0], k=1)])
    np.fill_diagonal(matrix, 0)
    n = matrix.shape[0]
    dp, seg = np.zeros(n), np.zeros(n, dtype=int)
    for i in range(n):
        for size in range(1, max_cluster + 1):
            if i - size + 1 >= 0:
                reward = np.sum(matrix[i - size + 1:i + 1, i - size + 1:i + 1])
                if i - size >= 0:
                    reward += dp[i - size]
                if reward > dp[i]:
                    dp[i], seg[i] = reward, i - size + 1
    out, i = [], n - 1
    while i >= 0:
        out.append((int(seg[i]), i))
        i = seg[i] - 1
    return out[::-1]


def test_cluster_segmentation_matches_chroma() -> None:
    rng = np.random.default_rng(0)
    compared = 0
    for trial in range(40):
        n, k = int(rng.integers(2, 60)), int(rng.integers(1, 9))
        # Topic structure: runs of similar vectors plus noise.
        centres = rng.normal(size=(6, 16))
        emb = centres[np.sort(rng.integers(0, 6, size=n))] + 0.8 * rng.normal(size=(n, 16))
        emb /= np.linalg.norm(emb, axis=1, keepdims=True)
        ref = chroma_reference_segmentation(emb, k)
        mine = optimal_segmentation(emb, k)
        assert all(b - a + 1 <= k for a, b in mine)
        if all(b - a + 1 <= k for a, b in ref):
            assert mine == ref, trial
            compared += 1
    assert compared >= 30


def test_cluster_respects_max_cluster_where_chroma_does_not() -> None:
    # The first pieces are mutually dissimilar (below the mean), the rest near-identical: no segment
    # ending early has a positive reward, so Chroma's fallback makes pieces 0..i one chunk.
    emb = np.vstack([np.eye(8)[:5], np.tile(np.eye(8)[5], (20, 1))])
    ref = chroma_reference_segmentation(emb, 2)
    assert max(b - a + 1 for a, b in ref) > 2
    mine = optimal_segmentation(emb, 2)
    assert max(b - a + 1 for a, b in mine) <= 2
    assert mine[0][0] == 0 and mine[-1][1] == 24


def test_cluster_chunks_are_piece_runs_on_real_text() -> None:
    text = corpus("wikitexts.md")[:30_000]
    chunker = build("cluster", size=200, piece_size=50)
    pieces = make_chunker("recursive", size=50, overlap=0).chunk(text)
    chunks = chunker.chunk(text, doc_id="wiki")
    assert_exact(text, chunks, "wiki")
    starts, ends = {p.start for p in pieces}, {p.end for p in pieces}
    assert all(c.start in starts and c.end in ends for c in chunks)
    assert all(sum(1 for p in pieces if c.start <= p.start and p.end <= c.end) <= 4 for c in chunks)
    assert max(n_tokens(c.text) for c in chunks) <= 210  # 4 pieces of <= 50 tokens, plus joins


def test_cluster_with_minilm_on_a_real_corpus() -> None:
    # About 10 s on 2 cores (model load included), under the 20 s that would make it `slow`.
    from lab.models import load_sentence_transformer

    model = load_sentence_transformer("all-minilm-l6-v2")
    text = corpus("chatlogs.md")

    def embed(texts: list[str]) -> np.ndarray:
        return model.encode(texts, batch_size=64, normalize_embeddings=True, convert_to_numpy=True)

    chunks = make_chunker("cluster", embed=embed, embed_id="all-minilm-l6-v2", size=250).chunk(text)
    assert_exact(text, chunks)
    assert 20 < len(chunks) < 200
    assert max(n_tokens(c.text) for c in chunks) <= 260


# --------------------------------------------------------------------------- llm


def test_llm_splits_where_the_model_says() -> None:
    text = " ".join(f"Paragraph {i} talks about topic {i // 3} in some detail." for i in range(30))
    gen = EveryNthSplit(3)
    chunker = make_chunker("llm", generate=gen, piece_size=12, window_tokens=60)
    pieces = make_chunker("recursive", size=12, overlap=0).chunk(text)
    chunks = chunker.chunk(text)
    assert_exact(text, chunks)
    ends = [p.end for p in pieces]
    assert [c.end for c in chunks] == [ends[i - 1] for i in range(3, len(pieces), 3)] + [ends[-1]]
    assert chunker.stats["calls"] == gen.calls > 1 and chunker.stats["unparsed"] == 0


def test_llm_unparsed_answers_are_counted_and_kept() -> None:
    import re

    text = " ".join(f"Sentence {i} says something." for i in range(60))
    calls: list[int] = []

    def scripted(prompt: str) -> str:
        first = int(re.search(r"<\|start_chunk_(\d+)\|>", prompt).group(1))
        calls.append(first)
        return {1: "Sure! Here are my thoughts.", 2: f"split_after: 999, {first + 1}"}.get(
            len(calls), "split_after: none")

    chunker = make_chunker("llm", generate=scripted, generate_id="scripted", piece_size=10, window_tokens=40)
    chunks = chunker.chunk(text, doc_id="d1")
    assert_exact(text, chunks, "d1")
    assert chunker.stats["calls"] == len(calls) > 3
    assert chunker.stats["unparsed"] == 1 and chunker.stats["out_of_range"] == 1
    assert chunker.stats["no_split"] == len(calls) - 2
    assert chunker.failures == [{"doc_id": "d1", "first_piece": 1, "answer": "Sure! Here are my thoughts."}]
    assert len(chunks) == 2 and calls[2] == calls[1] + 2  # split after piece first+1; next window after it
    # Garbage everywhere: no split at all, one chunk covering the text.
    silent = make_chunker("llm", generate=lambda p: "???", piece_size=10, window_tokens=40)
    assert [c.text for c in silent.chunk(text)] == [text]
    assert silent.stats["unparsed"] == silent.stats["calls"] > 1


def test_llm_prompt_numbers_the_pieces_and_parser_is_tolerant() -> None:
    prompts: list[str] = []
    chunker = make_chunker("llm", generate=lambda p: prompts.append(p) or "split_after: 2",
                           piece_size=8, window_tokens=1000)
    text = "First part here. Second part here. Third part here. Fourth part."
    chunker.chunk(text)
    pieces = make_chunker("recursive", size=8, overlap=0).chunk(text)
    assert len(pieces) > 1
    shown = "".join(f"<|start_chunk_{i + 1}|>{p.text}<|end_chunk_{i + 1}|>" for i, p in enumerate(pieces))
    assert shown in prompts[0]
    assert "split_after" in prompts[0]
    assert parse_split_after("Answer:\nSplit after: 3, 5 and 9") == [3, 5, 9]
    assert parse_split_after("split_after:") == []
    assert parse_split_after("I would split after 3") is None


def test_chunk_is_frozen() -> None:
    c = Chunk("d", 0, 1, "x", 0)
    with pytest.raises(AttributeError):
        c.start = 2  # type: ignore[misc]


def test_sentence_spans_survive_the_line_separators_sentencex_mis_slices():
    """sentencex panics (a Rust byte-slicing error) on some texts with U+2028; the spans come from the
    same text with those separators as newlines, so offsets still index the original text."""
    from lab.chunking.sentence import sentence_spans

    text = "“quote”\r\nWord\n\n\u3000日本語\n\né.\u2028U.S.aß  🇯🇵<|endoftext|>\xa0"
    spans = sentence_spans(text)
    assert spans and all(0 <= s < e <= len(text) for s, e in spans)
    assert all(text[s:e] == text[s:e].strip() for s, e in spans)
