"""extraction-operator: runs multi-stage LLM extraction pipelines as Kubernetes Jobs."""

from __future__ import annotations

__version__ = "0.1.0"
