"""Least-privilege RBAC and a locked-down operator pod, pinned exactly: widening a permission or
weakening the pod must be a deliberate edit of this file, not an accident in a YAML diff."""

from __future__ import annotations

import shlex
from typing import Any

import pytest

from extraction_operator.cli import build_parser

Objects = dict[tuple[str, str], dict[str, Any]]
Rule = tuple[str, str, frozenset[str]]

OPERATOR_RULES: set[Rule] = {
    ("extraction.dev", "extractionruns", frozenset({"get", "list", "watch", "patch"})),
    ("extraction.dev", "extractionruns/status", frozenset({"get", "patch"})),
    ("batch", "jobs", frozenset({"get", "list", "watch", "create", "delete"})),
    ("", "pods", frozenset({"get", "list", "watch"})),
    # Warning Events of the operator's Jobs and pods say why a stage pod does not start.
    ("", "events", frozenset({"create", "patch", "list", "watch"})),
    ("events.k8s.io", "events", frozenset({"create", "patch"})),
    ("apiextensions.k8s.io", "customresourcedefinitions", frozenset({"list", "watch"})),
    ("kopf.dev", "clusterkopfpeerings", frozenset({"get", "list", "watch", "patch"})),
    ("kopf.dev", "kopfpeerings", frozenset({"get", "list", "watch", "patch"})),
    # May a run's stage ServiceAccount keep its circuit breakers? (controller/access.py)
    ("authorization.k8s.io", "subjectaccessreviews", frozenset({"create"})),
    # Per-run stage grants (controller/stagerbac.py); their shape: tests/isolation.
    ("rbac.authorization.k8s.io", "roles", frozenset({"create", "get"})),
    ("rbac.authorization.k8s.io", "rolebindings", frozenset({"create", "get", "patch"})),
}


def flatten(rules: list[dict[str, Any]]) -> set[Rule]:
    """One (group, resource, verbs) triple per group x resource, whatever the YAML grouping."""
    flat: dict[tuple[str, str], set[str]] = {}
    for rule in rules:
        assert set(rule) <= {"apiGroups", "resources", "verbs"}, f"unexpected keys in {rule}"
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                flat.setdefault((group, resource), set()).update(rule["verbs"])
    return {(group, resource, frozenset(verbs)) for (group, resource), verbs in flat.items()}


def wildcards(rules: list[dict[str, Any]]) -> list[str]:
    return [
        f"{key}: {value}"
        for rule in rules
        for key in ("apiGroups", "resources", "verbs", "resourceNames", "nonResourceURLs")
        for value in rule.get(key, [])
        if "*" in value
    ]


# ------------------------------------------------------------------------------------------- RBAC


def test_operator_cluster_role_is_exactly_least_privilege(install_objects: Objects) -> None:
    rules = install_objects[("ClusterRole", "extraction-operator")]["rules"]
    assert wildcards(rules) == []
    assert flatten(rules) == OPERATOR_RULES


def test_operator_never_gets_secrets_or_write_access_to_pods(install_objects: Objects) -> None:
    granted = flatten(install_objects[("ClusterRole", "extraction-operator")]["rules"])
    resources = {resource for _, resource, _ in granted}
    assert "secrets" not in resources
    assert "namespaces" not in resources
    pod_verbs = {verb for _, resource, verbs in granted if resource == "pods" for verb in verbs}
    assert pod_verbs <= {"get", "list", "watch"}


def test_no_role_can_escalate(install_objects: Objects) -> None:
    for (kind, name), obj in install_objects.items():
        if kind in ("ClusterRole", "Role"):
            verbs = {v for rule in obj["rules"] for v in rule["verbs"]}
            assert not verbs & {"escalate", "bind", "impersonate", "*"}, (kind, name)
            assert "aggregationRule" not in obj, (kind, name)


def test_cluster_role_binding_grants_the_operator_account(install_objects: Objects) -> None:
    binding = install_objects[("ClusterRoleBinding", "extraction-operator")]
    account = install_objects[("ServiceAccount", "extraction-operator")]
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": "extraction-operator",
    }
    assert binding["subjects"] == [
        {
            "kind": "ServiceAccount",
            "name": account["metadata"]["name"],
            "namespace": account["metadata"]["namespace"],
        }
    ]


def test_the_stage_account_is_granted_nothing_by_the_install(install_objects: Objects) -> None:
    """The operator grants stage identities `patch` on their own run, per run (tests/isolation)."""
    assert ("ServiceAccount", "extraction-stage") in install_objects
    bindings = [obj for (kind, _), obj in install_objects.items() if kind.endswith("Binding")]
    subjects = [s.get("name") for binding in bindings for s in binding.get("subjects", [])]
    assert subjects == ["extraction-operator"]


# ------------------------------------------------------------------------------------- Deployment


@pytest.fixture(scope="module")
def deployment(install_objects: Objects) -> dict[str, Any]:
    return install_objects[("Deployment", "extraction-operator")]


@pytest.fixture(scope="module")
def container(deployment: dict[str, Any]) -> dict[str, Any]:
    (only,) = deployment["spec"]["template"]["spec"]["containers"]
    return dict(only)


def test_one_replica_recreated_never_rolled(deployment: dict[str, Any]) -> None:
    assert deployment["metadata"]["namespace"] == "extraction-system"
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}


def test_selector_matches_the_pod_labels(deployment: dict[str, Any]) -> None:
    selector = deployment["spec"]["selector"]["matchLabels"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert selector.items() <= labels.items()
    assert all(key.startswith("app.kubernetes.io/") for key in labels)


def test_pod_runs_as_the_operator_account(
    deployment: dict[str, Any], install_objects: Objects
) -> None:
    pod = deployment["spec"]["template"]["spec"]
    assert ("ServiceAccount", pod["serviceAccountName"]) in install_objects
    assert pod["automountServiceAccountToken"] is True


def test_pod_security_context(deployment: dict[str, Any]) -> None:
    pod = deployment["spec"]["template"]["spec"]["securityContext"]
    assert pod["runAsNonRoot"] is True
    assert pod["runAsUser"] == 65532
    assert pod["seccompProfile"] == {"type": "RuntimeDefault"}


def test_container_security_context(container: dict[str, Any]) -> None:
    context = container["securityContext"]
    assert context["runAsNonRoot"] is True
    assert context["runAsUser"] == 65532
    assert context["readOnlyRootFilesystem"] is True
    assert context["allowPrivilegeEscalation"] is False
    assert context.get("privileged", False) is False
    assert context["capabilities"] == {"drop": ["ALL"]}
    assert context["seccompProfile"] == {"type": "RuntimeDefault"}


def test_writable_tmp_on_a_read_only_root(
    deployment: dict[str, Any], container: dict[str, Any]
) -> None:
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    assert "emptyDir" in volumes[mounts["/tmp"]]


def test_image_is_pinned(container: dict[str, Any]) -> None:
    assert container["image"] == "ghcr.io/extraction-dev/extraction-operator:0.1.0"
    assert container["imagePullPolicy"] == "IfNotPresent"


def test_resources_have_requests_and_limits(container: dict[str, Any]) -> None:
    assert container["resources"] == {
        "requests": {"cpu": "100m", "memory": "128Mi"},
        "limits": {"cpu": "500m", "memory": "256Mi"},
    }


def test_args_are_accepted_by_the_cli(container: dict[str, Any]) -> None:
    """The image's entrypoint is `extraction-operator`: the args must parse as its `run`."""
    assert "command" not in container, "keep the image's ENTRYPOINT"
    args = build_parser().parse_args(container["args"])
    assert args.command == "run"
    assert args.metrics_port == 8080
    assert args.liveness == "http://0.0.0.0:8081/healthz"
    assert args.log_format == "json"
    assert args.namespaces == [], "cluster-wide by default (the ClusterRole has no namespaces)"
    assert args.peering == "", "standalone: one replica"


def test_probes_hit_the_liveness_endpoint_the_operator_serves(container: dict[str, Any]) -> None:
    args = build_parser().parse_args(container["args"])
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"metrics": args.metrics_port, "health": 8081}
    assert args.liveness.endswith(f":{ports['health']}/healthz")
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        http = container[probe]["httpGet"]
        assert http["path"] == "/healthz", probe
        assert ports[http["port"]] == 8081, probe


def test_a_startup_probe_holds_the_other_probes_until_kopf_serves(
    container: dict[str, Any],
) -> None:
    """kopf opens /healthz only after its startup handlers ran: readiness or liveness probes
    before that fail with "connection refused", each a Warning Event on the pod. The startup
    probe gates both, waits out a normal start and allows a slow one."""
    startup = container["startupProbe"]
    assert startup["initialDelaySeconds"] >= 1
    budget = startup.get("initialDelaySeconds", 0) + startup.get("periodSeconds", 10) * startup.get(
        "failureThreshold", 3
    )
    assert budget >= 60, "a slow start (busy node, slow API server) must not be killed"
    for probe in ("livenessProbe", "readinessProbe"):
        assert "initialDelaySeconds" not in container[probe], (
            f"{probe}: the startup probe already gates it; a delay only hides a slow start"
        )


def test_args_read_as_one_command_line(container: dict[str, Any]) -> None:
    line = shlex.join(["extraction-operator", *container["args"]])
    assert line == (
        "extraction-operator run --metrics-port=8080 "
        "--liveness=http://0.0.0.0:8081/healthz --log-format=json"
    )


# ------------------------------------------------------------------------------- namespace, labels


def test_operator_namespace_enforces_the_restricted_pod_security_standard(
    install_objects: Objects,
) -> None:
    labels = install_objects[("Namespace", "extraction-system")]["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"


def test_every_installed_object_carries_the_recommended_labels(install_objects: Objects) -> None:
    for (kind, name), obj in install_objects.items():
        labels = obj["metadata"].get("labels", {})
        assert labels.get("app.kubernetes.io/name") == "extraction-operator", (kind, name)
        assert labels.get("app.kubernetes.io/part-of") == "extraction-operator", (kind, name)
