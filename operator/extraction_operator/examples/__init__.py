"""The example pipeline: six small stage programs that turn bundled text into a knowledge graph.

Run by the operator as `python -m extraction_operator.examples.<stage>` (the image ships this
package), they share files through the run's workspace (`$EXTRACTION_WORKSPACE/<run>-<uid>/`):

    chunk -> mentions (fan-out) -> entities -> relations -> assemble -> resolve

`chunk` splits the text, `mentions` finds names, dates and quantities per shard, `entities` merges
the shards and groups mentions, `relations` links entities seen in the same chunk, `assemble`
writes the raw knowledge graph and `resolve` merges aliases into `graph.json` plus `report.txt`.
Everything is stdlib and deterministic, so tests can assert the exact graph; `FLAKY_FAILURES=N`
makes a stage fail its first N attempts to show retries (see `runtime.py`).
"""
