"""Review a generated test set: each question with its answer and its excerpt highlighted in the
document; accept, edit or reject it, with a reason. Every decision is written at once to the
decisions file beside the test set (``testset.csv`` -> ``testset.review.json``).

    lab review [--testset FILE] [--corpus DIR] [--port N]     # serves on 127.0.0.1
    marimo run notebooks/review.py --host 127.0.0.1 -- --testset FILE --corpus DIR

The logic is in :mod:`lab.testset.review`; this app only lays out widgets.
"""

import marimo

__generated_with = "0.25.2"
app = marimo.App(width="medium", app_title="lab test set review")


@app.cell
def _():
    from pathlib import Path

    import marimo as mo

    from lab.errors import DataError
    from lab.testset import review

    args = mo.cli_args()
    testset = Path(str(args.get("testset") or "results/testset/testset.csv")).resolve()
    corpus = Path(str(args.get("corpus") or "results/ingest/docs")).resolve()
    mo.stop(not testset.is_file(), mo.callout(mo.md(
        f"**No test set at `{testset}`.** Generate one (`dvc repro testset`) or pass `--testset FILE`."), kind="danger"))
    rows = review.read_testset(testset)
    maps = review.document_maps(corpus)
    return DataError, corpus, maps, mo, review, rows, testset


@app.cell
def _(mo):
    get_pos, set_pos = mo.state(0)       # position in the items shown
    get_saved, set_saved = mo.state(0)   # bumped after each write: the decisions are read again
    get_note, set_note = mo.state("")    # what the last click did
    only_open = mo.ui.checkbox(label="unreviewed only")
    return get_note, get_pos, get_saved, only_open, set_note, set_pos, set_saved


@app.cell
def _(get_pos, get_saved, only_open, review, rows, testset):
    get_saved()
    decisions = review.load_decisions(testset)
    counts = review.review_counts(testset)
    shown = [r for r in rows if not (only_open.value and r["id"] in decisions.decisions)]
    pos = min(max(get_pos(), 0), max(len(shown) - 1, 0))
    item = shown[pos] if shown else None
    return counts, decisions, item, pos, shown


@app.cell
def _(corpus, counts, decisions, get_note, maps, mo, only_open, pos, set_pos, shown, testset):
    prev_button = mo.ui.button(label="&larr; previous", disabled=pos == 0, on_click=lambda _: set_pos(pos - 1))
    next_button = mo.ui.button(label="next &rarr;", disabled=pos >= len(shown) - 1, on_click=lambda _: set_pos(pos + 1))
    counter = (f"**{counts['items'] - counts['unreviewed']} of {counts['items']} reviewed**: "
               f"{counts['accepted']} accepted, {counts['edited']} edited, {counts['rejected']} rejected, "
               f"{counts['unreviewed']} unreviewed")
    place = f"item {pos + 1} of {len(shown)}" if shown else "no item to show"
    warnings = [mo.callout(mo.md("\n\n".join(decisions.problems())), kind="warn")] if decisions.problems() else []
    note = [mo.md(f"_{get_note()}_")] if get_note() else []
    mo.vstack([
        mo.md(f"# Test set review\n\n`{testset}` on the corpus `{corpus}`"
              + ("" if maps else " (no ingest manifest: sections and pages unknown)")
              + f"; decisions in `{decisions.path.name}`"),
        *warnings,
        mo.md(counter),
        mo.hstack([prev_button, mo.md(place), next_button, only_open], justify="start", align="center", gap=1.5),
        *note,
    ])
    return


@app.cell
def _(DataError, corpus, decisions, item, maps, mo, review):
    mo.stop(item is None, mo.md("**Every item is reviewed.** Untick _unreviewed only_ to see them again."))
    try:
        card = review.item_html(item, review.item_excerpts(item, corpus, maps), decisions.decisions.get(item["id"]))
    except DataError as exc:
        card = review.item_html(item, [], decisions.decisions.get(item["id"])) + f"<p><b>{exc}</b></p>"
    mo.Html(card)
    return


@app.cell
def _(DataError, decisions, item, mo, only_open, pos, review, set_note, set_pos, set_saved, testset):
    mo.stop(item is None)
    earlier = decisions.decisions.get(item["id"])
    edited = earlier is not None and earlier.decision == "edit"
    question = mo.ui.text_area(value=earlier.question if edited and earlier.question is not None else item["question"],
                               label="question", rows=2, full_width=True)
    answer = mo.ui.text_area(value=earlier.answer if edited and earlier.answer is not None else item["answer"],
                             label="answer", rows=3, full_width=True)
    preset = mo.ui.dropdown(options=list(review.REASONS), label="reason")
    reason = mo.ui.text(value=earlier.reason if earlier else "", label="or in your words", full_width=True)

    def decide(kind):
        def click(value):
            said = reason.value.strip() or (preset.value or "")
            try:
                if kind == "clear":
                    review.clear_decision(testset, item["id"])
                else:
                    review.record_decision(testset, item["id"], kind, reason=said,
                                           question=question.value if kind == "edit" else None,
                                           answer=answer.value if kind == "edit" else None)
            except (ValueError, DataError) as exc:
                set_note(f"not saved: {exc}")
                return value
            set_note(f"saved: {kind} {item['id']}" + (f" ({said})" if said and kind != "clear" else ""))
            set_saved(lambda n: n + 1)
            if kind != "clear" and not only_open.value:   # filtered, the decided item leaves the list by itself
                set_pos(pos + 1)
            return value
        return click

    buttons = mo.hstack([
        mo.ui.button(label="accept", kind="success", on_click=decide("accept")),
        mo.ui.button(label="save edit", kind="neutral", on_click=decide("edit")),
        mo.ui.button(label="reject", kind="danger", on_click=decide("reject")),
        mo.ui.button(label="clear decision", on_click=decide("clear"), disabled=earlier is None),
    ], justify="start", gap=1)
    mo.vstack([mo.md(f"### Your decision on `{item['id']}`"), question, answer,
               mo.hstack([preset, reason], widths=[1, 2]), buttons])
    return


if __name__ == "__main__":
    app.run()
