"""Judge training data without shortcuts (issue 31 item 2): planted errors change exactly one claim and
say where, labels by construction, the same seed gives the same data, length stays balanced, the
builder drops what it cannot label and resumes where it stopped, and training sources only."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import pytest

from lab.data.halueval import read_judged
from lab.errors import ConfigError, DataError
from lab.generate.base import Generation, GenerationError
from lab.judge.claims import split_claims
from lab.judge.faithful_data import (
    GeneratorWriter,
    check_answer,
    clean,
    copied_share,
    cut_to_sentence,
    make_data,
    resume_state,
    sidecars,
)
from lab.judge.faithful_sources import Source, check_training_path, jsonl_sources, squad_sources
from lab.judge.paraphrase import rule_paraphrase
from lab.judge.perturb import KINDS, Perturber, words

PASSAGES = (
    ("The Normans were the people who in the 10th and 11th centuries gave their name to Normandy, a region in "
     "France. They were descended from Norse raiders from Denmark, Iceland and Norway who, under their leader "
     "Rollo, agreed to swear fealty to King Charles III of West Francia in 911."),
    ("The Norman dynasty had a major political, cultural and military impact on medieval Europe. In 1066 "
     "William conquered England with about 7,000 men. The conquest was not welcomed by the English nobility."),
)
OTHERS = (
    ("Genghis Khan founded the Mongol Empire in 1206 after uniting the nomadic tribes of Northeast Asia. "
     "His grandson Kublai Khan established the Yuan dynasty in China. The empire reached from Korea to Hungary."),
)
ANSWER = ("The Normans were a people who gave their name to Normandy, a region in France, in the 10th and 11th "
          "centuries. They descended from Norse raiders from Denmark, Iceland and Norway. Under their leader Rollo, "
          "they swore fealty to King Charles III of West Francia in 911. The Norman dynasty had a major impact on "
          "medieval Europe. In 1066 William conquered England with about 7,000 men.")
ADDED = " after a long siege near the Danube"


def _add(claim: str, passages) -> str:
    """A fake generator's addition: the claim with an unsupported detail before its full stop."""
    return claim[:-1] + ADDED + "."


@pytest.fixture(scope="module")
def perturber() -> Perturber:
    return Perturber(add=_add)   # spaCy's small English pipeline from the model store (13 MB)


def _check_one_claim_changed(before: str, got) -> None:
    old = [c.text for c in split_claims(before)]
    new = [c.text for c in split_claims(got.answer)]
    assert got.answer[got.start:got.end] == got.claim and got.claim in new and got.before in old
    assert got.claim not in old
    k = new.index(got.claim)
    assert split_claims(got.answer)[k].start == got.start and split_claims(got.answer)[k].end == got.end
    rest = new[:k] + new[k + 1:]
    if got.kind == "addition":   # one other claim left out to keep the length
        assert got.detail["left_out"] in old and got.detail["left_out"] not in new
        old = [c for c in old if c != got.detail["left_out"]]
    i = old.index(got.before)
    assert rest == old[:i] + old[i + 1:], "every other claim stays as it was"


@pytest.mark.parametrize("kind", KINDS)
def test_each_kind_changes_exactly_one_claim_and_its_span_is_that_claim(perturber, kind):
    for seed in range(4):
        got = perturber.perturb(ANSWER, kind, passages=PASSAGES, others=OTHERS, rng=random.Random(seed))
        assert got is not None and got.kind == kind
        _check_one_claim_changed(ANSWER, got)
        context = "\n".join(PASSAGES)
        if kind in ("number", "date"):
            assert got.detail["to"] not in context and got.detail["from"] in got.before
            assert got.claim == got.before.replace(got.detail["from"], got.detail["to"], 1)
        elif kind == "entity":
            assert got.detail["from"] in got.before and got.detail["to"] in got.claim
            assert got.detail["to"] not in got.before
        elif kind == "other_passage":
            assert got.claim in OTHERS[0]
        elif kind == "negation":
            assert " not " in got.claim and " not " not in got.before
        else:
            assert got.claim == got.before[:-1] + ADDED + "."
        assert abs(words(got.answer) - words(ANSWER)) <= max(3, 0.1 * words(ANSWER)), "length balanced"


def test_negation_removes_a_negation_and_numbers_in_words_change(perturber):
    answer = ("The conquest was not welcomed by the English nobility at all. William conquered England with "
              "about seven thousand men.")
    got = perturber.perturb(answer, "negation", passages=PASSAGES, rng=random.Random(0))
    assert got is not None and "not" not in got.claim.split()
    _check_one_claim_changed(answer, got)
    num = perturber.perturb(answer, "number", passages=PASSAGES, rng=random.Random(0))
    assert num is not None and num.detail["from"] == "seven" and num.detail["to"] != "seven"


def test_the_same_seed_gives_the_same_perturbation(perturber):
    for kind in KINDS:
        a = perturber.perturb(ANSWER, kind, passages=PASSAGES, others=OTHERS, rng=random.Random(7))
        b = perturber.perturb(ANSWER, kind, passages=PASSAGES, others=OTHERS, rng=random.Random(7))
        assert a == b
    changed = {perturber.perturb(ANSWER, "number", passages=PASSAGES, rng=random.Random(s)).claim for s in range(8)}
    assert len(changed) > 1, "the seed chooses"


def test_a_kind_with_nothing_to_change_is_not_applicable_and_unknown_kinds_fail(perturber):
    plain = "The Normans lived in the north of France. They spoke a Romance language there. They farmed the land."
    assert perturber.perturb(plain, "number", passages=PASSAGES, rng=random.Random(0)) is None
    assert perturber.perturb(plain, "date", passages=PASSAGES, rng=random.Random(0)) is None
    assert perturber.perturb(plain, "other_passage", passages=PASSAGES, others=(), rng=random.Random(0)) is None
    with pytest.raises(ConfigError, match="unknown perturbation 'typo'"):
        perturber.perturb(plain, "typo", passages=PASSAGES, rng=random.Random(0))


def test_without_a_generator_the_addition_appends_a_clause_of_another_passage(perturber):
    rule = Perturber(nlp=perturber.nlp)
    got = rule.perturb(ANSWER, "addition", passages=PASSAGES, others=OTHERS, rng=random.Random(0))
    assert got is not None and got.detail["source"] == "other passage" and ", and " in got.claim
    _check_one_claim_changed(ANSWER, got)


def test_an_entity_swap_keeps_the_possessive(perturber):
    answer = ("The logo was revamped in 2013 by LoyalKaspar for the network. Its lettering resembles Paul Rand's "
              "original version of the circle logo. The design is simpler than before.")
    passages = ("In 2013 LoyalKaspar revamped the logo; its lettering resembles Paul Rand's original version.",
                "Dick Clark produced shows for the network for decades.")
    for seed in range(6):
        got = perturber.perturb(answer, "entity", passages=passages, rng=random.Random(seed))
        if got is not None and got.detail["from"] == "Paul Rand":
            assert got.claim == got.before.replace("Paul Rand", got.detail["to"]) and "'s " in got.claim
            assert not got.detail["to"].endswith("'s")
            return
    pytest.fail("no seed swapped Paul Rand")


def test_the_rule_paraphrase_rewords_and_reorders_but_keeps_names_and_numbers():
    answer = ("In 1066 William conquered England with approximately 7,000 men. The invasion began in September. "
              "Harold's army was significantly weakened by an earlier battle. William was crowned at Westminster. "
              "However, revolts continued for years.")
    got = rule_paraphrase(answer, random.Random(0))
    assert got is not None and got != answer
    assert "about 7,000" in got and "started in September" in got and "notably weakened" in got
    assert "Yet, revolts" in got and "However" not in got
    assert sorted(re.findall(r"[A-Z]\w+|\d[\d,]*", got.replace("Yet", "However"))) == \
        sorted(re.findall(r"[A-Z]\w+|\d[\d,]*", answer)), "every name and number kept"
    assert got == rule_paraphrase(answer, random.Random(0))
    assert rule_paraphrase("The Normans lived in Normandy. They farmed.", random.Random(0)) is None
    assert rule_paraphrase("The Approximately Company sold hats to Usually Ltd in 1900. It grew.",
                           random.Random(0)) is None, "capitalised words inside a sentence are names"


# ------------------------------------------------------------------------------- answers, checks


def test_clean_and_checks_say_why_an_answer_cannot_be_labelled_faithful(perturber):
    assert clean('Answer: "The Normans [1] came from Norway [1, 2].  They  settled."') == \
        "The Normans came from Norway. They settled."
    assert cut_to_sentence("One sentence. Two sentences and a cut") == "One sentence."
    assert copied_share(ANSWER, ANSWER) == 1.0 and copied_share(PARAPHRASE, ANSWER) < 0.5
    nlp = perturber.nlp
    assert check_answer(ANSWER, PASSAGES, nlp, min_words=20) is None
    assert check_answer("", PASSAGES, nlp) == "empty"
    assert check_answer("- a list\n- of items", PASSAGES, nlp) == "list_or_markup"
    assert check_answer(ANSWER, PASSAGES, nlp, min_words=80) == "too_short"
    assert check_answer(ANSWER, PASSAGES, nlp, min_words=5, max_words=30) == "too_long"
    assert check_answer(ANSWER.replace("7,000", "9,000"), PASSAGES, nlp, min_words=20) == "unsupported_fact"
    assert check_answer(ANSWER.replace("Rollo", "Napoleon"), PASSAGES, nlp, min_words=20) == "unsupported_fact"
    added = ANSWER + " The dynasty is a charitable foundation that funds scholarships for young musicians."
    assert check_answer(added, PASSAGES, nlp, min_words=20) is None, "claims are not checked by default"
    assert check_answer(added, PASSAGES, nlp, min_words=20, min_claim_support=0.5) == "unsupported_claim"
    assert check_answer(ANSWER, PASSAGES, nlp, min_words=20, min_claim_support=0.5) is None


PARAPHRASE = ("In the 10th and 11th centuries the Normans lent their name to Normandy, a region of France. Their "
              "ancestors were Norse raiders who came from Denmark, Iceland and Norway. Led by Rollo, they pledged "
              "fealty in 911 to King Charles III of West Francia. Medieval Europe felt the Norman dynasty's strong "
              "influence. With about 7,000 men, William conquered England in 1066.")


class ScriptedBackend:
    """A fake generator: a faithful answer per question (``answers``), the paraphrase, the addition;
    counts the answers it wrote per question."""

    name = "scripted"

    def __init__(self, answers: dict[str, str], fail: tuple[str, ...] = ()) -> None:
        self.answers = answers
        self.fail = fail
        self.asked: list[str] = []

    def generate(self, prompts, params):
        out = []
        for prompt in prompts:
            text = prompt[-1]["content"]
            if text.startswith("Rewrite the text below"):
                out.append(PARAPHRASE)
            elif "\nSentence: " in text:
                out.append(_add(text.split("\nSentence: ", 1)[1].split("\n", 1)[0], ()))
            else:
                question = text.split("Question: ", 1)[1].split("\n", 1)[0]
                self.asked.append(question)
                if question in self.fail:
                    raise GenerationError("scripted failure")
                out.append(self.answers[question])
        return [Generation(t, 10, 10, 0.0, None, "stop", self.name) for t in out]


def _sources(n: int) -> list[Source]:
    return [Source(f"s{i}", f"Who were the Normans {i}?", PASSAGES, OTHERS) for i in range(n)]


def _backend(n: int, **kw) -> ScriptedBackend:
    answers = {f"Who were the Normans {i}?": ANSWER for i in range(n)}
    answers["Who were the Normans 1?"] = "Too short."
    answers["Who were the Normans 2?"] = ANSWER.replace("Rollo", "Napoleon Bonaparte")
    return ScriptedBackend(answers, **kw)


def test_make_data_writes_labelled_answers_with_claim_labels_and_counts_drops(tmp_path, perturber):
    out = tmp_path / "train.jsonl"
    backend = _backend(6, fail=("Who were the Normans 4?",))
    stats = make_data(_sources(6), GeneratorWriter(backend, name="scripted"), out, n=10, seed=1,
                      perturber=Perturber(nlp=perturber.nlp), min_words=20, progress=False)
    recs = [json.loads(x) for x in out.read_text().splitlines()]
    items = read_judged(out).items   # the labelled-answers reader accepts every record
    assert [i.label for i in items] == [1 if r["label"] == "hallucinated" else 0 for r in recs]
    assert stats["sources"] == 3 and stats["by_label"] == {"faithful": 6, "hallucinated": 6}
    assert stats["dropped"] == {"generation_error": 1, "too_short": 1, "unsupported_fact": 1}
    assert stats["runs"][0]["tried"] == 6 and stats["runs"][0]["kept"] == 3 and stats["sources_exhausted"]
    for r in recs:
        assert r["source_records"] == 4 and r["contexts"] == list(PASSAGES) and r["generator"] == "scripted"
        marked = [c for c in r["claims"] if c["label"] == 1]
        if r["label"] == "faithful":
            assert r["spans"] == [] and not marked and r["kind"] in ("faithful", "paraphrase")
        else:
            assert r["spans"] == [{"start": m["start"], "end": m["end"]} for m in marked] and len(marked) == 1
            assert r["kind"] in KINDS and r["base"] in {x["id"] for x in recs}
            assert r["answer"][marked[0]["start"]:marked[0]["end"]] != r["detail"]["before"]
    kinds = [r["kind"] for r in recs if r["label"] == "hallucinated"]
    assert len(set(kinds)) >= 4, "the kinds are taken in turn"
    drops, _ = sidecars(out)
    assert {json.loads(x)["reason"] for x in drops.read_text().splitlines()} == set(stats["dropped"])


def test_a_paraphrase_the_generator_only_echoes_is_replaced_by_the_rules(tmp_path, perturber):
    class Echo(ScriptedBackend):
        def generate(self, prompts, params):
            got = super().generate(prompts, params)
            for prompt, g in zip(prompts, got, strict=True):
                if prompt[-1]["content"].startswith("Rewrite the text below"):
                    g.text = prompt[-1]["content"].split("Text:\n", 1)[1]   # the text back, unchanged
            return got

    out = tmp_path / "echo.jsonl"
    reworded = ANSWER.replace("The Norman dynasty had", "However, the Norman dynasty had").replace("about", "roughly")
    backend = Echo({"Who were the Normans 0?": reworded})
    stats = make_data(_sources(1), GeneratorWriter(backend, name="echo"), out, n=1,
                      perturber=Perturber(nlp=perturber.nlp), min_words=20, progress=False)
    para = next(json.loads(x) for x in out.read_text().splitlines() if json.loads(x)["kind"] == "paraphrase")
    assert para["paraphrased_by"] == "rules" and stats["paraphrased_by"] == {"rules": 1}
    assert stats["paraphrases_dropped"] == {"not_reworded": 1}
    off = make_data(_sources(1), GeneratorWriter(Echo(backend.answers), name="echo"), tmp_path / "off.jsonl", n=1,
                    paraphrase="off", perturber=Perturber(nlp=perturber.nlp), min_words=20, progress=False)
    assert off["by_kind"].get("paraphrase") is None and off["by_label"] == {"faithful": 1, "hallucinated": 1}
    with pytest.raises(ConfigError, match="paraphrase must be one of generator, rules, off"):
        make_data(_sources(1), GeneratorWriter(backend), tmp_path / "x.jsonl", n=1, paraphrase="yes")


def test_the_same_seed_writes_the_same_file(tmp_path, perturber):
    texts = []
    for name, batch in (("a.jsonl", 1), ("b.jsonl", 1), ("c.jsonl", 3)):
        make_data(_sources(4), GeneratorWriter(_backend(4), name="scripted"), tmp_path / name, n=2, seed=3,
                  perturber=Perturber(nlp=perturber.nlp), min_words=20, batch=batch, progress=False)
        texts.append((tmp_path / name).read_text())
    assert texts[0] == texts[1] == texts[2] and texts[0]


def test_make_data_resumes_skipping_done_sources_and_redoing_a_torn_one(tmp_path, perturber):
    out = tmp_path / "train.jsonl"
    sources = _sources(8)

    def run(n: int) -> ScriptedBackend:
        backend = _backend(8)
        make_data(sources, GeneratorWriter(backend, name="scripted"), out, n=n, seed=0,
                  perturber=Perturber(nlp=perturber.nlp), min_words=20, progress=False)
        return backend

    first = run(2)
    second = run(3)
    assert not set(first.asked) & set(second.asked), "a source already written or dropped is not asked again"
    ids = [json.loads(x)["source_id"] for x in out.read_text().splitlines()]
    assert len(set(ids)) == 3
    whole = tmp_path / "whole.jsonl"   # resumed, the file is what one run would have written
    make_data(sources, GeneratorWriter(_backend(8), name="scripted"), whole, n=3, seed=0,
              perturber=Perturber(nlp=perturber.nlp), min_words=20, progress=False)
    assert whole.read_text() == out.read_text()
    # a run killed in the middle of an append: the last source's block cut short
    lines = out.read_text().splitlines(keepends=True)
    out.write_text("".join(lines[:-2]) + lines[-2][:25])
    _, kept, rewritten = resume_state(out)
    assert kept == 2 and rewritten == 3 and ids[-1] not in {json.loads(x)["source_id"] for x in out.read_text().splitlines()}
    third = run(3)
    assert third.asked and len({json.loads(x)["source_id"] for x in out.read_text().splitlines()}) == 3
    # a broken line that is not the last is an edit, not a torn append: named, not silently dropped
    lines = out.read_text().splitlines(keepends=True)
    out.write_text(lines[0] + "{oops\n" + "".join(lines[1:]))
    with pytest.raises(DataError, match=r"train.jsonl: line 2 is not valid JSON"):
        resume_state(out)


# ------------------------------------------------------------------------------- sources


def test_benchmark_data_is_refused_as_a_training_source(tmp_path):
    with pytest.raises(DataError, match="hallucination-benchmark data.*halueval"):
        check_training_path("data/halueval/qa_train.jsonl")
    with pytest.raises(DataError, match="ragtruth"):
        jsonl_sources(tmp_path / "RAGTruth-test.jsonl")
    assert check_training_path("data/squad_v1.1_dev/dev-v1.1.qa.jsonl").name == "dev-v1.1.qa.jsonl"


def test_jsonl_sources_name_the_line_and_key_of_a_bad_record(tmp_path):
    f = tmp_path / "src.jsonl"
    f.write_text(json.dumps({"id": "a", "question": "q?", "passages": ["p"]}) + "\n"
                 + json.dumps({"id": "b", "question": "q?", "passages": []}) + "\n")
    with pytest.raises(DataError, match=r"src.jsonl:line 2: 'passages' must be a non-empty list"):
        jsonl_sources(f)
    f.write_text(json.dumps({"id": "a", "question": "q?", "passages": ["p"], "others": ["o"]}) + "\n")
    assert jsonl_sources(f) == [Source("a", "q?", ("p",), ("o",))]


def test_squad_sources_split_articles_and_keep_the_gold_paragraph_among_the_passages(tmp_path):
    paragraphs, qa = tmp_path / "p.jsonl", tmp_path / "qa.jsonl"
    paras = [{"paragraph_id": f"T{t}#{k}", "title": f"T{t}", "text": f"Article {t} paragraph {k} about topic {k}."}
             for t in range(12) for k in range(4)]
    paragraphs.write_text("".join(json.dumps(p) + "\n" for p in paras))
    qa.write_text("".join(json.dumps({"id": f"q{p['paragraph_id']}", "paragraph_id": p["paragraph_id"],
                                      "title": p["title"], "question": f"What about topic {p['paragraph_id'][-1]}?",
                                      "answers": ["x"]}) + "\n" for p in paras))
    train = squad_sources(paragraphs, qa, n_passages=3)
    held = squad_sources(paragraphs, qa, n_passages=3, part="heldout")
    assert train and held and {s.title for s in train}.isdisjoint({s.title for s in held})
    assert {s.title for s in train} | {s.title for s in held} == {f"T{t}" for t in range(12)}
    for s in train:
        gold = next(p["text"] for p in paras if f"q{p['paragraph_id']}" == s.id)
        assert gold in s.passages and len(s.passages) == 3 and not set(s.others) & set(s.passages)
    with pytest.raises(DataError, match="unknown part 'test'"):
        squad_sources(paragraphs, qa, part="test")


@pytest.mark.slow
@pytest.mark.e2e
def test_the_local_generator_writes_an_answer_the_checks_accept(tmp_path):
    """Qwen2.5-Coder 0.5B (transformers, CPU) on one SQuAD source of the repository: a faithful
    answer or a counted drop, never a crash."""
    from lab.judge.faithful_data import writer_for
    from lab.judge.faithful_sources import sources

    repo = Path(__file__).resolve().parents[1]
    found = sources("squad", repo, seed=0)[:1]
    stats = make_data(found, writer_for("qwen2.5-coder-0.5b-instruct", threads=2), tmp_path / "q.jsonl", n=1,
                      progress=False)
    assert stats["runs"][0]["tried"] == 1 and stats["runs"][0]["kept"] + sum(stats["dropped"].values()) == 1


@pytest.mark.slow
def test_lab_judge_make_data_runs_end_to_end_and_counts_what_a_random_model_writes(tmp_path):
    """The CLI on a tiny random model: its gibberish is dropped and counted by reason (or kept, if it
    passes the checks), and the stats add up."""
    from typer.testing import CliRunner

    from lab.cli import app

    src = tmp_path / "sources.jsonl"
    src.write_text("".join(json.dumps({"id": f"x{i}", "question": f"Who were the Normans {i}?",
                                       "passages": list(PASSAGES)}) + "\n" for i in range(2)))
    out = tmp_path / "made.jsonl"
    res = CliRunner().invoke(app, ["judge", "make-data", "--out", str(out), "--n", "1", "--source", str(src),
                                   "--generator", "tiny-random-llama", "--threads", "1", "--batch", "2"])
    assert res.exit_code == 0, res.output
    stats = json.loads(sidecars(out)[1].read_text())
    run = stats["runs"][0]
    assert run["tried"] == run["kept"] + run["dropped"] and sum(stats["dropped"].values()) == run["dropped"]
    assert run["kept"] == stats["sources"] and stats["sources_exhausted"] == (run["kept"] == 0)
    assert run["generator"] == "tiny-random-llama" and run["batch"] == 2


def test_a_stopped_run_still_counts_what_it_did_and_resumes(tmp_path, perturber):
    class Stops(ScriptedBackend):
        def generate(self, prompts, params):
            if len(self.asked) >= 2 and "Question: " in prompts[0][-1]["content"]:
                raise KeyboardInterrupt   # Ctrl-C in the middle of the second batch
            return super().generate(prompts, params)

    out = tmp_path / "stopped.jsonl"
    answers = {f"Who were the Normans {i}?": ANSWER for i in range(6)}
    with pytest.raises(KeyboardInterrupt):
        make_data(_sources(6), GeneratorWriter(Stops(answers), name="scripted"), out, n=6, batch=2,
                  perturber=Perturber(nlp=perturber.nlp), min_words=20, progress=False)
    stats = json.loads(sidecars(out)[1].read_text())
    assert stats["sources"] == 2 and stats["runs"][0]["completed"] is False and stats["runs"][0]["tried"] == 2
    again = make_data(_sources(6), GeneratorWriter(ScriptedBackend(answers), name="scripted"), out, n=6, batch=2,
                      perturber=Perturber(nlp=perturber.nlp), min_words=20, progress=False)
    assert again["sources"] == 6 and [r["completed"] for r in again["runs"]] == [False, True]
    assert again["runs"][1]["tried"] == 4
