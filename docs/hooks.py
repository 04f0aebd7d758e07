"""MkDocs hook: the site's figures come from the committed results, rendered at build time.

A page writes ``{{ name(args) }}`` where a table belongs, ``name`` being one of :data:`DIRECTIVES`
and ``args`` Python literals (``{{ csv_table("results/x/results.csv", columns=["a", "b"]) }}``).
Paths are relative to the repository root (the folder of ``mkdocs.yml``). A missing file, an unknown
column or directive stops the build with the page and the directive named, so a page can never show
a figure the repository does not hold. The hook also

* adds every committed PNG under ``results/`` and ``benchmarks/results/`` to the site as
  ``figures/<its repository path>`` (pages link them like any image; the link is checked),
* adds one API reference page per floor of :data:`lab.layout.FLOORS` (``reference/<floor>.md``, every
  module of the floor through mkdocstrings), and its nav entries, so the reference follows the code.
"""

from __future__ import annotations

import ast
import json
import logging
import math
import re
import subprocess
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File, Files

log = logging.getLogger("mkdocs.hooks.lab")

#: The repository root; set in on_config from mkdocs.yml's folder.
ROOT = Path(__file__).resolve().parents[1]
#: Where the results' figures appear in the site.
FIGURES = "figures"
_DIRECTIVE = re.compile(r"\{\{\s*(\w+)\((.*?)\)\s*\}\}", re.DOTALL)


# --------------------------------------------------------------------------- helpers


def _path(rel: str) -> Path:
    p = ROOT / rel
    if not p.exists():
        raise FileNotFoundError(f"{rel} does not exist (paths are relative to the repository root)")
    return p


def _cell(value: Any, fmt: str | None) -> str:
    """One table cell: NaN and None as '-', floats with ``fmt`` (default 3 decimals), pipes escaped."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float | int) and fmt:
        return format(value, fmt)
    if isinstance(value, float):   # 3 decimals for rates and scores, fewer for large figures
        return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.1f}" if abs(value) >= 10 else f"{value:.3f}"
    if isinstance(value, str) and value.startswith("[") and value.endswith("]"):
        try:   # a CI written into a CSV cell as a JSON list
            value = json.loads(value)
        except ValueError:
            pass
    if isinstance(value, list | tuple) and all(isinstance(v, float | int) for v in value):
        return "[" + ", ".join(_cell(v, fmt) for v in value) + "]"
    return str(value).replace("|", "\\|").replace("\n", " ")


def markdown_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str],
                   fmt: Mapping[str, str] | None = None, rename: Mapping[str, str] | None = None) -> str:
    """``rows`` as a Markdown table of ``columns`` (headers renamed by ``rename``)."""
    fmt, rename = dict(fmt or {}), dict(rename or {})
    head = "| " + " | ".join(rename.get(c, c) for c in columns) + " |"
    lines = [head, "|" + " --- |" * len(columns)]
    for r in rows:
        lines.append("| " + " | ".join(_cell(r.get(c), fmt.get(c)) for c in columns) + " |")
    return "\n".join(lines)


def _select(rows: list[dict[str, Any]], columns: Sequence[str] | None, where: Mapping[str, Any] | None,
            sort: str | None, head: int | None, source: str) -> tuple[list[dict[str, Any]], list[str]]:
    have = list(dict.fromkeys(k for r in rows for k in r))   # every row's keys (rows of several kinds)
    cols = list(columns) if columns else have
    wanted = set(cols) | set(where or {}) | ({sort.lstrip("-")} if sort else set())
    missing = [c for c in wanted if rows and c not in have]
    if missing:
        raise KeyError(f"{source} has no column(s) {', '.join(sorted(missing))}; it has {', '.join(have)}")
    for key, value in (where or {}).items():
        allowed = value if isinstance(value, list | tuple) else [value]
        rows = [r for r in rows if r.get(key) in allowed]
    if sort:
        key = sort.lstrip("-")
        rows = sorted(rows, key=lambda r: (r.get(key) is None, r.get(key)), reverse=sort.startswith("-"))
    return (rows[:head] if head else rows), cols


# --------------------------------------------------------------------------- directives


def csv_table(path: str, columns: Sequence[str] | None = None, *, where: Mapping[str, Any] | None = None,
              sort: str | None = None, head: int | None = None, fmt: Mapping[str, str] | None = None,
              rename: Mapping[str, str] | None = None) -> str:
    """A CSV file (or the chosen ``columns`` of it), filtered by ``where`` (column -> value or list),
    sorted by ``sort`` (``-col`` descending), cut to ``head`` rows."""
    import pandas as pd

    df = pd.read_csv(_path(path))
    rows = [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()}
            for r in df.to_dict("records")]
    rows, cols = _select(rows, columns, where, sort, head, path)
    return markdown_table(rows, cols, fmt, rename)


def csv_value(path: str, column: str, where: Mapping[str, Any], fmt: str | None = None) -> str:
    """One cell of a CSV file: ``column`` of the single row matching ``where`` (column -> value)."""
    import pandas as pd

    df = pd.read_csv(_path(path))
    rows = [r for r in df.to_dict("records") if all(r.get(k) == v for k, v in where.items())]
    if len(rows) != 1:
        raise KeyError(f"{path}: {len(rows)} rows match {where!r}; need exactly one")
    if column not in rows[0]:
        raise KeyError(f"{path} has no column {column!r}")
    return _cell(rows[0][column], fmt)


def _flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, Mapping):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def json_value(path: str, key: str, fmt: str | None = None) -> str:
    """One value of a JSON file, by dotted key (``winner.hit_rate@5``), formatted with ``fmt``."""
    flat = _flatten(json.loads(_path(path).read_text(encoding="utf-8")))
    if key not in flat:
        raise KeyError(f"{path} has no key {key!r}")
    return _cell(flat[key], fmt)


def metrics_table(path: str, match: str = "", *, fmt: str | None = None, strip: str = "") -> str:
    """The flattened keys of a JSON file (a stage's ``metrics.json``) matching the regex ``match``,
    as a key/value table (``strip`` is a prefix cut from the shown keys)."""
    flat = _flatten(json.loads(_path(path).read_text(encoding="utf-8")))
    keys = [k for k in flat if re.search(match, k)]
    if not keys:
        raise KeyError(f"{path}: no key matches {match!r}")
    rows = [{"key": k.removeprefix(strip), "value": flat[k]} for k in keys]
    return markdown_table(rows, ["key", "value"], {"value": fmt} if fmt else None)


def pivot_metrics(path: str, pattern: str, *, rows_name: str = "", fmt: str | None = None,
                  columns: Sequence[str] | None = None) -> str:
    """Keys of a JSON file matching ``pattern``, a regex with the groups ``row`` and ``col``, as a table
    with one row per ``row`` and one column per ``col`` (e.g. a judge per row, a metric per column)."""
    flat = _flatten(json.loads(_path(path).read_text(encoding="utf-8")))
    rx = re.compile(pattern)
    table: dict[str, dict[str, Any]] = {}
    seen: list[str] = []
    for k, v in flat.items():
        m = rx.fullmatch(k)
        if m:
            table.setdefault(m["row"], {rows_name or "": m["row"]})[m["col"]] = v
            if m["col"] not in seen:
                seen.append(m["col"])
    if not table:
        raise KeyError(f"{path}: no key matches {pattern!r}")
    cols = list(columns) if columns else seen
    missing = [c for c in cols if c not in seen]
    if missing:
        raise KeyError(f"{path}: pattern {pattern!r} gives no column(s) {', '.join(missing)}; it gives {', '.join(seen)}")
    return markdown_table(list(table.values()), [rows_name or "", *cols], {c: fmt for c in cols} if fmt else None)


def json_compare(paths: Sequence[str], keys: Sequence[str], *, names: Sequence[str] | None = None,
                 fmt: Mapping[str, str] | None = None) -> str:
    """One row per JSON file (named by ``names``, else the file name), one column per dotted key;
    a key a file lacks is '-'."""
    rows = []
    for i, path in enumerate(paths):
        flat = _flatten(json.loads(_path(path).read_text(encoding="utf-8")))
        unknown = [k for k in keys if not any(k in _flatten(json.loads(_path(q).read_text(encoding="utf-8")))
                                              for q in paths)]
        if unknown:
            raise KeyError(f"no file of {list(paths)} has the key(s) {', '.join(unknown)}")
        rows.append({"file": names[i] if names else f"`{Path(path).name}`", **{k: flat.get(k) for k in keys}})
    return markdown_table(rows, ["file", *keys], fmt)


def json_records(path: str, columns: Sequence[str], *, key: str = "", where: Mapping[str, Any] | None = None,
                 sort: str | None = None, head: int | None = None, fmt: Mapping[str, str] | None = None,
                 rename: Mapping[str, str] | None = None) -> str:
    """A JSON list of objects (or the list under the dotted ``key``), as a table of ``columns``
    (a column may be a dotted key into each object)."""
    data: Any = json.loads(_path(path).read_text(encoding="utf-8"))
    for part in filter(None, key.split(".")):
        data = data[part]
    rows = [_flatten(r) for r in data]
    rows, cols = _select(rows, columns, where, sort, head, path)
    return markdown_table(rows, cols, fmt, rename)


def json_object_table(path: str, columns: Sequence[str], *, key: str = "", rows_name: str = "",
                      fmt: Mapping[str, str] | None = None, rename: Mapping[str, str] | None = None) -> str:
    """A JSON object of objects (or the one under the dotted ``key``): one row per member, the member's
    name first, then ``columns`` of it (dotted keys allowed)."""
    data: Any = json.loads(_path(path).read_text(encoding="utf-8"))
    for part in filter(None, key.split(".")):
        data = data[part]
    rows = [{rows_name or "": name, **_flatten(v)} for name, v in data.items() if isinstance(v, Mapping)]
    rows, cols = _select(rows, columns, None, None, None, path)
    return markdown_table(rows, [rows_name or "", *cols], fmt, rename)


def finetune_table(folder: str) -> str:
    """The fine-tune comparison's table of ``folder``: ``scripts/keep_profile.py``'s ``table_md``
    (the reproducible columns: EM, F1 with CI, the paired difference with its CI and p)."""
    keep = _keep_profile()
    return keep.table_md(_path(folder) / "results.csv", _path(folder) / "comparison.csv").rstrip("\n")


def finetune_timings(folder: str) -> str:
    """The machine-dependent figures of a fine-tune run (``keep_profile.TIMING_COLUMNS``), from the
    folder's timings file or, for results written before the split, its ``results.csv``."""
    keep = _keep_profile()
    return keep.timings_md(_path(folder)).rstrip("\n")


def _keep_profile() -> Any:
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import keep_profile
    finally:
        sys.path.pop(0)
    return keep_profile


def floors_table() -> str:
    """lab.layout's floors, top first (the same table as the README's Layout section)."""
    from lab.layout import floors_table as table

    return table()


def serve_metrics() -> str:
    """Every Prometheus series of the gateway, derived from the code (see :func:`prometheus_series`)."""
    rows = prometheus_series()
    return markdown_table(rows, ["series", "type", "labels", "what"],
                          rename={"series": "series", "what": "help (from the code)"})


def prometheus_series() -> list[dict[str, str]]:
    """The gateway's series: ``GatewayMetrics``' registry as prometheus_client exposes it, plus every
    gauge the serve floor adds by name (``add_gauges``, ``GaugeMetricFamily``, ``VLLM_GAUGES``),
    found in its source."""
    from prometheus_client import Counter

    from lab.serve.metrics import VLLM_GAUGES, GatewayMetrics

    rows: list[dict[str, str]] = []
    m = GatewayMetrics()
    for coll in list(m.registry._collector_to_names):
        for fam in coll.describe() if hasattr(coll, "describe") else []:
            name = fam.name + ("_total" if isinstance(coll, Counter) else "")
            labels = ", ".join(getattr(coll, "_labelnames", ()) or ())
            rows.append({"series": f"`{name}`", "type": fam.type, "labels": labels, "what": fam.documentation})
    seen = {r["series"] for r in rows}
    for name, doc in _gauges_in_source(ROOT / "lab" / "serve"):
        if f"`{name}`" not in seen:
            seen.add(f"`{name}`")
            rows.append({"series": f"`{name}`", "type": "gauge", "labels": "", "what": doc})
    for name, doc in VLLM_GAUGES.values():
        if f"`{name}`" not in seen:
            seen.add(f"`{name}`")
            rows.append({"series": f"`{name}`", "type": "gauge", "labels": "", "what": doc})
    return rows


def _gauges_in_source(folder: Path) -> Iterable[tuple[str, str]]:
    """(name, help) of each ``add_gauges("name", "help", ...)`` and ``GaugeMetricFamily("name",
    "help")`` call with literal arguments in the ``.py`` files under ``folder``."""
    for path in sorted(folder.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call) or len(node.args) < 2:
                continue
            fn = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            if fn in ("add_gauges", "GaugeMetricFamily") and all(
                    isinstance(a, ast.Constant) and isinstance(a.value, str) for a in node.args[:2]):
                yield node.args[0].value, node.args[1].value


def stage_graph() -> str:
    """The stage graph of ``dvc.yaml`` as a Markdown table: each stage, the stages whose outputs it
    reads (with the files), and the command (``scripts/stage_graph.py`` computes it)."""
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import stage_graph as sg
    finally:
        sys.path.pop(0)
    rows = []
    edges = sg.edges(ROOT / "dvc.yaml")
    for name, stage in sg.stages(ROOT / "dvc.yaml").items():
        reads = [f"{a} (`{', '.join(files)}`)" for (a, b), files in edges.items() if b == name]
        rows.append({"stage": f"[{name}](stages/{name}.md)" if (ROOT / "docs" / "stages" / f"{name}.md").is_file()
                     else name, "reads from": "; ".join(reads) or "data only", "command": f"`{stage['cmd']}`"})
    return markdown_table(rows, ["stage", "reads from", "command"])


def committed(prefix: str) -> str:
    """The files under ``prefix`` that git tracks (``git ls-files``), as a bullet list; without git
    (an exported tarball), the files that exist there."""
    try:
        out = subprocess.run(["git", "ls-files", "--", prefix], cwd=ROOT, capture_output=True, text=True,
                             check=True).stdout.split()
    except (OSError, subprocess.CalledProcessError):
        out = [p.relative_to(ROOT).as_posix() for p in sorted(_path(prefix).rglob("*")) if p.is_file()]
    if not out:
        raise FileNotFoundError(f"no committed file under {prefix}")
    return "\n".join(f"- `{p}`" for p in out if not p.endswith(".gitignore"))


DIRECTIVES: dict[str, Callable[..., str]] = {f.__name__: f for f in (
    csv_table, csv_value, json_value, json_compare, metrics_table, pivot_metrics, json_records, json_object_table, finetune_table,
    finetune_timings, floors_table, serve_metrics, stage_graph, committed)}


def render(markdown: str, where: str = "") -> str:
    """``markdown`` with every ``{{ directive(...) }}`` replaced by its output.

    Raises
    ------
    PluginError
        An unknown directive, arguments that are not literals, or a directive that failed (a missing
        file or column): the message names the page and the directive.
    """
    def one(m: re.Match[str]) -> str:
        name, arg_src = m.group(1), m.group(2)
        if name not in DIRECTIVES:
            raise PluginError(f"{where}: unknown directive {name!r}; known: {', '.join(DIRECTIVES)}")
        try:
            call = ast.parse(f"f({arg_src})", mode="eval").body
            assert isinstance(call, ast.Call)
            args = [ast.literal_eval(a) for a in call.args]
            kwargs = {k.arg: ast.literal_eval(k.value) for k in call.keywords if k.arg}
        except (SyntaxError, ValueError) as exc:
            raise PluginError(f"{where}: {{{{ {name}(...) }}}}: arguments must be Python literals ({exc})") from None
        try:
            return DIRECTIVES[name](*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - reported with the page and directive, then the build stops
            raise PluginError(f"{where}: {{{{ {name}({arg_src}) }}}} failed: {type(exc).__name__}: {exc}") from None

    return _DIRECTIVE.sub(one, markdown)


# --------------------------------------------------------------------------- API reference


def floor_modules() -> dict[str, list[str]]:
    """Floor name -> the modules of ``lab`` on it (every ``.py`` file), top floor first."""
    from lab.imports import LAB_DIR, module_name
    from lab.layout import FLOORS, floor_of

    by_floor: dict[str, list[str]] = {name: [] for name, _, _ in reversed(FLOORS)}
    for path in sorted(LAB_DIR.rglob("*.py")):
        mod = module_name(path)
        by_floor[FLOORS[floor_of(mod)][0]].append(mod)
    return by_floor


def reference_page(floor: str, what: str, modules: list[str]) -> str:
    """The API page of one floor: its description, then every module's docstrings (mkdocstrings)."""
    parts = [f"# {floor}\n", f"{what[0].upper()}{what[1:]}.\n",
             ("Generated from the docstrings of every module on this floor "
              "([the floors](../layout.md)).\n")]
    for mod in modules:
        if mod == "lab":
            continue
        parts.append(f"## `{mod}`\n\n::: {mod}\n    options:\n      heading_level: 3\n      show_root_heading: false\n")
    return "\n".join(parts)


# --------------------------------------------------------------------------- MkDocs events


def on_config(config: Any) -> Any:
    global ROOT
    ROOT = Path(config.config_file_path).resolve().parent
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))   # lab from this checkout, before an installed copy
    from lab.layout import FLOORS

    nav = config.nav or []
    pages = [{name: f"reference/{name}.md"} for name, _, _ in reversed(FLOORS)]
    nav.append({"API reference": pages})
    config.nav = nav
    return config


def on_files(files: Files, config: Any) -> Files:
    from lab.layout import FLOORS

    for png in _committed_pngs():
        files.append(File.generated(config, f"{FIGURES}/{png}", abs_src_path=str(ROOT / png)))
    whats = {name: what for name, what, _ in FLOORS}
    for floor, modules in floor_modules().items():
        files.append(File.generated(config, f"reference/{floor}.md",
                                    content=reference_page(floor, whats[floor], modules)))
    return files


def _committed_pngs() -> list[str]:
    try:
        out = subprocess.run(["git", "ls-files", "--", "results", "benchmarks/results"], cwd=ROOT,
                             capture_output=True, text=True, check=True).stdout.split()
    except (OSError, subprocess.CalledProcessError):
        out = [p.relative_to(ROOT).as_posix() for d in ("results", "benchmarks/results")
               for p in sorted((ROOT / d).rglob("*.png"))]
    return [p for p in out if p.endswith(".png") and (ROOT / p).is_file()]


def on_page_markdown(markdown: str, page: Any, config: Any, files: Files) -> str:
    return render(markdown, page.file.src_uri)
