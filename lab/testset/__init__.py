"""Test sets over your own documents: synthetic questions with exact reference offsets, and your own.

==================================  ===============================================================
:mod:`lab.testset.excerpts`         the passages, chosen in code (seeded, spread over documents,
                                    boilerplate skipped) with exact offsets, page and section
:mod:`lab.testset.prompts`          the versioned prompts and the parsing of replies
:mod:`lab.testset.cache`            the content-addressed generation cache in front of a backend
:mod:`lab.testset.filters`          the counted filters, the grounded judge, the copy threshold's fit
:mod:`lab.testset.generate`         :func:`generate_testset`: passages -> questions -> filters -> rows
:mod:`lab.testset.own_questions`    :func:`import_questions`: the team's questions located in the corpus
:mod:`lab.testset.io`               the CSV (Chroma's ``questions_df.csv`` plus columns) and its meta
:mod:`lab.testset.text`             words, overlap measures, locating a string with exact offsets
:mod:`lab.testset.review`           the review decisions beside a test set, and the reviewed set
==================================  ===============================================================

The file format is CONTRACT.md's: the chunking study and ``chroma_excerpts`` read it unchanged.
Importing this package is cheap: models load when a generation cache miss needs one.
"""

from __future__ import annotations

from lab.testset.generate import TYPES, generate_testset
from lab.testset.io import COLUMNS, TestsetResult, read_meta, read_rows
from lab.testset.own_questions import import_questions

__all__ = ["COLUMNS", "TYPES", "TestsetResult", "generate_testset", "import_questions", "read_meta", "read_rows"]
