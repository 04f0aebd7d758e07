"""Trained classifier checks: prompt injection and jailbreak (classifiers trained on labelled
prompts, with named rules as a floor) and toxicity.

The decision fires when the classifier's probability reaches its stored threshold, or when one of
the rules below matches (a rule is a floor: it catches the textbook phrasings even where a
classifier has not been trained or misses). The reason names every signal that fired: the
classifier's score against its threshold and each rule by name.

Long texts: the classifier scores a text longer than ``window_words`` words window by window and
takes the maximum (:func:`lab.guardrails.classifier.windowed_scores`, which says why that rule);
the decision's ``spans`` then hold every window at or above the threshold (label ``window``, its
score) and the reason names the highest one and how many of the text's windows fired. The window
length defaults to the classifier's benign training length
(:func:`lab.guardrails.classifier.default_window_words`); ``window_words=None`` scores the whole
text at once (the behaviour before windows were the default). A text of at most one window is
scored whole either way, exactly as before, with no span. The rules always read the whole text: a
regular expression does not drift with length.

The window model: where the classifier's folder holds one (``windows/``, trained by
:mod:`lab.guardrails.window_model` on windows of benign prose with training texts planted inside),
a text longer than one window is scored window by window with IT, at its window length, and
compared with its length-aware cut for that many windows (a text of n windows gives a benign text n
chances to fire; the cut holds the share of benign texts that fire near the model's
``max_text_fpr``). The decision's ``threshold`` is then that cut and its reason names the window model.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from lab.data.instructions import rule_hits  # the rule floor, defined once (the corpus scan reads it too)
from lab.errors import ConfigError
from lab.guardrails.base import CHECKS, Decision, Span, safe_text

if TYPE_CHECKING:
    from lab.guardrails.classifier import WindowScores

#: ``window_words`` of a check that derives its window from its classifier (the default).
AUTO = "auto"
WindowWords = int | Literal["auto"] | None


def stored_threshold(model: Any, max_fpr: float | None = None, operating_point: str | None = None) -> float:
    """The classifier's cut: its own threshold (the rule it was trained with, ``threshold_rule`` of
    its meta: best F1, or the intent rule), the stored operating point whose out-of-fold
    false-positive rate is within ``max_fpr``, or the stored point named ``operating_point``
    (``intent``, ``best_f1``, ``fpr<=0.01`` ...); all were chosen on training data."""
    if max_fpr is not None and operating_point is not None:
        raise ConfigError("give max_fpr or operating_point, not both")
    points = model.meta.get("operating_points") or []
    if operating_point is not None:
        for p in points:
            if p.get("name") == operating_point:
                return float(p["threshold"])
        have = ", ".join(str(p["name"]) for p in points if "name" in p) or "none (retrain it with a threshold_rule)"
        raise ConfigError(f"{model.meta.get('name', 'classifier')}: no operating point named {operating_point!r}; "
                          f"stored: {have}")
    if max_fpr is None:
        return float(model.threshold)
    for p in points:
        if "max_fpr" in p and abs(float(p["max_fpr"]) - float(max_fpr)) < 1e-12:
            return float(p["threshold"])
    have = ", ".join(f"{p['max_fpr']:g}" for p in points if "max_fpr" in p) or "none (retrain it)"
    raise ConfigError(f"{model.meta.get('name', 'classifier')}: no operating point stored for max_fpr {max_fpr:g}; "
                      f"stored: {have}")


def load_classifier(check: str, model_dir: str | Path | None) -> Any:
    """The trained classifier of ``check`` from ``model_dir``.

    Raises
    ------
    ConfigError
        No ``model_dir`` given (a check never guesses a stage's output folder).
    LabError
        The folder holds no trained classifier (the message says how to train one).
    """
    from lab.guardrails.classifier import TextClassifier

    if model_dir is None or str(model_dir) == "":
        raise ConfigError(f"{check} check: no model_dir: set options.model_dir to a trained classifier's folder "
                          f"(`dvc repro guardrails_eval` trains one into <guardrails_eval out_dir>/models/{check}; "
                          f"`lab guardrails train {check} --data FILE --out DIR` into DIR)"
                          + (", or classifier: false for the rules alone" if check != "toxicity" else ""))
    return TextClassifier.load(model_dir)


class WindowedClassifier:
    """What the classifier checks share: the windows over a long text and the scores over them.

    ``window_words``: ``"auto"`` (the default) takes the classifier's benign training length
    (:func:`lab.guardrails.classifier.default_window_words`; :data:`DEFAULT_WINDOW_WORDS
    <lab.guardrails.classifier.DEFAULT_WINDOW_WORDS>` for a check without a classifier, whose rules
    only need windows to say where they matched); an int sets it; None scores every text whole.
    ``stride_words``: words between window starts (default half a window). ``window_source`` says
    where the window length came from."""

    model: Any
    threshold: float
    window_words: int | None
    stride_words: int | None
    window_source: str
    window_model: Any = None
    #: A lower target for the window model's length-aware cut than the one it was trained with:
    #: the check's ``max_fpr`` (None: the window model's own ``max_text_fpr``).
    window_fpr: float | None = None

    def _set_windows(self, window_words: WindowWords, stride_words: int | None,
                     model_dir: str | Path | None = None, window_model: bool = True) -> None:
        from lab.guardrails.classifier import DEFAULT_WINDOW_WORDS, default_window_words

        name = getattr(self, "name", type(self).__name__)
        self.window_model = None
        if window_model and self.model is not None and model_dir and window_words is not None:
            from lab.guardrails.window_model import load_window_model

            wm = load_window_model(model_dir)
            if wm is not None and window_words in (AUTO, wm.meta["window_words"]) and stride_words in (
                    None, wm.meta.get("stride_words")):
                self.window_model = wm
                window_words = int(wm.meta["window_words"])
                self.window_source = (f"{window_words} words: the window model's (long texts scored by it at its "
                                      f"length-aware cut; a text of one window by the classifier)")
                self.window_words, self.stride_words = window_words, stride_words
                return
        if window_words == AUTO and self.model is None:
            window_words = DEFAULT_WINDOW_WORDS
            self.window_source = f"default {window_words} words (no classifier: the windows only place a rule's match)"
        elif window_words == AUTO:
            window_words, self.window_source = default_window_words(self.model.meta)
        elif window_words is None:
            self.window_source = "none: every text is scored whole"
        elif isinstance(window_words, bool) or not isinstance(window_words, int) or window_words < 1:
            raise ConfigError(f"{name} check: window_words must be a positive number of words, {AUTO!r} or None; "
                              f"got {window_words!r}")
        else:
            self.window_source = f"{window_words} words: set"
        if stride_words is not None and (window_words is None or not 1 <= stride_words <= window_words):
            raise ConfigError(f"{name} check: stride_words {stride_words} needs 1 <= stride_words <= window_words "
                              f"({window_words})")
        self.window_words, self.stride_words = window_words, stride_words

    def windows(self, text: str) -> list[tuple[int, int]]:
        """The character ranges the classifier scores for ``text``: one window (the whole text) when
        it is no longer than ``window_words`` words or windows are off."""
        from lab.guardrails.classifier import word_windows

        clean = safe_text(text)
        if self.window_words is None:
            return [(0, len(clean))]
        return word_windows(clean, self.window_words, self.stride_words)

    def window_scores(self, texts: Sequence[str]) -> list[WindowScores | None]:
        """Per text, its windows and the classifier's score of each
        (:class:`lab.guardrails.classifier.WindowScores`; one window, the whole text, when windows
        are off); None per text without a classifier."""
        return self._scored([safe_text(t) for t in texts])

    def scores(self, texts: Sequence[str]) -> list[float]:
        """The classifier's probability for each text: the maximum over its windows (rules not
        applied); 0 without a classifier."""
        return [w.score if w is not None else 0.0 for w in self.window_scores(texts)]

    def margins(self, texts: Sequence[str]) -> list[float]:
        """Each text's score against the cut it is compared with, in log-odds (``logit(score) -
        logit(cut)``; at or above 0 the classifier fires, rules not applied): comparable across
        texts whose scores come from different models and cuts (a short text's classifier, a long
        one's window model), so ranking figures (ROC, precision-recall) stay meaningful. Without a
        window model, a monotone map of :meth:`scores` (the same curves)."""
        import math

        def logit(x: float) -> float:
            x = min(max(x, 1e-9), 1 - 1e-9)
            return math.log(x / (1 - x))

        return [logit(w.score) - logit(self.cut(w)) if w is not None else -math.inf
                for w in self.window_scores(texts)]

    def _scored(self, clean: list[str]) -> list[WindowScores | None]:
        from lab.guardrails.classifier import WindowScores, windowed_scores

        if self.model is None:
            return [None] * len(clean)
        if self.window_words is None:
            return [WindowScores([(0, len(t))], [p]) for t, p in zip(clean, self.model.scores(clean), strict=True)]
        if self.window_model is None:
            return windowed_scores(self.model.scores, clean, self.window_words, self.stride_words)
        return self._by_window_model(clean)

    def _by_window_model(self, clean: list[str]) -> list[WindowScores | None]:
        """A text of one window scored by the classifier, a longer one window by window by the
        window model, compared with its length-aware cut for that many windows."""
        from lab.guardrails.classifier import WindowScores, word_windows
        from lab.guardrails.window_model import length_cut

        spans = [word_windows(t, self.window_words, self.stride_words) for t in clean]
        short = [i for i, ws in enumerate(spans) if len(ws) == 1]
        long_ = [i for i, ws in enumerate(spans) if len(ws) > 1]
        out: list[WindowScores | None] = [None] * len(clean)
        for i, p in zip(short, self.model.scores([clean[i] for i in short]), strict=True):
            out[i] = WindowScores(spans[i], [float(p)])
        flat = [clean[i][a:b] for i in long_ for a, b in spans[i]]
        scores = [float(x) for x in self.window_model.scores(flat)] if flat else []
        k = 0
        table = self.window_model.meta["length_cut"]
        for i in long_:
            n = len(spans[i])
            out[i] = WindowScores(spans[i], scores[k:k + n], threshold=length_cut(table, n, self.window_fpr),
                                  model="window model")
            k += n
        return out

    def cut(self, ws: WindowScores | None) -> float:
        """The cut a text's score is compared with: the window model's length-aware cut for a text
        it scored, else the check's threshold."""
        return ws.threshold if ws is not None and ws.threshold is not None else self.threshold

    def _window_spans(self, ws: WindowScores | None) -> tuple[list[Span], str]:
        """The spans of the windows at or above the threshold and the words for the reason; nothing
        for a text of one window (the whole text: as before windows, no span)."""
        if ws is None or not ws.split:
            return [], ""
        a, b = ws.windows[ws.best]
        fired = ws.at_or_above(self.cut(ws))
        return ([Span(x, y, "window", s) for x, y, s in fired],
                f" (window at characters {a}-{b}; {len(fired)} of {len(ws.windows)} windows fired)")


@CHECKS.register("injection")
class Injection(WindowedClassifier):
    """Prompt injection in a user's input.

    Parameters
    ----------
    model_dir : str or None
        The trained classifier's folder; required unless ``classifier`` is False.
    rules : bool
        Use the rules as a floor.
    classifier : bool
        Use the classifier (False: rules only, for a deployment without the trained model).
    max_fpr : float or None
        Fire at the stored operating point with this out-of-fold false-positive cap (0.01, 0.02,
        0.05) instead of the model's threshold: fewer benign prompts blocked, fewer attacks caught.
    window_words : int, "auto" or None
        Score a text longer than ``window_words`` words window by window and keep the maximum
        (:class:`WindowedClassifier`); "auto" (the default): the classifier's benign training
        length; None: the whole text at once.
    stride_words : int or None
        Words between window starts (default half a window).
    operating_point : str or None
        Fire at the stored operating point of this name (``intent``: the cut of the intent rule,
        capped false positives on benign training parts; ``best_f1``); an error when the model has
        none of that name, so a policy that names one never runs a model trained without it.
    window_model : bool
        Score a text of more than one window with the window model saved beside the classifier
        (``<model_dir>/windows``, :mod:`lab.guardrails.window_model`) at its length-aware cut,
        when there is one and the windows are its own (the default); False: with the classifier
        at its threshold. ``operating_point`` sets the cut of texts of one window; ``max_fpr``
        that cut and, where it is below the window model's own target, the target of its
        length-aware cut too.
    """

    name = "injection"
    stages = frozenset({"input", "context"})
    model_name = "injection"
    rule_hits = staticmethod(rule_hits)   # the floor; a subclass names its own rules

    def __init__(self, model_dir: str | None = None, rules: bool = True, classifier: bool = True,
                 max_fpr: float | None = None, window_words: WindowWords = AUTO,
                 stride_words: int | None = None, operating_point: str | None = None,
                 window_model: bool = True) -> None:
        self.rules = rules
        self.model = None
        if classifier:
            self.model = load_classifier(self.model_name, model_dir)
        self.threshold = stored_threshold(self.model, max_fpr, operating_point) if self.model is not None else 0.5
        self.window_fpr = max_fpr
        self._set_windows(window_words, stride_words, model_dir, window_model)

    def check(self, text: str, *, context: Sequence[str] | None = None,
              schema: Mapping[str, Any] | None = None) -> Decision:
        return self.check_many([text])[0]

    def check_many(self, texts: Sequence[str]) -> list[Decision]:
        """:meth:`check` on each text, the classifier scoring all of them (all their windows) in one batch."""
        clean = [safe_text(t) for t in texts]
        return [self._decide(t, w) for t, w in zip(clean, self._scored(clean), strict=True)]

    def _rule_window(self, text: str) -> tuple[int, int] | None:
        """The first window holding a rule's match whole (None: a text of one window, or a match
        across windows)."""
        wins = self.windows(text)
        if len(wins) < 2:
            return None
        return next((w for w in wins if type(self).rule_hits(text[w[0]:w[1]])), None)

    def _decide(self, text: str, ws: WindowScores | None) -> Decision:
        p = ws.score if ws is not None else 0.0
        cut = self.cut(ws)
        hits = type(self).rule_hits(text) if self.rules else []
        signals = []
        by_model = self.model is not None and p >= cut
        if by_model:
            signals.append(f"{ws.model if ws is not None else 'classifier'} {p:.2f} >= {cut:.2f}")
        signals += [f"rule {h}" for h in hits]
        score = max(p, 1.0 if hits else 0.0)
        spans: list[Span] = []
        if by_model:
            spans, where = self._window_spans(ws)
            signals[0] += where
        elif hits and self.window_words is not None:
            at = self._rule_window(text)   # None for a text of one window: no span, as before windows
            if at is not None:
                spans.append(Span(at[0], at[1], "window", score))
                signals[0] += f" (window at characters {at[0]}-{at[1]})"
        return Decision(self.name, bool(signals), score, cut, "; ".join(signals), spans=spans)


#: Jailbreak rules (the floor): the named personas and framings of in-the-wild jailbreak prompts.
#: Each needs what makes it a jailbreak, not only its words (issue 32): "Dan" is a colleague, developer
#: mode is a phone setting, "no budget restrictions" and "stay in character as the wizard" are a
#: user's plans and games, and "two answers, a normal one and a formal one" is a writing request.
JAILBREAK_RULES: dict[str, str] = {
    # the persona's name in capitals (a person called Dan is no jailbreak), or what it stands for
    "dan_persona": r"(?-i:\bDAN\b)|\bdo anything now\b",
    # a mode of the assistant, not of a phone or a game: its name, or "enabled"/"output" after it
    "developer_mode": r"\b(?:jailbreak|jailbroken|unrestricted|unfiltered|uncensored|evil|DAN) mode\b|"
                      r"\b(?:chatgpt|gpt|ai|assistant|language model|chatbot|bot)\b[^.!?\n]{0,30}\b(?:developer|god) "
                      r"mode\b|\b(?:developer|god) mode (?:enabled|output|response|activated|persona)\b",
    # without ethics or morals, censorship or the content policy: said of anyone, that is the point
    "no_ethics": r"\b(?:without|free (?:of|from)|no|not bound by|broken? free (?:of|from)|regardless of)\b"
                 r"[^.!?\n]{0,40}?\b(?:ethics|morals|morality|moral (?:guidelines|restrictions|limits|compass|code|"
                 r"standards|boundaries|constraints)|ethical (?:or moral |and moral |and legal |or legal )?(?:guidelines|"
                 r"restrictions|limits|boundaries|constraints|standards|rules|filters|considerations|concerns|"
                 r"principles|code)|censorship|content polic(?:y|ies)|openai)\b",
    # no restrictions or filters at all, not a budget's or a word count's: nothing qualifies the noun
    # ("dietary restrictions", "restrictions on length"); :data:`JAILBREAK_REQUIRES` adds the assistant
    "no_restrictions": r"\b(?:without|free (?:of|from)|no|not bound by|broken? free (?:of|from))\s+(?:(?:any|all|the|"
                       r"its|their|your|such|of|more|further|a care for|care for|regard for|concern for|artificial|"
                       r"programming|programmed|ethical|moral|legal|content|safety|limits?|rules|filters?|restrictions|"
                       r"limitations|polic(?:y|ies))(?:,|\s+or|\s+and)?\s+)*(?:restrictions|filters|filtering|rules|"
                       r"guidelines|limitations|limits|boundaries|constraints|polic(?:y|ies))\b(?!\s+(?:on|about|for|regarding|when|in)\s+(?!(?:what|how|"
                       r"anything|any|providing|generating|saying|answering|responding|your|its)\b)\w+)",
    # :data:`JAILBREAK_REQUIRES` adds the jailbreak's words elsewhere in the text
    "stay_in_character": r"\bstay in character\b|\bbreak(?:ing)? character\b",
    # a normal answer beside a jailbroken one, not beside a formal one
    "two_responses": r"\b(?:two|2) (?:different )?(?:responses|answers|paragraphs)\b[^.!?\n]{0,80}\b(?:jailbr\w*|"
                     r"unfiltered|uncensored|unrestricted|developer mode|\w*gpt|(?-i:DAN)|[\w ]{1,20} mode output|"
                     r"(?:mode|ai|gpt) output|acting as)|\bone normal,? and one (?:with|from|as|acting as)\b[^.!?\n]{0,30}"
                     r"\b(?:output|mode)\b",
}
#: A rule named here fires only when the text also holds this pattern (anywhere): a role-play
#: game says "stay in character" too; a jailbreak says why (the policy, the filters, refusing).
JAILBREAK_REQUIRES: dict[str, str] = {
    "no_restrictions": r"\b(?:ai|a\.i\.|chatgpt|\w*gpt|chatbot|bot|assistant|language model|llm|openai|persona|"
                       r"character|jailbr\w*)\b|\byou(?:'re| are| have| will have)\s+(?:absolutely\s+|now\s+)?"
                       r"(?:no|without|free of)\b",
    "stay_in_character": r"openai|content polic|\bpolic(?:y|ies)\b|guidelines|filter|censor|\bethic|\bmoral|refus|"
                         r"restrict|jailbr|illegal|unethical|no matter what|never (?:say|refuse|deny|decline)|"
                         r"can'?t do|cannot do|declin\w* any|as an ai|language model|chatgpt|(?-i:\bDAN\b)|break the rules|no rules|"
                         r"any rules|without (?:any )?limit|nsfw|swear",
}
_JB_COMPILED = {k: re.compile(v, re.IGNORECASE) for k, v in JAILBREAK_RULES.items()}
_JB_REQUIRES = {k: re.compile(v, re.IGNORECASE) for k, v in JAILBREAK_REQUIRES.items()}


def jailbreak_rule_hits(text: str) -> list[str]:
    """Names of the jailbreak rules that match ``text`` (with what :data:`JAILBREAK_REQUIRES` asks of it)."""
    return [name for name, rx in _JB_COMPILED.items()
            if rx.search(text) and (name not in _JB_REQUIRES or _JB_REQUIRES[name].search(text))]


@CHECKS.register("jailbreak")
class Jailbreak(Injection):
    """A jailbreak attempt (role-play personas, "developer mode", requests to drop the rules): a
    classifier trained on in-the-wild jailbreak prompts against benign prompts, with the named rules
    of :data:`JAILBREAK_RULES` as a floor. Same parameters as :class:`Injection`."""

    name = "jailbreak"
    model_name = "jailbreak"
    rule_hits = staticmethod(jailbreak_rule_hits)


@CHECKS.register("toxicity")
class Toxicity(WindowedClassifier):
    """Toxic or offensive text (inputs, or outputs before they reach a user): a classifier trained on
    labelled comments (:mod:`lab.guardrails.classifier`; the shared Davidson et al. tweets, hate
    speech and offensive language counted as toxic). No rules: a word list would flag quotations,
    reclaimed words and discussions of slurs alike.

    Parameters
    ----------
    model_dir : str or None
        The trained classifier's folder (required).
    max_fpr : float or None
        As for :class:`Injection`: the stored operating point with this false-positive cap.
    window_words, stride_words : int, "auto" or None
        As for :class:`Injection`: windows over a long text, the maximum kept.
    window_model : bool
        As for :class:`Injection`: a long text scored by the window model, when there is one.
    """

    name = "toxicity"
    stages = frozenset({"input", "context", "output"})
    model_name = "toxicity"

    def __init__(self, model_dir: str | None = None, max_fpr: float | None = None,
                 window_words: WindowWords = AUTO, stride_words: int | None = None,
                 window_model: bool = True) -> None:
        self.model = load_classifier(self.model_name, model_dir)
        self.threshold = stored_threshold(self.model, max_fpr)
        self.window_fpr = max_fpr
        self._set_windows(window_words, stride_words, model_dir, window_model)

    def check(self, text: str, *, context: Sequence[str] | None = None,
              schema: Mapping[str, Any] | None = None) -> Decision:
        return self.check_many([text])[0]

    def check_many(self, texts: Sequence[str]) -> list[Decision]:
        """:meth:`check` on each text, scored in one batch."""
        return [self._decide(w) for w in self._scored([safe_text(t) for t in texts])]

    def _decide(self, ws: WindowScores | None) -> Decision:
        assert ws is not None   # toxicity always has a classifier
        p, cut = ws.score, self.cut(ws)
        fired = p >= cut   # compared once: the verdict and its reason cannot disagree
        reason, spans = "", []
        if fired:
            spans, where = self._window_spans(ws)
            reason = f"{ws.model} {p:.2f} >= {cut:.2f}" + where
        return Decision(self.name, fired, p, cut, reason, spans=spans)
