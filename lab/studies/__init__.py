"""Studies: each composes the floors below into one experiment a stage runs.

- :mod:`lab.studies.chunking`: chunkers scored as in Chroma's report (the ``chunking_study`` stage).
- :mod:`lab.studies.retrieval`: one retrieval configuration evaluated, and the sweep over many
  (``retrieval_sweep``).
- :mod:`lab.studies.finetune`: prompt vs RAG vs LoRA vs full fine-tuning (``finetune_comparison``).

No study imports another: what two studies share lives on a floor below (``tests/test_layout.py``).
"""
