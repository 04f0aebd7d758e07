"""The red team: attacks on the served bundle through the gateway, judged, with success rates.

============================  =========================================================================
:mod:`lab.redteam.seeds`      seed sets and strategy templates, written for lab (no classifier's data)
:mod:`lab.redteam.attacks`    attacks per category from seeds, strategies and mutations; seeded, bounded
:mod:`lab.redteam.planted`    fictional pages planted in the served index: instructions and PII
:mod:`lab.redteam.runner`     probes sent to each gateway (policy on, off), multi-turn, time-bounded
:mod:`lab.redteam.target`     a bundle served in process, or a gateway URL on loopback
:mod:`lab.redteam.rules`      rule judges: canaries, PII values, system-prompt words, task markers
:mod:`lab.redteam.judge`      the grounded judge where no rule sees evidence, with its agreement
:mod:`lab.redteam.report`     success rates with Wilson CIs, benign false blocks, successful attacks
:mod:`lab.redteam.stage`      the ``redteam`` stage and ``lab redteam``
============================  =========================================================================

A floor above serving: it builds the gateway the way ``lab serve`` does and talks to it over HTTP
(in process through httpx's ASGI transport, or on 127.0.0.1), so what it measures is what a client
of the gateway meets.
"""
