"""An in-process `RunApi` with real compare-and-swap semantics.

Used for process-local breakers (a stage started outside the operator, or
`EXTRACTION_BREAKER_SCOPE=local` for comparisons) and as the fake API in unit tests. It behaves like
the API server where the breaker depends on it: every effective write bumps the resourceVersion, a
write that leaves the annotation unchanged does not, and a stale resourceVersion is a conflict.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from .api import RunSnapshot, WriteConflict


class InMemoryRunApi:
    def __init__(
        self,
        annotation: str | None = None,
        circuit_configs: Mapping[str, Any] | None = None,
        description: str = "local/in-memory",
    ) -> None:
        self._lock = threading.Lock()
        self._version = 1
        self._annotation = annotation
        self._configs = circuit_configs
        self._description = description
        self.reads = 0
        self.writes = 0
        self.conflicts = 0

    @property
    def description(self) -> str:
        return self._description

    @property
    def annotation(self) -> str | None:
        with self._lock:
            return self._annotation

    def set_annotation(self, annotation: str | None) -> None:
        """An out-of-band edit (a person with kubectl, another controller)."""
        with self._lock:
            self._annotation = annotation
            self._version += 1

    def _snapshot(self) -> RunSnapshot:
        return RunSnapshot(str(self._version), self._annotation, self._configs)

    def read(self) -> RunSnapshot:
        with self._lock:
            self.reads += 1
            return self._snapshot()

    def write(self, resource_version: str, annotation: str) -> RunSnapshot:
        with self._lock:
            if resource_version != str(self._version):
                self.conflicts += 1
                raise WriteConflict(
                    f"resourceVersion {resource_version} is stale (now {self._version})"
                )
            self.writes += 1
            if annotation != self._annotation:
                self._annotation = annotation
                self._version += 1
            return self._snapshot()
