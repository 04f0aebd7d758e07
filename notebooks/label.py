"""The labelling queue: sampled answers the gateway served (its MLflow traces), each with its question,
sources, the judges' verdicts, the guardrails that fired and the user's thumbs; label each one
faithful, hallucinated, wrong or unanswerable, with a comment and a corrected answer. Every label is
written at once to the labels file and as an assessment on the trace.

    lab label [TRACKING_URI | BUNDLE] [--experiment lab] [--labels FILE] [--port N]   # serves on 127.0.0.1
    marimo run notebooks/label.py --host 127.0.0.1 -- --tracking-uri URI --labels FILE

The logic is in :mod:`lab.serve.label_queue` and :mod:`lab.data.trace_labels`; this app only lays out widgets.
"""

import marimo

__generated_with = "0.25.2"
app = marimo.App(width="medium", app_title="lab labelling queue")


@app.cell
def _():
    from pathlib import Path

    import marimo as mo

    from lab.data import trace_labels
    from lab.errors import DataError
    from lab.serve import label_queue

    args = mo.cli_args()
    tracking_uri = str(args.get("tracking-uri") or "")
    experiment = str(args.get("experiment") or "lab")
    labels_path = Path(str(args.get("labels") or "results/serve/labels.jsonl")).resolve()
    labeller = str(args.get("labeller") or "")
    mo.stop(not tracking_uri, mo.callout(mo.md("**No tracking store.** Start the app with `lab label`."), kind="danger"))
    passages = label_queue.bundle_passages(args["bundle"]) if args.get("bundle") else {}
    settings = {"limit": int(args.get("limit") or 200), "rate": float(args.get("sample") or 1.0),
                "seed": int(args.get("seed") or 0), "judged_only": bool(args.get("judged-only"))}
    return DataError, experiment, label_queue, labeller, labels_path, mo, passages, settings, trace_labels, tracking_uri


@app.cell
def _(mo):
    get_pos, set_pos = mo.state(0)          # position in the items shown
    get_saved, set_saved = mo.state(0)      # bumped after each label: the labels file is read again
    get_note, set_note = mo.state("")       # what the last click did
    get_loaded, set_loaded = mo.state(0)    # bumped by "reload traces"
    only_open = mo.ui.checkbox(label="unlabelled only")
    return get_loaded, get_note, get_pos, get_saved, only_open, set_loaded, set_note, set_pos, set_saved


@app.cell
def _(experiment, get_loaded, label_queue, passages, settings, tracking_uri):
    get_loaded()
    items = label_queue.sample_traces(tracking_uri, experiment, passages=passages, **settings)
    return (items,)


@app.cell
def _(get_pos, get_saved, items, label_queue, labels_path, only_open, trace_labels):
    get_saved()
    labels = trace_labels.read_labels(labels_path, missing_ok=True).labels
    counts = label_queue.queue_counts(items, labels)
    shown = [i for i in items if not (only_open.value and i.trace_id in labels)]
    pos = min(max(get_pos(), 0), max(len(shown) - 1, 0))
    item = shown[pos] if shown else None
    return counts, item, labels, pos, shown


@app.cell
def _(counts, experiment, get_note, labels_path, mo, only_open, pos, set_loaded, set_pos, settings, shown,
      tracking_uri):
    prev_button = mo.ui.button(label="&larr; previous", disabled=pos == 0, on_click=lambda _: set_pos(pos - 1))
    next_button = mo.ui.button(label="next &rarr;", disabled=pos >= len(shown) - 1, on_click=lambda _: set_pos(pos + 1))
    reload_button = mo.ui.button(label="reload traces", on_click=lambda _: set_loaded(lambda n: n + 1))
    by = ", ".join(f"{n} {k}" for k, n in counts.by_label.items())
    counter = f"**{counts.labelled} of {counts.items} labelled**: {by}"
    place = f"item {pos + 1} of {len(shown)}" if shown else "no item to show"
    sample = "" if settings["rate"] >= 1 else f", sample {settings['rate']:g} (seed {settings['seed']})"
    note = [mo.md(f"_{get_note()}_")] if get_note() else []
    mo.vstack([
        mo.md(f"# Labelling queue\n\nTraces of `{experiment}` in `{tracking_uri}`{sample}, newest first; "
              f"labels in `{labels_path}`"),
        mo.md(counter),
        mo.hstack([prev_button, mo.md(place), next_button, only_open, reload_button], justify="start",
                  align="center", gap=1.5),
        *note,
    ])
    return


@app.cell
def _(item, label_queue, labels, mo):
    mo.stop(item is None, mo.md("**Every item is labelled.** Untick _unlabelled only_ to see them again."))
    mo.Html(label_queue.item_html(item, labels.get(item.trace_id)))
    return


@app.cell
def _(DataError, item, label_queue, labeller, labels, labels_path, mo, only_open, pos, set_note, set_pos,
      set_saved, tracking_uri):
    mo.stop(item is None)
    earlier = labels.get(item.trace_id)
    comment = mo.ui.text(value=earlier.comment if earlier else "", label="comment", full_width=True)
    corrected = mo.ui.text_area(value=(earlier.corrected_answer or "") if earlier else "",
                                label="corrected answer (optional)", rows=2, full_width=True)

    def decide(kind):
        def click(value):
            try:
                _made, error = label_queue.label_trace(labels_path, item, kind, comment=comment.value,
                                                       corrected_answer=corrected.value, labeller=labeller,
                                                       tracking_uri=tracking_uri)
            except (ValueError, DataError) as exc:
                set_note(f"not saved: {exc}")
                return value
            where = "file and trace" if error is None else f"file only (not on the trace: {error})"
            set_note(f"saved: {kind} {item.trace_id} ({where})")
            set_saved(lambda n: n + 1)
            if not only_open.value:   # filtered, the labelled item leaves the list by itself
                set_pos(pos + 1)
            return value
        return click

    kinds = {"faithful": "success", "hallucinated": "danger", "wrong": "warn", "unanswerable": "neutral"}
    buttons = mo.hstack([mo.ui.button(label=k, kind=v, on_click=decide(k)) for k, v in kinds.items()],
                        justify="start", gap=1)
    mo.vstack([mo.md(f"### Your label of `{item.trace_id}`"), comment, corrected, buttons,
               mo.md("_faithful_: supported by its sources and right; _hallucinated_: not supported by its "
                     "sources; _wrong_: supported (or not about them) but wrong; _unanswerable_: the sources "
                     "cannot answer the question.")])
    return


if __name__ == "__main__":
    app.run()
