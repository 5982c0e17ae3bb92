"""The `kube-root-ca.crt` ConfigMap every namespace of a real cluster has.

kube-controller-manager's root-ca-cert-publisher puts the cluster's CA bundle into a ConfigMap of
this name in every namespace, recreates it when it is deleted and puts its data back when it is
changed. Pods mount it (projected service-account volumes do), and code that lists or watches
ConfigMaps sees it, so a namespace without it is a namespace no real cluster has. The emulator
serves plain HTTP and signs nothing, so any CA certificate will do: this is a fixed self-signed
one (EC P-256, valid 2025-2125), generated once with `cryptography`.
"""

from __future__ import annotations

from typing import Any

JSON = dict[str, Any]

NAME = "kube-root-ca.crt"
KEY = "ca.crt"
DESCRIPTION_ANNOTATION = "kubernetes.io/description"
DESCRIPTION = (
    "Contains a CA bundle that can be used to verify the kube-apiserver when using internal "
    "endpoints such as the internal service IP or kubernetes.default.svc. No other usage is "
    "guaranteed across distributions of Kubernetes clusters."
)

CA_PEM = """\
-----BEGIN CERTIFICATE-----
MIIBmTCCAUCgAwIBAgIUZZpXgxlX+S4qCAXeNS2PDR7XtHEwCgYIKoZIzj0EAwIw
KjEoMCYGA1UEAwwfZXh0cmFjdGlvbi1vcGVyYXRvci1lbXVsYXRvci1jYTAgFw0y
NTAxMDEwMDAwMDBaGA8yMTI1MDEwMTAwMDAwMFowKjEoMCYGA1UEAwwfZXh0cmFj
dGlvbi1vcGVyYXRvci1lbXVsYXRvci1jYTBZMBMGByqGSM49AgEGCCqGSM49AwEH
A0IABA5r6RXAVNvr5jJ1ger7sfzyhzXQpJbgo1z0pNc+4Oxtt3EFevEqYIOZry3D
/ZWAo8g40o+PrZX3ljb+XxYPHBijQjBAMA8GA1UdEwEB/wQFMAMBAf8wDgYDVR0P
AQH/BAQDAgGGMB0GA1UdDgQWBBSORXmzY2Glj60oRKQ/Pf4mh6BODTAKBggqhkjO
PQQDAgNHADBEAiBN7o2+uMshT5UhbSna6h9EJ6roBVLpbYAfI3Q+Ic6bjQIgH2zn
GgOaVjzAP6tB2tn4ak5AM/QpL5KZR+Yd8HbzgS4=
-----END CERTIFICATE-----
"""


def new_config_map() -> JSON:
    """The body the publisher creates in a namespace that has no such ConfigMap."""
    return {
        "metadata": {"name": NAME, "annotations": {DESCRIPTION_ANNOTATION: DESCRIPTION}},
        "data": {KEY: CA_PEM},
    }


def reconciled(config_map: JSON) -> JSON | None:
    """The publisher's repair of a changed ConfigMap, or None when it is as it should be.

    Like the real publisher, only the data and a missing description annotation are put back;
    labels and other annotations a client added stay.
    """
    meta = dict(config_map.get("metadata") or {})
    annotations = dict(meta.get("annotations") or {})
    if config_map.get("data") == {KEY: CA_PEM} and annotations.get(DESCRIPTION_ANNOTATION):
        return None
    annotations.setdefault(DESCRIPTION_ANNOTATION, DESCRIPTION)
    meta["annotations"] = annotations
    return {**config_map, "metadata": meta, "data": {KEY: CA_PEM}}
