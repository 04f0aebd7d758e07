"""The files stages hand each other, one module per file.

A stage's output that another stage (or the server) reads is written and read by exactly one module
here, never by a notebook or by the reading stage's own code. Each file carries ``format`` (what it
is) and ``version`` (its layout); a reader refuses an older, newer or foreign file with an error that
names the file and how to regenerate it. This floor sits below the studies, so a study reads what
another study wrote without importing it.
"""
