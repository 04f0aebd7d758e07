"""The playground page the gateway serves at ``/``: a question box, the streamed answer, its
sources, thumbs up/down (posted to ``/v1/feedback``). One static page, no external assets (it
works offline), the API key typed in by the user when the gateway requires one.

The answer grows chunk by chunk as the gateway releases it. The last chunk's ``lab`` field is shown
under it: each warning (yellow), and each verdict of the output guardrails (red) with how many
characters had been shown before it; when a late check withdrew or corrected the answer, the text
shown before its verdict is struck through and what follows it (the fallback message) stays."""

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>lab playground</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
 body{font-family:system-ui,sans-serif;max-width:52rem;margin:2rem auto;padding:0 1rem;color:#222}
 textarea{width:100%;height:4rem;font:inherit} input{font:inherit}
 #answer{white-space:pre-wrap;border:1px solid #ccc;border-radius:6px;padding:.75rem;min-height:2rem}
 .src{font-size:.9rem;border-left:3px solid #89a;padding:.25rem .5rem;margin:.5rem 0;color:#444}
 button{font:inherit;padding:.3rem .9rem;margin-right:.4rem} #status{color:#666;font-size:.9rem}
 #answer del{color:#888} .note{border-radius:6px;padding:.4rem .6rem;margin:.4rem 0;font-size:.9rem}
 .warn{background:#fff4d6;border:1px solid #e8c15a} .verdict{background:#fde2e2;border:1px solid #d77}
</style></head><body>
<h1>lab playground</h1>
<p><label>API key (if the gateway needs one) <input id="key" type="password" size="30"></label></p>
<textarea id="q" placeholder="Ask a question about the corpus"></textarea>
<p><button id="ask">Ask</button> <span id="status"></span></p>
<h2>Answer</h2><div id="answer"></div><div id="notes"></div>
<p id="rate" hidden><button id="up" title="thumbs up: a good answer">Helpful (thumbs up)</button>
<button id="down" title="thumbs down: a bad answer">Not helpful (thumbs down)</button> <span id="rated"></span></p>
<h2>Sources</h2><div id="sources"></div>
<script>
let rid = null;
const $ = id => document.getElementById(id);
function headers(){ const h = {"Content-Type": "application/json"}; const k = $("key").value;
  if (k) h["Authorization"] = "Bearer " + k; return h; }
function showSources(srcs){ $("sources").innerHTML = "";
  (srcs || []).forEach((s, i) => { const d = document.createElement("div"); d.className = "src";
    const name = s.citation || s.title;
    d.textContent = "[" + (i + 1) + "] " + (name ? name + ": " : "") + s.text.slice(0, 400) +
      "  (id " + s.id + ", score " + s.score.toFixed(3) + ")"; $("sources").appendChild(d); }); }
function note(cls, msg){ const d = document.createElement("div"); d.className = "note " + cls;
  d.textContent = msg; $("notes").appendChild(d); }
function showVerdicts(lab, text){
  (lab.warnings || []).forEach(w => note("warn", "Warning (" + w.check + "): " + (w.reason || "the check fired")));
  (lab.verdicts || []).filter(v => v.action !== "warn").forEach(v => note("verdict",
    (v.phase === "end" ? "After the answer was shown, " : "While streaming, ") + v.check + " (" + v.action +
    ") ruled on it with " + v.shown_chars + " characters shown: " + (v.reason || "the check fired")));
  const late = (lab.verdicts || []).find(v => v.phase === "end" && v.replacement !== null);
  if (late) { const a = $("answer"); a.textContent = ""; const del = document.createElement("del");
    del.textContent = text.slice(0, late.shown_chars); a.appendChild(del);
    a.appendChild(document.createTextNode(text.slice(late.shown_chars))); } }
$("ask").onclick = async () => {
  $("answer").textContent = ""; $("sources").innerHTML = ""; $("rate").hidden = true; $("rated").textContent = "";
  $("notes").innerHTML = ""; $("status").textContent = "asking..."; rid = null; let text = "";
  const body = {messages: [{role: "user", content: $("q").value}], stream: true};
  const resp = await fetch("/v1/chat/completions", {method: "POST", headers: headers(), body: JSON.stringify(body)});
  if (!resp.ok) { const e = await resp.json().catch(() => ({})); $("status").textContent =
      "error " + resp.status + ": " + ((e.error || {}).message || resp.statusText); return; }
  const reader = resp.body.getReader(); const dec = new TextDecoder(); let buf = "";
  while (true) { const {value, done} = await reader.read(); if (done) break;
    buf += dec.decode(value, {stream: true}); let i;
    while ((i = buf.indexOf("\\n\\n")) >= 0) { const ev = buf.slice(0, i); buf = buf.slice(i + 2);
      if (!ev.startsWith("data:")) continue; const data = ev.slice(5).trim(); if (data === "[DONE]") continue;
      const c = JSON.parse(data); if (c.error) { $("status").textContent = "error: " + c.error.message; continue; }
      rid = c.id; const d = (c.choices && c.choices[0] && c.choices[0].delta) || {};
      if (d.content) { text += d.content; $("answer").textContent = text; }
      if (c.sources) showSources(c.sources);
      if (c.lab) showVerdicts(c.lab, text); } }
  $("status").textContent = rid ? "done (" + rid + ")" : "no answer"; if (rid) $("rate").hidden = false; };
async function rate(r){ if (!rid) return;
  const resp = await fetch("/v1/feedback", {method: "POST", headers: headers(),
    body: JSON.stringify({response_id: rid, rating: r})});
  $("rated").textContent = resp.ok ? "thanks: feedback stored (" + r + ")" : "feedback failed: " + resp.status; }
$("up").onclick = () => rate("up"); $("down").onclick = () => rate("down");
</script></body></html>
"""
