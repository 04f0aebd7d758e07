"""Metrics, numpy only: chunk-level (token IoU, precision-Ω), IR, QA, agreement, bootstrap CIs."""
