"""Data loading and data-quality profiling: corpora, QA sets, and the ``data_quality`` stage.

Submodules are imported on demand (pandas, datasketch and ftfy are heavy):

- :mod:`lab.data.corpus`: :func:`~lab.data.corpus.load_corpus` -> documents (+ file problems).
- :mod:`lab.data.qa`: :data:`~lab.data.qa.QA_LOADERS`, one loader per QA format.
- :mod:`lab.data.quality`: :func:`~lab.data.quality.profile` -> :class:`~lab.data.quality.QualityReport`.
"""
