"""OCR of scanned pages with Tesseract, offline, off by default.

Tesseract is the engine: Apache-2.0, packaged by every Linux distribution (Debian:
``apt-get install -y tesseract-ocr``, English included), no model download at run time. It is
called as a child process (``tesseract stdin stdout``) with the page image on standard input, so
no Python binding (pytesseract) is needed and nothing is written to disk. Pages are rendered by
pypdfium2, the PDF extractor's own library. ``scripts/setup.sh --with ocr`` installs the package.
"""

from __future__ import annotations

import functools
import io
import shutil
import subprocess
from typing import Any

from lab.errors import DataError

#: How to get Tesseract (for the error when it is missing).
INSTALL_HINT = ("install it with `sudo apt-get install -y tesseract-ocr` (Debian/Ubuntu; or "
                "`bash scripts/setup.sh --with ocr`), `brew install tesseract` (macOS), or run without --ocr")
#: Seconds one page may take before it is given up (a warning, not a failure of the file).
PAGE_TIMEOUT_S = 120


class OcrUnavailable(DataError):
    """``--ocr`` was asked for but Tesseract (or a language it needs) is not installed."""


def tesseract_path() -> str | None:
    """The ``tesseract`` executable on ``PATH``, or None."""
    return shutil.which("tesseract")


@functools.lru_cache(maxsize=4)
def _version(exe: str) -> str:
    out = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=30, check=False)
    first = (out.stdout or out.stderr).strip().splitlines()
    return first[0].split()[-1] if first else "unknown"


def check_available(lang: str = "eng") -> str:
    """Tesseract's identity (``"tesseract 5.3.0 (eng)"``) when it is installed with ``lang``.

    Raises
    ------
    OcrUnavailable
        No ``tesseract`` on ``PATH``, or one of the languages in ``lang`` is not installed; the
        message says how to install it.
    """
    exe = tesseract_path()
    if exe is None:
        raise OcrUnavailable(f"--ocr needs the Tesseract OCR engine, which is not installed (no `tesseract` on PATH): "
                             f"{INSTALL_HINT}")
    out = subprocess.run([exe, "--list-langs"], capture_output=True, text=True, timeout=30, check=False)
    have = {line.strip() for line in out.stdout.splitlines()[1:] if line.strip()}
    missing = [x for x in lang.split("+") if x not in have]
    if missing:
        raise OcrUnavailable(f"Tesseract has no language data for {', '.join(missing)} (installed: "
                             f"{', '.join(sorted(have)) or 'none'}); install it, e.g. `sudo apt-get install -y "
                             f"tesseract-ocr-{missing[0]}`, or set the OCR language to one of those")
    return f"tesseract {_version(exe)} ({lang})"


def ocr_image(image: Any, lang: str = "eng") -> str:
    """The text Tesseract reads in ``image`` (a PIL image).

    Raises
    ------
    OcrUnavailable
        Tesseract is not installed.
    RuntimeError
        Tesseract failed or took longer than :data:`PAGE_TIMEOUT_S`; the message has its error output.
    """
    exe = tesseract_path()
    if exe is None:
        raise OcrUnavailable(f"OCR needs Tesseract, which is not installed: {INSTALL_HINT}")
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    try:
        out = subprocess.run([exe, "stdin", "stdout", "-l", lang, "--psm", "3"], input=buf.getvalue(),
                             capture_output=True, timeout=PAGE_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"Tesseract took more than {PAGE_TIMEOUT_S} s") from None
    if out.returncode != 0:
        raise RuntimeError(f"Tesseract exited with {out.returncode}: {out.stderr.decode(errors='replace').strip()[-300:]}")
    return out.stdout.decode("utf-8", errors="replace")
