"""PII types beyond Presidio's defaults, and when a place, a nationality or an age is personal data.

Presidio's default recognisers (with spaCy's NER) find no street address, no postal code and no
age, and report every place name (spaCy's GPE/LOC/FAC) as ``LOCATION`` and every nationality or
religion adjective (NORP) as ``NRP``, whatever it describes. So "I flew to Paris" is PII to it,
and "42 Maple Street, Springfield, IL 62704" comes out as a LOCATION, another LOCATION and an
ORGANIZATION. This module adds, as Presidio recognisers (:func:`recognizers`):

``STREET_ADDRESS``  a postal address: house number, street name and a street suffix (or a PO box),
                    with what follows it on the same line (unit, town, state, ZIP or UK postcode)
                    as one span; the name presidio-research gives the type (Presidio has none)
``US_ZIP_CODE``     a US ZIP code (5 digits, or ZIP+4): weak alone (any five digits), so it counts
                    after a state abbreviation or with a context word (zip, postal, address...);
                    the country prefix as in Presidio's own ``UK_POSTCODE`` and ``DE_PLZ``
``UK_POSTCODE``     Presidio's own recogniser (disabled in its default set), enabled
``AGE``             a person's age, the number only ("34" in "34 years old", "aged 34", "age: 34")

and :func:`resolve`, which runs on the analyser's spans:

0. a number in apposition to a name ("Ana Lima, 34, ...", "Ana Lima (34)") is an AGE;
1. a postal address, code or age at or above the threshold wins over the NER spans that overlap it
   (spaCy reads "IL 62704" as an organisation, "94107" and "34 years old" as dates, the town of
   an address as a place): they are parts of the structured entity, not entities of their own;
2. ``LOCATION``, ``NRP`` and ``AGE`` are personal data only when they are about a person: where
   someone lives, was born or comes from, someone's nationality or faith, someone's age. A place
   name in a trip, a trivia question or the news ("I flew to Paris", "the French government",
   "the bridge is 130 years old") identifies no one, and flagging it redacts half of an ordinary
   question. Without such a tie (:func:`personal`) their score is multiplied by
   :data:`UNTIED_FACTOR`, which puts spaCy's 0.85 below every pattern's score; they stay
   in :meth:`lab.guardrails.pii.PII.find` with that score, so a lower threshold still gets them.
   A LOCATION holding a digit is left alone: it is an address (a fine-tuned NER reports whole
   addresses as LOCATION, :mod:`lab.guardrails.pii_ner`).

The tie is read from the words before the span in its sentence (and, for NRP, the word after):
word lists, not a model, so it is fast, explainable and wrong in the cases the lists miss
("my car is 5 years old" is kept; "Springfield, where Ana spent her childhood" is not tied).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from lab.guardrails.base import Span

#: The entity types this module adds to Presidio's default set (what ``recognizers="presidio"``
#: of the PII check leaves out).
LAB_ENTITIES = ("STREET_ADDRESS", "US_ZIP_CODE", "UK_POSTCODE", "AGE")
#: Types found by a pattern that beat an overlapping NER span (step 1 of :func:`resolve`).
STRUCTURED = frozenset({"STREET_ADDRESS", "US_ZIP_CODE", "UK_POSTCODE", "AGE"})
#: Types the NER reports (spaCy through Presidio's mapping).
NER_TYPES = frozenset({"PERSON", "LOCATION", "ORGANIZATION", "DATE_TIME", "NRP"})
#: Types that are personal data only when tied to a person (step 2 of :func:`resolve`).
PERSON_TIED = frozenset({"LOCATION", "NRP", "AGE"})
#: Score multiplier of a person-tied type found without a tie: spaCy's 0.85 becomes 0.04, under
#: the weakest pattern score of :func:`recognizers` (0.05, five digits as a ZIP code), so that a
#: threshold low enough to keep such guesses still leaves out places not tied to anyone.
UNTIED_FACTOR = 0.05
#: How many words before a span (in its sentence) may hold the word that ties it to a person.
WINDOW = 6

# ------------------------------------------------------------------ street addresses and codes

#: Street suffixes: USPS Publication 28 (appendix C1: the primary names, their plurals where listed,
#: and the common abbreviations) and British ones. A street name must be capitalised before one.
STREET_SUFFIXES = (
    "Alley", "Aly", "Annex", "Arcade", "Avenue", "Ave", "Av", "Bayou", "Beach", "Bend", "Bluff", "Bluffs", "Bottom",
    "Boulevard", "Blvd", "Branch", "Bridge", "Brook", "Brooks", "Burg", "Bypass", "Byp", "Camp", "Canyon", "Cape",
    "Causeway", "Cswy", "Center", "Centre", "Ctr", "Circle", "Cir", "Circles", "Cliff", "Cliffs", "Club", "Common",
    "Commons", "Corner", "Corners", "Course", "Court", "Ct", "Courts", "Cove", "Cv", "Creek", "Crk", "Crescent",
    "Cres", "Crest", "Crossing", "Xing", "Crossroad", "Curve", "Dale", "Dam", "Divide", "Drive", "Dr", "Drives",
    "Estate", "Estates", "Expressway", "Expy", "Extension", "Ext", "Falls", "Ferry", "Field", "Fields", "Flat",
    "Flats", "Ford", "Forest", "Forge", "Fork", "Forks", "Fort", "Freeway", "Fwy", "Garden", "Gardens", "Gdns",
    "Gateway", "Glen", "Green", "Grove", "Grv", "Harbor", "Harbour", "Haven", "Heights", "Hts", "Highway", "Hwy",
    "Hill", "Hills", "Hollow", "Inlet", "Island", "Isle", "Junction", "Jct", "Key", "Knoll", "Knolls", "Lake",
    "Lakes", "Landing", "Lane", "Ln", "Light", "Lock", "Lodge", "Loop", "Mall", "Manor", "Meadow", "Meadows",
    "Mews", "Mill", "Mills", "Mission", "Motorway", "Mount", "Mountain", "Neck", "Orchard", "Oval", "Overpass",
    "Park", "Parks", "Parkway", "Pkwy", "Pass", "Passage", "Path", "Pike", "Pine", "Pines", "Place", "Pl",
    "Plain", "Plains", "Plaza", "Plz", "Point", "Pt", "Points", "Port", "Prairie", "Radial", "Ramp", "Ranch",
    "Rapids", "Rest", "Ridge", "Rdg", "River", "Road", "Rd", "Roads", "Route", "Rte", "Row", "Rue", "Run",
    "Shoal", "Shore", "Shores", "Skyway", "Spring", "Springs", "Spur", "Spurs", "Square", "Sq", "Station", "Sta",
    "Stravenue", "Stream", "Street", "St", "Streets", "Summit", "Terrace", "Ter", "Throughway", "Trace", "Track",
    "Trafficway", "Trail", "Trl", "Tunnel", "Turnpike", "Tpke", "Underpass", "Union", "Valley", "Viaduct", "View",
    "Views", "Village", "Vlg", "Ville", "Vista", "Walk", "Walks", "Wall", "Way", "Ways", "Well", "Wells",
    # British
    "Close", "Embankment", "Esplanade", "Parade", "Quay", "Wharf", "Wynd", "Gate", "Yard", "Broadway",
)
#: US state and territory abbreviations (USPS).
US_STATES = (
    "AL", "AK", "AZ", "AR", "CA", "CO", "CT", "DE", "DC", "FL", "GA", "HI", "ID", "IL", "IN", "IA", "KS", "KY",
    "LA", "ME", "MD", "MA", "MI", "MN", "MS", "MO", "MT", "NE", "NV", "NH", "NJ", "NM", "NY", "NC", "ND", "OH",
    "OK", "OR", "PA", "RI", "SC", "SD", "TN", "TX", "UT", "VT", "VA", "WA", "WV", "WI", "WY", "PR", "GU", "VI",
)
_UK_POSTCODE = (r"(?:GIR ?0AA|[A-PR-UWYZ](?:[0-9][A-HJKPSTUW]?|[0-9]{2}|[A-HK-Y][0-9][ABEHMNPRVWXY]?"
                r"|[A-HK-Y][0-9]{2}) ?[0-9][ABD-HJLNP-UW-Z]{2})")
_ZIP = r"\d{5}(?:-\d{4})?"
_STATE = "(?:" + "|".join(US_STATES) + ")"
# a capitalised word of a name (Unicode letters; "O'Neil", "St.", "Saint-Denis"), or an ordinal
_NAME = r"(?:[A-Z][\w'’.-]*|\d{1,3}(?:st|nd|rd|th))"
_STREET = (r"(?<![\w$£€.,-])(?:(?:Flat|Apartment|Apt|Unit|Suite)\.?\s+[\w-]{1,5},?\s+)?"   # "Flat 3, "
           r"(?:\d{1,6}[A-Za-z]?(?:[-/]\d{1,4}[A-Za-z]?)?\s+(?:" + _NAME + r"\s+){1,4}"       # "12B Old Mill "
           r"(?:" + "|".join(STREET_SUFFIXES) + r")\b\.?(?:\s+(?:NW|NE|SW|SE|N|S|E|W)\b)?"      # "Road NW"
           r"|P\.?\s?O\.?\s+Box\s+\d{1,6})")
_UNIT = (r"(?:,?\s+(?:Apt|Apartment|Suite|Ste|Unit|Flat|Floor|Fl|Room|Rm|Bldg|Building)\.?\s*#?\s*[\w-]{1,6}"
         r"|,?\s*#\s*\d{1,5}[A-Za-z]?)?")
_CITY = r"[A-Z][\w'’.-]*(?:[ -][A-Z][\w'’.-]*){0,2}"
#: A full postal address: street line, unit, optionally the town, then a state, ZIP or postcode.
ADDRESS_FULL = (_STREET + _UNIT + r"(?:,\s*" + _CITY + r")?"
                r"(?:,?\s+" + _STATE + r"\b(?:,?\s+" + _ZIP + r")?|,?\s+" + _ZIP + r"|,?\s+" + _UK_POSTCODE + r")"
                r"(?![\w-])")
#: A street line alone, with its unit and, when the sentence ends there, its town.
ADDRESS_STREET = _STREET + _UNIT + r"(?:,\s*" + _CITY + r"(?=\s*(?:[.!?;)\n]|$)))?"
#: ZIP codes: after a state abbreviation (strong), or any 5 digits / ZIP+4 (weak: context decides).
ZIP_AFTER_STATE = r"(?<=\b" + _STATE + r",?\s{1,2})" + _ZIP + r"(?![\w-])"
ZIP_ANY = r"(?<![\w$£€.,/-])" + _ZIP + r"(?![\w/-]|[.,]\d)"

# ------------------------------------------------------------------ ages

#: Person nouns a number in apposition to is an age ("our daughter, 9, starts school").
APPOSITION_NOUNS = ("son", "daughter", "child", "kid", "baby", "boy", "girl", "husband", "wife", "partner",
                    "mother", "father", "mom", "mum", "dad", "brother", "sister", "grandson", "granddaughter",
                    "grandmother", "grandfather", "patient", "client", "tenant", "applicant", "victim", "suspect")
#: Age patterns: the span is the number alone, the words around it are look-arounds.
AGE_PATTERNS = (
    ("age label", r"(?<=\b(?i:age)\s*[:=]\s*)\d{1,3}\b", 0.7),
    ("age N", r"(?<=\b(?i:age)\s+)\d{1,3}\b(?!\s*(?:%|percent|years? ago))", 0.5),
    ("aged N", r"(?<=\b(?i:aged)\s+)\d{1,3}\b(?!\s*(?:%|percent|years? ago))", 0.6),
    ("N years old", r"(?<![\w.,])\d{1,3}(?=(?:\s+|-)(?:years?|yrs?|yo)(?:\s+|-)old\b|\s*(?:yo|y/o)\b)", 0.5),
    ("turned N", r"(?<=\b(?i:turned|turns|turning|just turned)\s+)\d{1,3}\b(?!\s*(?:%|percent|degrees))", 0.4),
    ("I am N", (r"(?<=\b(?:I am|I'm|I’m|(?i:he|she) is|(?i:he|she)['’]s|(?i:they|we) are)\s+"
                r"(?:now\s+|only\s+|almost\s+)?)\d{1,3}(?=\s*(?:[.,;!?]|$|\band\b|\byears\b))"), 0.4),
    # "my daughter, 9, ...", "her husband (52)": a number in apposition to a person noun
    ("person noun, N", (r"(?<=\b(?i:" + "|".join(sorted(APPOSITION_NOUNS)) + r")(?:\s*,\s*(?:now\s+|aged\s+)?|\s+\())"
                        r"\d{1,3}(?=\s*[,)])"), 0.5),
)

#: Context words for Presidio's context enhancer (substring match on lemmas, 5 words before).
ADDRESS_CONTEXT = ["address", "live", "reside", "ship", "deliver", "mail", "post", "send", "home", "move"]
ZIP_CONTEXT = ["zip", "postal", "postcode", "mailing", "address"]


def recognizers() -> list[Any]:
    """The Presidio recognisers for :data:`LAB_ENTITIES` (English)."""
    from presidio_analyzer import Pattern, PatternRecognizer
    from presidio_analyzer.predefined_recognizers import UkPostcodeRecognizer

    class AgeRecognizer(PatternRecognizer):
        """A person's age, 0 to 120."""

        def validate_result(self, pattern_text: str) -> bool | None:
            # None keeps the pattern's score (True would raise it to 1.0)
            return None if int(pattern_text) <= 120 else False

    case = re.MULTILINE   # case matters: a street name is capitalised, a state abbreviation upper case
    return [
        PatternRecognizer("STREET_ADDRESS", name="LabStreetAddressRecognizer", context=ADDRESS_CONTEXT,
                          patterns=[Pattern("street address with town, state or code", ADDRESS_FULL, 0.75),
                                    Pattern("street address", ADDRESS_STREET, 0.55)],
                          global_regex_flags=case),
        PatternRecognizer("US_ZIP_CODE", name="LabUsZipCodeRecognizer", context=ZIP_CONTEXT,
                          patterns=[Pattern("ZIP after a state", ZIP_AFTER_STATE, 0.5),
                                    Pattern("ZIP+4", r"(?<![\w$.,/-])\d{5}-\d{4}(?![\w/-])", 0.1),
                                    Pattern("5 digits", ZIP_ANY, 0.05)],
                          global_regex_flags=case),
        # Presidio's, with single words for its multi-word context ("postal code" is two tokens,
        # and its enhancer compares one token at a time)
        UkPostcodeRecognizer(context=ZIP_CONTEXT + ["post", "delivery", "shipping", "correspondence"]),
        AgeRecognizer("AGE", name="LabAgeRecognizer",
                      patterns=[Pattern(n, rx, s) for n, rx, s in AGE_PATTERNS], global_regex_flags=case),
    ]


# ------------------------------------------------------------------ ties to a person

_PRONOUNS = {"i", "me", "my", "mine", "he", "him", "his", "she", "her", "hers", "they", "them", "their", "we",
             "our", "us", "you", "your", "i'm", "he's", "she's", "they're", "we're", "you're", "myself",
             "himself", "herself"}
_BE = {"am", "is", "are", "was", "were", "'m", "'s", "i'm", "he's", "she's", "they're", "we're", "you're",
       "be", "been", "being"}
#: Nouns for people: an age or nationality next to one is a person's.
PERSON_NOUNS = {
    "man", "woman", "men", "women", "boy", "girl", "guy", "lady", "person", "child", "kid", "baby", "son",
    "daughter", "mother", "father", "mom", "mum", "dad", "wife", "husband", "brother", "sister", "grandson",
    "granddaughter", "grandmother", "grandfather", "grandma", "grandpa", "aunt", "uncle", "niece", "nephew",
    "cousin", "friend", "colleague", "neighbour", "neighbor", "partner", "patient", "client", "customer",
    "student", "applicant", "employee", "tenant", "citizen", "national", "immigrant", "expat", "voter",
    "member", "resident", "passenger", "candidate", "victim", "suspect", "driver", "teenager", "toddler",
    "infant", "fiance", "fiancee", "boyfriend", "girlfriend", "spouse", "parent", "twins", "twin",
    "family", "couple", "nurse", "doctor", "engineer", "teacher", "worker", "officer",
}
#: Words that tie a place to a person (where one lives, was born, grew up, moved to).
LOCATION_TIES = {
    "live", "lives", "living", "lived", "reside", "resides", "resided", "residing", "resident", "residence",
    "home", "hometown", "address", "born", "birthplace", "raised", "grew", "moved", "move", "moving",
    "relocated", "relocating", "domiciled", "settled", "stay", "staying", "native",
}
#: Words that tie a nationality, religion or political group to a person.
NRP_TIES = {
    "nationality", "national", "citizen", "citizenship", "passport", "ethnicity", "ethnic", "ethnically",
    "descent", "heritage", "origin", "religion", "religious", "faith", "devout", "practising", "practicing",
    "convert", "converted", "identify", "identifies", "identified", "raised", "born", "registered",
    "voter", "voted", "vote", "supporter", "member",
}
#: Words after a nationality that make it a person's ("a Brazilian citizen", "her Irish passport").
NRP_AFTER = PERSON_NOUNS | {"citizenship", "passport", "nationality", "descent", "heritage", "origin", "roots"}
#: Words that tie an age to a person (the age patterns' own cue words included).
AGE_TIES = _PRONOUNS | PERSON_NOUNS | {"age", "aged", "turned", "turns", "birthday"}
#: Words skipped between a form of "be" and a nationality ("she is a proud Kenyan").
_FILLERS = {"a", "an", "proud", "proudly", "also", "originally", "half", "fully", "both"}
_YEARS_OLD = re.compile(r"(?:\s+|-)(?:years?|yrs?)(?:\s+|-)old")
_WORD = re.compile(r"\w+(?:['’]\w+)?|['’]\w+")
_SENTENCE_END = re.compile(r"[.!?\n;]\s|\n")


def _sentence_words(text: str, start: int) -> list[str]:
    """The words before ``start`` in its sentence, as written."""
    head = text[:start]
    begin = max((m.end() for m in _SENTENCE_END.finditer(head)), default=0)
    return [w.replace("’", "'") for w in _WORD.findall(head[begin:])]


def _word_after(text: str, end: int) -> str:
    m = _WORD.match(text, len(text) - len(text[end:].lstrip(" ")))
    return m.group(0).lower() if m else ""


def _predicate_of_someone(words: Sequence[str]) -> bool:
    """Whether ``words`` (before a span) end in "<pronoun or name> is (a)": "Maria is", "I am a",
    "she's" (a capitalised subject counts as a name; "Pizza is Italian" passes too)."""
    tail = [w for w in words if w.lower() not in _FILLERS]
    if not tail or tail[-1].lower() not in _BE:
        return False
    if tail[-1].lower() in _PRONOUNS:          # "i'm", "she's"
        return True
    subject = tail[-2] if len(tail) >= 2 else ""
    return subject.lower() in _PRONOUNS or subject[:1].isupper()


#: What may stand between a name or an age and the next item of a list describing that person
#: ("Grace Walsh, 88 years old, Danish").
_LIST_GAP = re.compile(r"(?:\s*(?:years?|yrs?)[\s-]*old)?\s*[,;/]\s*")


def _listed_after(text: str, span: Span, anchors: Sequence[Span]) -> bool:
    return any(a.end <= span.start and _LIST_GAP.fullmatch(text, a.end, span.start) for a in anchors)


def personal(text: str, span: Span, anchors: Sequence[Span] = ()) -> bool:
    """Whether ``span`` (a LOCATION, NRP or AGE) is tied to a person in ``text``: a tie word
    among the :data:`WINDOW` words before it in its sentence (:data:`LOCATION_TIES`,
    :data:`NRP_TIES`; :data:`AGE_TIES` among twice as many); for a place also "<someone>
    is/comes from X"; for a nationality also "<pronoun or name> is (a) X" and "X <person noun>"
    ("a Brazilian citizen") and an item in a list after a name or an age ("Ana Lima, 34,
    Danish"); for an age also a person's name earlier in its sentence, "<name> is (a) N" and
    "N-year-old <person noun>". ``anchors``: the PERSON and AGE spans found. Any other type is
    personal."""
    words = _sentence_words(text, span.start)
    before = [w.lower() for w in words[-WINDOW:]]
    if span.label == "LOCATION":
        if any(w in LOCATION_TIES for w in before):
            return True
        # "I'm from Lisbon", "she is originally from Lima", "he comes from Oslo"
        tail = [w for w in before if w != "originally"]
        return len(tail) >= 2 and tail[-1] == "from" and tail[-2] in _BE | {"come", "comes", "came", "hails"}
    if span.label == "NRP":
        return (any(w in NRP_TIES for w in before) or _word_after(text, span.end) in NRP_AFTER
                or _predicate_of_someone(words) or _listed_after(text, span, anchors))
    if span.label == "AGE":
        begin = max((m.end() for m in _SENTENCE_END.finditer(text[:span.start])), default=0)
        if any(a.label == "PERSON" and begin <= a.start and a.end <= span.start for a in anchors):
            return True
        after = _YEARS_OLD.match(text, span.end)
        return (any(w.lower() in AGE_TIES for w in words[-2 * WINDOW:]) or _predicate_of_someone(words)
                or (after is not None and _word_after(text, after.end()) in PERSON_NOUNS))
    return True


#: An age right after a name: "Ana Lima, 34, ...", "Ana Lima, now 88, ...", "Ana Lima (34)".
_AGE_AFTER_NAME = re.compile(r"\s*(?:,\s*(?:now\s+|aged\s+)?|\()(\d{1,3})(?=\s*[,)])")
#: The score of an age found after a name (as an age pattern without context).
AGE_AFTER_NAME_SCORE = 0.5


def _ages_after_names(text: str, persons: Sequence[Span]) -> list[Span]:
    out = []
    for p in persons:
        m = _AGE_AFTER_NAME.match(text, p.end)
        if m and int(m.group(1)) <= 120:
            out.append(Span(m.start(1), m.end(1), "AGE", AGE_AFTER_NAME_SCORE))
    return out


def resolve(text: str, spans: Sequence[Span], threshold: float) -> list[Span]:
    """The analyser's ``spans`` of ``text`` with ages in apposition to a name added ("Ana Lima,
    34, ..."), structured entities winning over the NER spans they overlap, and person-tied
    types untied from any person demoted (module docstring); in text order."""
    persons = [s for s in spans if s.label == "PERSON" and s.score >= threshold]
    spans = list(spans) + [a for a in _ages_after_names(text, persons)
                           if not any(o.label == "AGE" and o.start <= a.start and a.end <= o.end for o in spans)]
    anchors = persons + [s for s in spans if s.label == "AGE" and s.score >= threshold]
    tied = []
    for s in spans:
        if s.label in PERSON_TIED and not (s.label == "LOCATION" and any(c.isdigit() for c in text[s.start:s.end])) \
                and not personal(text, s, anchors):
            s = Span(s.start, s.end, s.label, s.score * UNTIED_FACTOR)
        tied.append(s)
    strong = [s for s in tied if s.label in STRUCTURED and s.score >= threshold]
    # an NER span overlapping a reported address, code or age is a piece of it ("IL 62704" as an
    # organisation, "34 years old" as a date, an address's town as a place)
    kept = [s for s in tied if not (s.label in NER_TYPES and any(o.start < s.end and s.start < o.end for o in strong))]
    # a weaker span inside a postal address is part of it (its ZIP code)
    kept = [s for s in kept if not any(o is not s and o.label == "STREET_ADDRESS" and o.score >= s.score
                                       and o.start <= s.start and s.end <= o.end for o in kept)]
    return sorted(kept, key=lambda s: (s.start, -s.end))
