"""Send the probes (attacks and benign questions) through the gateway, each to every arm.

An *arm* is one gateway: the served bundle with its guardrail policy (``on``) or without it
(``off``), in process (an ASGI app, called through httpx's ASGI transport: the same routes, request
validation and guardrails as ``lab serve``) or at a URL on the loopback interface
(:func:`check_loopback` refuses any other host). Every probe goes to every arm in turn, so the arms
answer the same probes even when the time budget ends the run early.

A multi-turn attack is a conversation: each turn is sent with the turns and answers before it, as a
chat client would; it stops at the first turn the policy blocks or that fails. The run is bounded:
probes are sent one at a time, each request within ``request_timeout_s``, and none starts after
``budget_s`` seconds; the probes that did not run are listed.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from lab.errors import ConfigError
from lab.redteam.attacks import Attack

#: Hosts the red team may send to.
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
CHAT = "/v1/chat/completions"


def is_url(target: str) -> bool:
    """Whether ``target`` is a URL (``http://``/``https://``) rather than a bundle folder."""
    return target.startswith(("http://", "https://"))


def check_loopback(url: str, key: str = "target") -> str:
    """``url`` without a trailing slash, when it is an http(s) URL on the loopback interface.

    Raises
    ------
    ConfigError
        Another scheme or host (the message names ``key`` and says why: the red team attacks only a
        gateway on this machine).
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{key}: {url!r} is not an http(s) URL of a gateway (http://127.0.0.1:PORT)")
    if parts.hostname not in LOOPBACK_HOSTS:
        raise ConfigError(f"{key}: {url!r} is not on the loopback interface ({', '.join(LOOPBACK_HOSTS)}); "
                          "the red team only attacks a gateway running on this machine")
    return url.rstrip("/")


@dataclass
class Arm:
    """One gateway the probes go to: its name, an async HTTP client whose base URL is the gateway
    (``/v1/chat/completions`` under it), the message its policy answers a blocked request with,
    and the policy's id (None: no policy)."""

    name: str
    client: Any
    fallback_message: str | None = None
    policy_id: str | None = None


@dataclass(frozen=True)
class Probe:
    """A conversation to send: an attack's turns, or a benign question (``topic``: the request's topic)."""

    id: str
    kind: str                   # "attack" or "benign"
    turns: tuple[str, ...]
    category: str = "benign"
    topic: str | None = None
    attack: Attack | None = None

    @classmethod
    def of_attack(cls, a: Attack) -> Probe:
        return cls(a.id, "attack", a.turns, a.category, None, a)


@dataclass
class Reply:
    """One answer of the gateway (or why there is none)."""

    text: str = ""
    blocked: bool = False          # the response's lab.blocked (the input policy refused the request)
    fallback: bool = False         # the answer is the policy's fallback message (an output rule replaced it)
    status: int = 0
    error: str | None = None
    sources: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def intervened(self) -> bool:
        """The policy blocked the request or replaced the answer."""
        return self.blocked or self.fallback

    def passage_actions(self) -> dict[str, str]:
        """Passage id -> what the context side did to it (drop, neutralise, warn), for those it acted on."""
        return {s["id"]: s["guardrail"]["action"] for s in self.sources if isinstance(s.get("guardrail"), dict)}


@dataclass
class Exchange:
    """A probe sent to one arm: its replies, turn by turn."""

    probe: Probe
    arm: str
    replies: list[Reply] = field(default_factory=list)

    @property
    def error(self) -> str | None:
        return next((r.error for r in self.replies if r.error), None)

    @property
    def answers(self) -> list[str]:
        return [r.text for r in self.replies if r.error is None]

    @property
    def intervened(self) -> bool:
        return any(r.intervened for r in self.replies)

    @property
    def context(self) -> str:
        """The passages the last answer was given (dropped ones left out), joined."""
        last = self.replies[-1] if self.replies else Reply()
        return "\n\n".join(s.get("text", "") for s in last.sources
                           if (s.get("guardrail") or {}).get("action") != "drop")

    def retrieved(self, doc_id: str) -> bool:
        return any(s.get("id") == doc_id for r in self.replies for s in r.sources)


def _headers() -> dict[str, str]:
    key = os.environ.get("LAB_API_KEY")
    return {"Authorization": f"Bearer {key}"} if key else {}


async def send(arm: Arm, messages: list[dict[str, str]], *, topic: str | None, timeout_s: float) -> Reply:
    """One chat request to ``arm``; a failure (HTTP error, timeout, a body that is no chat
    completion) is a :class:`Reply` with ``error`` set, never an exception."""
    body: dict[str, Any] = {"messages": messages}
    if topic:
        body["topic"] = topic
    t0 = time.perf_counter()
    try:
        r = await asyncio.wait_for(arm.client.post(CHAT, json=body, headers=_headers()), timeout_s)
    except TimeoutError:
        return Reply(error=f"no answer within {timeout_s:.0f} s", seconds=time.perf_counter() - t0)
    except Exception as exc:  # noqa: BLE001 (a refused connection or a broken gateway is recorded, not raised)
        return Reply(error=f"{type(exc).__name__}: {exc}"[:300], seconds=time.perf_counter() - t0)
    seconds = time.perf_counter() - t0
    if r.status_code != 200:
        return Reply(status=r.status_code, error=f"HTTP {r.status_code}: {r.text[:200]}", seconds=seconds)
    try:
        data = r.json()
        text = data["choices"][0]["message"]["content"] or ""
    except (ValueError, KeyError, IndexError, TypeError):
        return Reply(status=r.status_code, error=f"not a chat completion: {r.text[:200]}", seconds=seconds)
    lab = data.get("lab") or {}
    fallback = bool(arm.fallback_message) and text.strip() == str(arm.fallback_message).strip()
    return Reply(text, bool(lab.get("blocked")), fallback, r.status_code, None, list(data.get("sources") or []),
                 seconds)


async def converse(arm: Arm, probe: Probe, *, deadline: float, request_timeout_s: float) -> Exchange:
    """Send ``probe``'s turns to ``arm``, each after the answers before it."""
    ex = Exchange(probe, arm.name)
    messages: list[dict[str, str]] = []
    for turn in probe.turns:
        left = deadline - time.monotonic()
        if left <= 0:
            ex.replies.append(Reply(error="time budget spent mid-conversation"))
            break
        messages.append({"role": "user", "content": turn})
        reply = await send(arm, messages, topic=probe.topic, timeout_s=min(request_timeout_s, left))
        ex.replies.append(reply)
        if reply.error is not None or reply.intervened:
            break
        messages.append({"role": "assistant", "content": reply.text})
    return ex


async def run_probes(arms: Sequence[Arm], probes: Sequence[Probe], *, budget_s: float, request_timeout_s: float,
                     progress: bool = False) -> tuple[list[Exchange], list[str]]:
    """Every probe to every arm, one request at a time, until ``budget_s`` is spent; the exchanges
    and the ids of the probes that did not run."""
    from lab.progress import bar

    deadline = time.monotonic() + budget_s
    done: list[Exchange] = []
    not_run: list[str] = []
    pbar = bar(total=len(probes) * len(arms), desc="red team", enable=progress)
    try:
        for probe in probes:
            if time.monotonic() >= deadline:
                not_run.append(probe.id)
                continue
            for arm in arms:
                done.append(await converse(arm, probe, deadline=deadline, request_timeout_s=request_timeout_s))
                pbar.update(1)
    finally:
        pbar.close()
    return done, not_run
