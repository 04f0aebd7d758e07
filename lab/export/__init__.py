"""Export the winner: the fine-tune arm to serve, its bundle, its place in the model registry.

- :mod:`lab.export.winner`: the winner rule (best mean; arms whose 95% CI overlaps it are
  candidates; the cheapest candidate to serve wins), with every arm's score and why one was dropped;
- :mod:`lab.export.registry`: the MLflow model registry (a version per export, the promotion gate's
  result on it, the ``champion`` alias);
- :mod:`lab.export.stage`: the ``export`` stage (``run(cfg, paths) -> ExportResult``), which reads
  the fine-tune study's arms manifest and predictions and writes the bundle.

The bundle itself is a handoff file (:mod:`lab.handoff.bundle`): written here, read by :mod:`lab.serve`.
"""
