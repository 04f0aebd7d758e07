"""The files to ingest: source folders walked (recursively, symlinks followed once), single files
taken as they are, include/exclude globs applied, and every file or folder left out listed with why.

Document ids (the issue-30 contract): a file's path relative to the root it was found under, with
its suffix, ``/``-separated (``pdf/x.pdf``); with several roots, prefixed by the root folder's name
(``own_docs/pdf/x.pdf``; a single file given as a root counts its parent folder as the root).

Globs (``--include`` / ``--exclude``, :func:`fnmatch.fnmatchcase`): a pattern without ``/``
matches the file name (``*.pdf``, ``SOURCES.md``), a pattern with ``/`` matches the path relative
to the root (``drafts/*``; ``*`` crosses ``/`` there). A file is ingested when it matches an
include pattern (or there are none), matches no exclude pattern, and has a known suffix.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path

from lab.errors import DataError
from lab.ingest.manifest import SkippedFile


@dataclass(frozen=True)
class SourceFile:
    """A file to ingest.

    Attributes
    ----------
    path:
        Where to read it (absolute, or relative to the working directory as given).
    root:
        The source root (SRC) it was found under, as given.
    source:
        Its path relative to ``root``, ``/``-separated.
    doc_id:
        The document id (``source``, prefixed by the root's name when there are several roots).
    format:
        The extractor's format name.
    """

    path: Path
    root: str
    source: str
    doc_id: str
    format: str

    @property
    def display(self) -> str:
        """The path a person recognises: the root joined with the relative path."""
        return (Path(self.root) / self.source).as_posix() if self.root not in ("", ".") else self.source


def matches(rel: str, pattern: str) -> bool:
    """Whether the relative path ``rel`` matches the glob ``pattern`` (see the module docstring)."""
    return fnmatchcase(rel, pattern) if "/" in pattern else fnmatchcase(rel.rsplit("/", 1)[-1], pattern)


def _prefixes(roots: list[Path]) -> list[str]:
    names = [(r if r.is_dir() else r.parent).resolve().name or "root" for r in roots]
    if len(roots) > 1:
        seen: dict[str, Path] = {}
        for name, root in zip(names, roots, strict=True):
            if name in seen and seen[name].resolve() != root.resolve():
                raise DataError(f"two sources have the folder name {name!r} ({seen[name]} and {root}): document "
                                "ids are prefixed with it when several sources are given; rename one or ingest "
                                "them separately")
            seen[name] = root
    return names


def discover(sources: list[str | Path], suffixes: dict[str, str], include: tuple[str, ...] = (),
             exclude: tuple[str, ...] = (), skip_dirs: tuple[Path, ...] = (),
             base: Path | None = None) -> tuple[list[SourceFile], list[SkippedFile]]:
    """The files under ``sources`` to ingest, sorted by id, and what was left out.

    Parameters
    ----------
    sources:
        Folders (walked recursively) and single files.
    suffixes:
        Known suffix -> format (:func:`lab.ingest.formats.suffix_map`).
    include, exclude:
        Globs (module docstring).
    skip_dirs:
        Folders never walked into (the output folder, when it lies under a source).
    base:
        Folder relative sources are read from (the project root for the DVC stage); the manifest
        keeps them as given. None: the working directory.

    Raises
    ------
    DataError
        A source that does not exist, two roots with the same folder name, or two files with one id.
    """
    given = [Path(s) for s in sources]
    roots = [base / r if base is not None and not r.is_absolute() else r for r in given]
    for g, r in zip(given, roots, strict=True):
        if not r.exists():
            raise DataError(f"{g}: no such file or folder (a source to ingest){f' under {base}' if base else ''}; "
                            "check the path")
    prefixes = _prefixes(roots)
    several = len(roots) > 1
    skip = {p.resolve() for p in skip_dirs}
    files: list[SourceFile] = []
    skipped: list[SkippedFile] = []
    for root, shown, prefix in zip(roots, given, prefixes, strict=True):
        if root.is_dir():
            root_str = str(shown)
            found = _walk(root, root_str, skip, skipped)
        else:
            found = [(root, root.name)]
            root_str = str(shown.parent)
        for path, rel in found:
            reason = _excluded(rel, path, suffixes, include, exclude)
            if reason:
                skipped.append(SkippedFile(source=rel, root=root_str, reason=reason))
                continue
            doc_id = f"{prefix}/{rel}" if several else rel
            files.append(SourceFile(path=path, root=root_str, source=rel, doc_id=doc_id,
                                    format=suffixes[path.suffix.lower()]))
    ids: dict[str, SourceFile] = {}
    for f in files:
        if f.doc_id in ids:
            raise DataError(f"{f.display} and {ids[f.doc_id].display} get the same document id {f.doc_id!r}; "
                            "give one of the sources another folder name")
        ids[f.doc_id] = f
    return sorted(files, key=lambda f: f.doc_id), skipped


def _excluded(rel: str, path: Path, suffixes: dict[str, str], include: tuple[str, ...],
              exclude: tuple[str, ...]) -> str | None:
    """Why ``rel`` is not ingested, or None."""
    hit = next((p for p in exclude if matches(rel, p)), None)
    if hit is not None:
        return f"excluded by --exclude {hit!r}"
    if include and not any(matches(rel, p) for p in include):
        return f"matches no --include pattern ({', '.join(include)})"
    if path.suffix.lower() not in suffixes:
        known = ", ".join(sorted(suffixes))
        return f"unsupported format {path.suffix or '(no suffix)'!r} (known: {known})"
    return None


def _walk(root: Path, root_str: str, skip: set[Path], skipped: list[SkippedFile]) -> list[tuple[Path, str]]:
    """``(path, relative path)`` of every file under ``root``, following symlinks but entering each
    real folder once (a symlink loop or a second link to a folder already walked is listed as
    skipped); hidden entries (``.name``) and ``skip`` folders are listed as skipped."""
    out: list[tuple[Path, str]] = []
    seen = {root.resolve()}

    def rel(p: str) -> str:
        return Path(os.path.relpath(p, root)).as_posix()

    def on_error(err: OSError) -> None:
        skipped.append(SkippedFile(source=rel(err.filename or str(root)), root=root_str,
                                   reason=f"cannot be listed ({err.strerror or err}); check its permissions"))

    for folder, dirs, names in os.walk(root, followlinks=True, onerror=on_error):
        dirs.sort(key=lambda d: (os.path.islink(os.path.join(folder, d)), d))   # real folders before links
        keep = []
        for d in dirs:
            full = os.path.join(folder, d)
            try:
                real = Path(full).resolve()
            except (OSError, RuntimeError):   # Python 3.11 raises RuntimeError on a symlink loop
                skipped.append(SkippedFile(source=rel(full), root=root_str, reason="a symlink loop"))
                continue
            if d.startswith("."):
                skipped.append(SkippedFile(source=rel(full), root=root_str, reason="hidden folder"))
            elif real in skip:
                skipped.append(SkippedFile(source=rel(full), root=root_str, reason="the output folder"))
            elif real in seen:
                why = "a symlink loop (it points back to a folder above it)" if \
                    any(real == Path(a).resolve() for a in _ancestors(full, root)) else \
                    f"a symlink to a folder already walked ({rel(str(real)) if real.is_relative_to(root.resolve()) else real})"
                skipped.append(SkippedFile(source=rel(full), root=root_str, reason=why))
            else:
                seen.add(real)
                keep.append(d)
        dirs[:] = sorted(keep)
        for name in sorted(names):
            full = os.path.join(folder, name)
            if name.startswith("."):
                skipped.append(SkippedFile(source=rel(full), root=root_str, reason="hidden file"))
            elif not os.path.exists(full):
                skipped.append(SkippedFile(source=rel(full), root=root_str, reason=_dangling(full)))
            elif not os.path.isfile(full):
                skipped.append(SkippedFile(source=rel(full), root=root_str, reason="not a regular file"))
            else:
                out.append((Path(full), rel(full)))
    return out


def _dangling(path: str) -> str:
    """Why the link ``path`` leads nowhere."""
    import errno

    try:
        os.stat(path)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "a symlink loop (the link points, through links, back to itself)"
        return f"a broken symlink (its target does not exist: {os.readlink(path) if os.path.islink(path) else path})"
    return "vanished while being listed"


def _ancestors(path: str, root: Path) -> list[str]:
    """The folders from ``root`` down to the parent of ``path`` (as walked, links unresolved)."""
    out = []
    p = Path(path).parent
    while True:
        out.append(str(p))
        if p == root or p == p.parent or len(out) > 256:
            break
        p = p.parent
    return out
