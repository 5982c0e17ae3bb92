"""Defaults and checks a real API server applies to built-in kinds on create.

Only what code reading these objects relies on: Job selector and template labels
(`job-name`, `controller-uid`), `backoffLimit: 6`, pod `restartPolicy`, container
`terminationMessagePath`/`terminationMessagePolicy`, pod `status.phase: Pending`, namespace phase,
and the CRD's `Established` status. A Job template whose `restartPolicy` is not `Never` or
`OnFailure` is rejected, as a real server does.
"""

from __future__ import annotations

from typing import Any

from .resources import ResourceType

JSON = dict[str, Any]


def _container_defaults(container: JSON) -> None:
    container.setdefault("terminationMessagePath", "/dev/termination-log")
    container.setdefault("terminationMessagePolicy", "File")
    image = str(container.get("image", ""))
    tag = image.rsplit("/", 1)[-1]
    pull = "Always" if ":" not in tag or tag.endswith(":latest") else "IfNotPresent"
    container.setdefault("imagePullPolicy", pull)
    container.setdefault("resources", {})


def pod_spec_defaults(spec: JSON, restart_policy: str = "Always") -> None:
    spec.setdefault("restartPolicy", restart_policy)
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("securityContext", {})
    for field in ("containers", "initContainers"):
        for container in spec.get(field) or []:
            if isinstance(container, dict):
                _container_defaults(container)


def pod_spec_problems(spec: Any, field: str) -> list[tuple[str, str]]:
    if not isinstance(spec, dict):
        return [(field, "Required value")]
    containers = spec.get("containers")
    if not isinstance(containers, list) or not containers:
        return [(f"{field}.containers", "Required value")]
    problems = []
    for index, container in enumerate(containers):
        if not isinstance(container, dict) or not container.get("name"):
            problems.append((f"{field}.containers[{index}].name", "Required value"))
    return problems


def _job(obj: JSON) -> list[tuple[str, str]]:
    metadata = obj["metadata"]
    spec = obj.setdefault("spec", {})
    if not isinstance(spec, dict):
        return [("spec", "Invalid value: spec must be an object")]
    template = spec.get("template")
    if not isinstance(template, dict):
        return [("spec.template", "Required value")]
    pod_spec = template.get("spec")
    problems = pod_spec_problems(pod_spec, "spec.template.spec")
    if problems:
        return problems
    assert isinstance(pod_spec, dict)
    restart = pod_spec.get("restartPolicy")
    if restart not in ("Never", "OnFailure"):
        return [
            (
                "spec.template.spec.restartPolicy",
                f'Unsupported value: "{restart or "Always"}": supported values: '
                '"OnFailure", "Never"',
            )
        ]
    uid, name = metadata["uid"], metadata["name"]
    if not spec.get("manualSelector"):
        spec["selector"] = {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}
        labels = template.setdefault("metadata", {}).setdefault("labels", {})
        labels.update(
            {
                "batch.kubernetes.io/controller-uid": uid,
                "batch.kubernetes.io/job-name": name,
                "controller-uid": uid,
                "job-name": name,
            }
        )
    spec.setdefault("parallelism", 1)
    spec.setdefault("completions", 1)
    spec.setdefault("backoffLimit", 6)
    spec.setdefault("completionMode", "NonIndexed")
    spec.setdefault("suspend", False)
    spec.setdefault("podReplacementPolicy", "TerminatingOrFailed")
    pod_spec_defaults(pod_spec, restart_policy=restart)
    obj["status"] = {}
    return []


def _pod(obj: JSON) -> list[tuple[str, str]]:
    spec = obj.get("spec")
    problems = pod_spec_problems(spec, "spec")
    if problems:
        return problems
    assert isinstance(spec, dict)
    pod_spec_defaults(spec)
    obj["status"] = {"phase": "Pending", "qosClass": "BestEffort"}
    return []


def _namespace(obj: JSON) -> list[tuple[str, str]]:
    name = obj["metadata"]["name"]
    obj["metadata"].setdefault("labels", {})["kubernetes.io/metadata.name"] = name
    obj["spec"] = {"finalizers": ["kubernetes"]}
    obj["status"] = {"phase": "Active"}
    return []


def crd_problems(crd: JSON) -> list[tuple[str, str]]:
    """Why a CustomResourceDefinition cannot be served, or []."""
    spec = crd.get("spec")
    if not isinstance(spec, dict):
        return [("spec", "Required value")]
    problems: list[tuple[str, str]] = []
    names = spec.get("names")
    group = spec.get("group")
    if not isinstance(group, str) or not group:
        problems.append(("spec.group", "Required value"))
    if not isinstance(names, dict) or not names.get("plural") or not names.get("kind"):
        problems.append(("spec.names", "Required value: plural and kind are required"))
    elif group and crd["metadata"]["name"] != f"{names['plural']}.{group}":
        problems.append(
            (
                "metadata.name",
                f'Invalid value: "{crd["metadata"]["name"]}": must be spec.names.plural+"."+'
                "spec.group",
            )
        )
    if spec.get("scope", "Namespaced") not in ("Namespaced", "Cluster"):
        problems.append(
            ("spec.scope", 'Unsupported value: supported values: "Cluster", "Namespaced"')
        )
    versions = spec.get("versions")
    if not isinstance(versions, list) or not versions:
        problems.append(("spec.versions", "Required value"))
    else:
        for index, version in enumerate(versions):
            if not isinstance(version, dict) or not version.get("name"):
                problems.append((f"spec.versions[{index}].name", "Required value"))
        if not any(isinstance(v, dict) and v.get("storage") for v in versions):
            problems.append(
                ("spec.versions", "Invalid value: must have exactly one storage version")
            )
    return problems


def crd_status(crd: JSON, timestamp: str) -> JSON:
    """The status the apiextensions controllers would write once the names are accepted."""
    spec = crd["spec"]
    names = dict(spec["names"])
    names.setdefault("singular", names["kind"].lower())
    names.setdefault("listKind", f"{names['kind']}List")
    storage = [v["name"] for v in spec["versions"] if v.get("storage")]
    previous = (crd.get("status") or {}).get("storedVersions") or []
    return {
        "acceptedNames": names,
        "conditions": [
            {
                "type": "NamesAccepted",
                "status": "True",
                "reason": "NoConflicts",
                "message": "no conflicts found",
                "lastTransitionTime": timestamp,
            },
            {
                "type": "Established",
                "status": "True",
                "reason": "InitialNamesAccepted",
                "message": "the initial names have been accepted",
                "lastTransitionTime": timestamp,
            },
        ],
        "storedVersions": sorted(set(previous) | set(storage)),
    }


def apply_create_defaults(resource: ResourceType, obj: JSON) -> list[tuple[str, str]]:
    """Default a new built-in object in place; returns validation problems (empty when fine)."""
    if resource.custom:
        return []
    key = resource.key
    if key == ("batch", "jobs"):
        return _job(obj)
    if key == ("", "pods"):
        return _pod(obj)
    if key == ("", "namespaces"):
        return _namespace(obj)
    if key == ("apiextensions.k8s.io", "customresourcedefinitions"):
        return crd_problems(obj)
    return []
