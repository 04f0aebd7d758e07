"""The gateway's request bodies: the OpenAI chat fields it uses and the feedback it takes (pydantic
models: a bad body is a 422 naming the field)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


class Message(BaseModel):
    """One chat message. ``content`` is a string or, as the official OpenAI clients and LangChain
    send it, a list of content parts: the text parts (``{"type": "text", "text": ...}``) are joined
    with newlines, in order; any other part type (``image_url``, ``input_audio``, ``file``...) is a
    422 naming the part, since the gateway retrieves and answers text only."""

    model_config = ConfigDict(extra="ignore")

    role: Literal["system", "user", "assistant"]
    content: str = Field(max_length=32_000)

    @field_validator("content", mode="before")
    @classmethod
    def _text_parts(cls, value: Any) -> Any:
        if not isinstance(value, list):
            return value
        texts = []
        for i, part in enumerate(value):
            kind = part.get("type") if isinstance(part, dict) else type(part).__name__
            if kind != "text":   # ValueError: pydantic turns it into the 422's message (a TypeError it would not)
                raise ValueError(
                    f"content part {i} is of type {kind!r}: this gateway takes text parts only "
                    '({"type": "text", "text": "..."})')
            if not isinstance(part.get("text"), str):
                raise ValueError(f"content part {i} (type 'text') has no string 'text'")  # noqa: TRY004
            texts.append(part["text"])
        if not texts:
            raise ValueError("content is an empty list of parts: send at least one text part")
        return "\n".join(texts)


class ChatRequest(BaseModel):
    """The OpenAI chat fields the gateway uses (others are ignored), plus ``k`` and ``topic``."""

    model_config = ConfigDict(extra="ignore")

    messages: list[Message] = Field(min_length=1, max_length=64)
    model: str | None = None
    stream: bool = False
    max_tokens: int | None = Field(None, ge=1, le=2048)   # default: the bundle's generation.max_new_tokens
    temperature: float = Field(0.0, ge=0, le=2)
    k: int | None = Field(None, ge=1, le=50)          # passages to retrieve (default: the bundle's)
    topic: str | None = Field(None, max_length=200)   # the study's "Topic:" line (default: top source's title)


class FeedbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    response_id: str = Field(min_length=1, max_length=100)
    rating: Literal["up", "down"]
    comment: str | None = Field(None, max_length=4000)
