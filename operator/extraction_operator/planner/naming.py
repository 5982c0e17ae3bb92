"""Node keys and their spellings in Kubernetes names and label values.

A node key is the user's name for a unit of work: `chunk`, or `right[3]` for shard 3 of a fan-out
stage. Names and label values allow no brackets, so every node also has a *spelling*: the stage
name for a plain stage, `right-3` for a shard. Spellings must be unique within a run, and a naive
scheme is not: a stage literally called `right-3` collides with shard 3 of `right`. Stages are
immutable once a run exists, so a spelling may depend on the whole spec: colliding candidates get
a short stable hash of their node key, and uniqueness is then checked (and repaired with a longer
hash) rather than assumed.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Mapping, Sequence

from extraction_operator.api.constants import ANNOTATION_NODE

__all__ = ["ANNOTATION_NODE", "job_name", "node_spellings", "run_label_value"]

MAX_NAME = 63  # Job names end up in the pod label `job-name`, so they must fit a label value.
_HASH_LEN = 6


def node_key(stage: str, shard: int | None) -> str:
    """`chunk` for a plain stage, `right[3]` for shard 3 of a fan-out stage."""
    return stage if shard is None else f"{stage}[{shard}]"


def stable_hash(text: str, length: int = _HASH_LEN) -> str:
    """A short lowercase hex digest: the same text gives the same hash in every process."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:length]


def _candidate(key: str) -> str:
    return key.replace("[", "-").replace("]", "")


def node_spellings(keys: Sequence[str]) -> dict[str, str]:
    """Map each node key (in the given order) to a unique DNS-label-safe spelling.

    Deterministic for a given key list. Keys whose natural spelling is shared with another key
    are all suffixed with a hash of their own key, so none of them silently wins the plain name."""
    spellings = {key: _candidate(key) for key in keys}
    length = _HASH_LEN
    while True:
        counts = Counter(spellings.values())
        clashing = [key for key in keys if counts[spellings[key]] > 1]
        if not clashing:
            return spellings
        for key in clashing:
            spellings[key] = f"{_candidate(key)}-{stable_hash(key, length)}"
        length += 2  # a clash with a literal `x-<hash>` stage name is repaired by a longer hash
        if length > 64:  # cannot happen for distinct keys; guards the loop anyway
            raise ValueError(f"cannot spell node keys uniquely: {sorted(set(clashing))}")


def shorten(name: str, limit: int = MAX_NAME) -> str:
    """`name` unchanged when it fits, else a prefix plus a stable hash of the whole name.

    The result never ends in `-` or `.`, so it stays a valid DNS label / label value."""
    if len(name) <= limit:
        return name
    digest = stable_hash(name, 10)
    prefix = name[: limit - len(digest) - 1].rstrip("-.")
    return f"{prefix}-{digest}"


def job_name(run_name: str, node: str, attempt: int, spellings: Mapping[str, str]) -> str:
    """`<run>-<node spelling>-<attempt>`, shortened with a stable hash when over 63 characters.

    The attempt stays visible at the end even when shortened, so `kubectl get jobs` still sorts a
    node's attempts next to each other."""
    spelling = spellings.get(node, _candidate(node))
    suffix = f"-{attempt}"
    base = f"{run_name}-{spelling}"
    if len(base) + len(suffix) <= MAX_NAME:
        return base + suffix
    return shorten(base, MAX_NAME - len(suffix)) + suffix


def run_label_value(run_name: str) -> str:
    """The `extraction.dev/run` label value: the run name, hashed down when over 63 characters."""
    return shorten(run_name)
