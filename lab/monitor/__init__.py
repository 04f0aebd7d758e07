"""The health report of the served bundle (``lab monitor``): the period's traffic read from the
gateway's MLflow traces (volume, latency percentiles, errors, fallbacks, guardrail fire rates, judge
flag rates, thumbs) and drift against the offline evaluation the bundle was promoted on (retrieval
scores, questions with no relevant source, question embeddings), each check with its test and
threshold; a crossed threshold makes the exit code 1.

Modules: :mod:`~lab.monitor.config` (thresholds, the period), :mod:`~lab.monitor.traces` (traces to
rows), :mod:`~lab.monitor.baseline` (the offline side), :mod:`~lab.monitor.stats` (the tests),
:mod:`~lab.monitor.report` (the figures and the verdict), :mod:`~lab.monitor.html` (the page),
:mod:`~lab.monitor.run` (all of it, written into a folder).
"""
