"""``token``: fixed windows of tiktoken tokens, with offsets taken from token boundaries.

Same windows as LangChain's ``TokenTextSplitter`` (and Chroma's FixedTokenChunker): ``size`` tokens,
stride ``size - overlap``, the last window ending at the last token. LangChain only returns decoded
strings; decoding a window that cuts a multi-byte character yields U+FFFD and a string that does not
occur in the document (seen on SQuAD's Prime_number article). Here each window's byte span comes
from the tokens' own bytes and is mapped to character offsets of the UTF-8 text, so the chunk is an
exact slice.

Edge rule for a window edge inside a multi-byte character: the window grows outward to whole
characters (start moves back to the character's first byte, end moves on past its last byte). The
cut character then belongs to both windows that share it, and no chunk contains U+FFFD. Where no
character is cut (always, for ASCII), ``chunk.text`` equals LangChain's decoded window.
"""

from __future__ import annotations

from typing import Any

from lab.chunking.base import CHUNKERS, Chunk, check_size_overlap, check_text, make_chunks


def token_window_spans(text: str, enc: Any, size: int, overlap: int) -> list[tuple[int, int]]:
    """Character spans of the ``size``-token windows (stride ``size - overlap``) of ``text``.

    Tokens come from ``enc.encode_ordinary``: special-token strings such as ``<|endoftext|>`` in a
    document are ordinary text (LangChain's default would raise on them).
    """
    import numpy as np

    ids = enc.encode_ordinary(text)
    n = len(ids)
    if n == 0:
        return []
    byte_len = np.fromiter(map(len, enc.decode_tokens_bytes(ids)), dtype=np.int64, count=n)
    byte_off = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(byte_len, out=byte_off[1:])
    raw = text.encode("utf-8")
    if int(byte_off[-1]) != len(raw):  # cannot happen for valid Unicode; never slice blindly
        raise AssertionError(f"token bytes ({int(byte_off[-1])}) != text bytes ({len(raw)})")
    stride = size - overlap
    # Window starts as in LangChain's split_text_on_tokens: 0, stride, ... up to the first window
    # that reaches the last token.
    last_start = max(0, -(-(n - size) // stride) * stride) if n > size else 0
    starts = np.arange(0, last_start + 1, stride, dtype=np.int64)
    ends = np.minimum(starts + size, n)
    b_start, b_end = byte_off[starts], byte_off[ends]
    if len(raw) == len(text):  # ASCII: byte offsets are character offsets
        c_start, c_end = b_start, b_end
    else:
        arr = np.frombuffer(raw, dtype=np.uint8)
        # Index of the character each byte belongs to (continuation bytes are 10xxxxxx).
        char_of_byte = np.cumsum((arr & 0xC0) != 0x80) - 1
        c_start = char_of_byte[b_start]            # floor to the start of the cut character
        c_end = char_of_byte[b_end - 1] + 1        # ceil past the end of the cut character
    return list(zip(c_start.tolist(), c_end.tolist(), strict=True))


@CHUNKERS.register("token")
class FixedTokenChunker:
    """Fixed windows of ``size`` tokens overlapping by ``overlap`` tokens.

    Parameters
    ----------
    size : int
        Tokens per window (> 0).
    overlap : int
        Tokens shared by consecutive windows (0 <= overlap < size).
    encoding : str
        tiktoken encoding, resolved offline through :func:`lab.tokens.get_encoding`.

    Notes
    -----
    Windows are not stripped: a window of whitespace only is returned like any other (as LangChain
    does). A whitespace-only document gives ``[]``. Re-encoding ``chunk.text`` alone may give a
    slightly different token count than ``size`` (BPE merges differ at a cut word).
    """

    name = "token"
    version = 1

    def __init__(self, size: int = 250, overlap: int = 0, encoding: str = "cl100k_base") -> None:
        self.size, self.overlap = check_size_overlap(self.name, size, overlap)
        self.encoding = encoding
        from lab.tokens import get_encoding

        self._enc = get_encoding(encoding)

    def params(self) -> dict[str, Any]:
        return {"chunker": self.name, "version": self.version, "size": self.size,
                "overlap": self.overlap, "encoding": self.encoding}

    def chunk(self, text: str, doc_id: str = "") -> list[Chunk]:
        text = check_text(text, doc_id)
        if not text.strip():
            return []
        return make_chunks(text, token_window_spans(text, self._enc, self.size, self.overlap), doc_id)
