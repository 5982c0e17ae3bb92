"""The process kubelet as a control plane's node: one identity, one place that wires it up.

The node authenticates as `system:node:<name>` in `system:nodes` (so the Node authorizer and
NodeRestriction confine it as they would a kubelet), and provisions hostPath volumes with the
admin's identity, since a node may not create PersistentVolumes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from extraction_operator.localcluster.node import DEFAULT_NODE_NAME, ProcessNode, node_identity

from .cluster import ControlPlane


def process_node(plane: ControlPlane, workdir: Path, **options: Any) -> ProcessNode:
    """A (not yet started) `ProcessNode` of `plane`; `options` go to `ProcessNode`."""
    identity = plane.issue_identity("node", *node_identity(DEFAULT_NODE_NAME))
    return ProcessNode(
        identity.kubeconfig,
        provisioner_kubeconfig=plane.admin_kubeconfig,
        workdir=workdir,
        **options,
    )
