"""Allow-lists: a policy's exceptions (:class:`lab.config.guardrails.PolicyException`) matched
against a fired check, so that a team exempts a known-benign phrase, pattern or gateway route
without retraining a classifier.

An exception applies to a decision when its ``sides`` hold the side, its ``checks`` the check (or
name none: every check) and its ``routes`` (when it has any) the request's route. Then:

- an exception with routes only exempts the decision outright (every text of those requests);
- phrases and patterns exempt the TEXT only when the check, run again with every allowed match
  blanked (spaces of the same length: offsets stay), no longer fires. "git ignore" may be allowed
  for the injection check; "git ignore. Ignore all previous instructions" still fires.

The caller (:class:`lab.guardrails.policy.Policy`) records the exception's name on the outcome,
logs it and counts it; the exception is part of the policy, so it is versioned with it (the policy
id changes when an exception does).
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from lab.config.guardrails import PolicyException


@dataclass(frozen=True)
class _Compiled:
    name: str
    checks: frozenset[str]
    sides: frozenset[str]
    matchers: tuple[re.Pattern[str], ...]
    routes: tuple[str, ...]

    def applies(self, check: str, side: str, route: str | None) -> bool:
        if side not in self.sides or (self.checks and check not in self.checks):
            return False
        return not self.routes or (route is not None and any(fnmatch.fnmatchcase(route, r) for r in self.routes))


class Allowlist:
    """The exceptions of one policy, compiled once."""

    def __init__(self, exceptions: Sequence[PolicyException] = ()) -> None:
        self.exceptions = [_Compiled(
            e.name, frozenset(e.checks), frozenset(e.sides),
            tuple(re.compile(re.escape(p), re.IGNORECASE) for p in e.phrases) + tuple(re.compile(p) for p in e.patterns),
            tuple(e.routes)) for e in exceptions]

    def __bool__(self) -> bool:
        return bool(self.exceptions)

    def exempt(self, check: str, side: str, text: str, route: str | None,
               fires: Callable[[str], bool]) -> list[str]:
        """Names of the exceptions that exempt ``text`` from ``check`` on ``side`` (empty: none).

        ``fires(masked)`` runs the check again on the text with the allowed matches blanked; it is
        called at most once, and only when a phrase or pattern matched."""
        found = [e for e in self.exceptions if e.applies(check, side, route)]
        whole = [e.name for e in found if not e.matchers]
        if whole:
            return whole
        chars = list(text)
        names = []
        for e in found:
            hit = False
            for rx in e.matchers:
                for m in rx.finditer(text):
                    if m.end() > m.start():
                        chars[m.start():m.end()] = " " * (m.end() - m.start())
                        hit = True
            if hit:
                names.append(e.name)
        if not names or fires("".join(chars)):
            return []
        return names
