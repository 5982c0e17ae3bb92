"""The object store: etcd plus the registry layer of a real API server, in memory.

One cluster-wide counter gives every write a `resourceVersion`; every write is also an event in a
bounded history, so a watch can resume from any version still retained and gets `410 Gone` for
older ones. All writes go through one lock and one commit path, which is what makes the
semantics hold together: optimistic concurrency (409 on a stale resourceVersion), no-op writes
that change nothing, `generation` bumped only by spec changes, the status subresource, finalizers
and `deletionTimestamp`, graceful pod deletion, namespace termination, CRD registration and
ownerReference garbage collection.

Stored objects are never mutated after commit: a write builds a new dict. That lets readers (list,
watch fan-out) share them without copying and caches each object's JSON encoding once.

The store may be called from another thread (tests poke it directly); watchers live on the
server's event loop and are woken with `call_soon_threadsafe` in that case.
"""

from __future__ import annotations

import builtins
import collections
import copy
import json
import threading
import uuid
from collections.abc import Callable, Iterable
from typing import Any

from . import cel, errors, eventsv1, metadata, patches, rootca, schema, timestamps
from .defaulting import apply_create_defaults, crd_problems, crd_status
from .history import Event, History, Stored, Watcher
from .resources import ResourceRegistry, ResourceType
from .selectors import FieldSelector, LabelSelector

JSON = dict[str, Any]
ObjectKey = tuple[str, str]  # (namespace or "", name)
TypeKey = tuple[str, str]  # (group, plural)

CRD_KEY: TypeKey = ("apiextensions.k8s.io", "customresourcedefinitions")
NAMESPACE_KEY: TypeKey = ("", "namespaces")
CONFIGMAP_KEY: TypeKey = ("", "configmaps")
POD_KEY: TypeKey = ("", "pods")
JOB_KEY: TypeKey = ("batch", "jobs")

BACKGROUND, FOREGROUND, ORPHAN = "Background", "Foreground", "Orphan"
FOREGROUND_FINALIZER = "foregroundDeletion"
ORPHAN_FINALIZER = "orphan"


def _type_key(resource: ResourceType) -> TypeKey:
    return resource.key


def _meta(obj: JSON) -> JSON:
    meta = obj.get("metadata")
    return meta if isinstance(meta, dict) else {}


def _without(obj: JSON, *keys: str) -> JSON:
    return {k: v for k, v in obj.items() if k not in keys}


class Store:
    """All objects of all resources, the version counter, the event history and the watchers."""

    def __init__(self, registry: ResourceRegistry, history_size: int = 20000) -> None:
        self.registry = registry
        self._lock = threading.RLock()
        self._objects: dict[TypeKey, dict[ObjectKey, Stored]] = collections.defaultdict(dict)
        self._uids: dict[str, tuple[TypeKey, ObjectKey]] = {}
        self._rv = 0
        self._history = History(history_size)
        self._seed()

    # ----------------------------------------------------------------- basics

    def _seed(self) -> None:
        namespaces = self.registry.lookup("", "v1", "namespaces")
        assert namespaces is not None
        # The namespaces a real cluster starts with (node Leases live in kube-node-lease).
        for name in ("default", "kube-node-lease", "kube-public", "kube-system"):
            self.create(namespaces, None, {"metadata": {"name": name}})

    @property
    def resource_version(self) -> int:
        with self._lock:
            return self._rv

    def _next_rv(self) -> int:
        self._rv += 1
        return self._rv

    def _bucket(self, resource: ResourceType) -> dict[ObjectKey, Stored]:
        return self._objects[_type_key(resource)]

    def _key(self, resource: ResourceType, namespace: str | None, name: str) -> ObjectKey:
        return (namespace or "" if resource.namespaced else "", name)

    def _existing(self, resource: ResourceType, namespace: str | None, name: str) -> Stored:
        found = self._bucket(resource).get(self._key(resource, namespace, name))
        if found is None:
            raise errors.not_found(resource.group, resource.plural, name)
        return found

    def _present(self, obj: Stored, resource: ResourceType) -> Stored:
        """The object as served at `resource`'s version (CRD conversion strategy None; an Event
        converted between core/v1 and events.k8s.io/v1)."""
        if obj.obj.get("apiVersion") == resource.api_version:
            return obj
        if eventsv1.is_event(resource.group, resource.plural):
            return Stored(eventsv1.convert(obj.obj, resource.api_version))
        return Stored({**obj.obj, "apiVersion": resource.api_version})

    def present(self, obj: Stored, resource: ResourceType) -> Stored:
        """`obj` as a client of `resource` sees it (for watch streams)."""
        return self._present(obj, resource)

    def _commit(
        self,
        resource: ResourceType,
        key: ObjectKey,
        obj: JSON,
        event_type: str,
        previous: Stored | None,
    ) -> Stored:
        rv = self._next_rv()
        obj["metadata"]["resourceVersion"] = str(rv)
        stored = Stored(obj)
        bucket = self._bucket(resource)
        uid = obj["metadata"].get("uid")
        if event_type == "DELETED":
            bucket.pop(key, None)
            if uid:
                self._uids.pop(uid, None)
        else:
            bucket[key] = stored
            if uid:
                self._uids[uid] = (_type_key(resource), key)
        self._history.append(Event(rv, event_type, _type_key(resource), key[0], stored, previous))
        return stored

    # ----------------------------------------------------------------- reads

    def get(self, resource: ResourceType, namespace: str | None, name: str) -> Stored:
        with self._lock:
            return self._present(self._existing(resource, namespace, name), resource)

    def exists(self, resource: ResourceType, namespace: str | None, name: str) -> bool:
        with self._lock:
            return self._key(resource, namespace, name) in self._bucket(resource)

    def list(
        self,
        resource: ResourceType,
        namespace: str | None,
        labels: LabelSelector | None = None,
        fields: FieldSelector | None = None,
    ) -> tuple[builtins.list[Stored], int]:
        """Matching objects in key order (namespace, name) and the list's resourceVersion."""
        with self._lock:
            bucket = self._bucket(resource)
            name = fields.only_name() if fields is not None else None
            keys = [k for k in bucket if k[1] == name] if name is not None else list(bucket)
            keys.sort()
            items = []
            for key in keys:
                if resource.namespaced and namespace is not None and key[0] != namespace:
                    continue
                stored = self._present(bucket[key], resource)
                if labels is not None and not labels.matches(stored.obj):
                    continue
                if fields is not None and not fields.matches(stored.obj):
                    continue
                items.append(stored)
            return items, self._rv

    def watch(
        self, resource: ResourceType, namespace: str | None, since: int | None
    ) -> tuple[builtins.list[Event], Watcher, int]:
        """Register a watcher: (events it must see first, the watcher, the rv at registration).

        The first events are a replay or synthetic ADDED events; the registration rv is what a
        bookmark may claim before any live event arrives.

        `since` None or 0 means "current state, then changes" (synthetic ADDED events); a positive
        version replays the retained history after it, or raises 410 when that is compacted away.
        """
        with self._lock:
            key = _type_key(resource)
            ns = namespace if resource.namespaced else None
            if since:
                initial = self._history.since(since, key, ns)
            else:
                objects = sorted(self._bucket(resource).items())
                initial = [
                    Event(s.rv, "ADDED", key, k[0], s, None)
                    for k, s in objects
                    if ns is None or k[0] == ns
                ]
            watcher = Watcher(key, ns)
            self._history.add(watcher)
            return initial, watcher, self._rv

    def unwatch(self, watcher: Watcher) -> None:
        with self._lock:
            self._history.remove(watcher)

    def drop_watches(self) -> int:
        """End every open watch stream now (clients see the stream close and re-watch)."""
        with self._lock:
            return self._history.drop_all()

    @property
    def watch_count(self) -> int:
        with self._lock:
            return self._history.watcher_count

    def compact(self) -> int:
        """Forget the whole event history, as etcd compaction does; returns the compacted rv."""
        with self._lock:
            self._history.compact(self._rv)
            return self._rv

    # ----------------------------------------------------------------- create

    def create(
        self, resource: ResourceType, namespace: str | None, body: Any, *, strict: bool = False
    ) -> Stored:
        """Create an object; `strict` rejects fields the CRD schema does not declare (400)."""
        with self._lock:
            obj = self._prepare_create(resource, namespace, body, strict)
            key = self._key(resource, obj["metadata"].get("namespace"), obj["metadata"]["name"])
            if key in self._bucket(resource):
                raise errors.already_exists(resource.group, resource.plural, key[1])
            stored = self._commit(resource, key, obj, "ADDED", None)
            if _type_key(resource) == CRD_KEY:
                self.registry.register_crd(stored.obj)
            if _type_key(resource) == NAMESPACE_KEY:
                self._publish_root_ca(key[1])
            return self._present(stored, resource)

    def _check_body(self, resource: ResourceType, body: Any) -> JSON:
        """What the API server checks of a body's apiVersion and kind before anything else."""
        if not isinstance(body, dict):
            raise errors.bad_request(f"the body of a {resource.kind} must be a JSON object")
        api_version, kind = body.get("apiVersion"), body.get("kind")
        versions = {
            r.api_version for r in self.registry.versions_of(resource.group, resource.plural)
        } | {resource.api_version}
        if resource.custom:
            # Decoded as unstructured: the apiVersion is checked first, the kind by validation.
            if api_version is not None and api_version not in versions:
                raise errors.bad_request(
                    f"the API version in the data ({api_version}) does not match the expected "
                    f"API version ({resource.api_version})"
                )
            if kind is not None and kind != resource.kind:
                name = str(_meta(body).get("name", ""))
                problem = f'Invalid value: "{kind}": must be {resource.kind}'
                raise errors.invalid(str(kind), resource.group, name, [("kind", problem)])
        elif (kind is not None and kind != resource.kind) or (
            api_version is not None and api_version not in versions
        ):
            raise errors.bad_request(self._mismatch(resource, str(api_version or ""), kind))
        if "metadata" in body and not isinstance(body["metadata"], dict):
            raise errors.invalid(
                resource.kind, resource.group, "", [("metadata", "must be an object")]
            )
        return body

    def _mismatch(self, resource: ResourceType, api_version: str, kind: Any) -> str:
        """A built-in's decoder on a body of another kind or version (Go's wording)."""
        kind = str(kind or resource.kind)
        api_version = api_version or resource.api_version
        version = api_version.rpartition("/")[2]
        prefix = f'{kind} in version "{version}" cannot be handled as a {resource.kind}'
        group = api_version.rpartition("/")[0]
        known = any(r.kind == kind for r in self.registry.by_group_version(group, version))
        if not known:
            return (
                f'{prefix}: no kind "{kind}" is registered for version "{api_version}" in scheme '
                '"pkg/runtime/scheme.go:111"'
            )
        internal = "core" if resource.group in ("", "events.k8s.io") else resource.group
        return (
            f"{prefix}: converting ({version}.{kind}) to ({internal.split('.')[0]}."
            f"{resource.kind}): unknown conversion"
        )

    @staticmethod
    def _normalize(resource: ResourceType, obj: JSON) -> None:
        """Timestamps as the API server stores them once decoded (UTC, Go's precision)."""
        if not resource.custom:
            timestamps.normalize((resource.group, resource.plural), obj)

    @staticmethod
    def _check_decodable(resource: ResourceType, body: JSON) -> None:
        """A create or update body that decoding into the Go type fails on is a 400."""
        if resource.custom:
            return
        problem = timestamps.decode_problem((resource.group, resource.plural), body)
        if problem is not None:
            api_version = str(body.get("apiVersion") or resource.api_version)
            raise errors.bad_request(
                f"{body.get('kind') or resource.kind} in version "
                f'"{api_version.rpartition("/")[2]}" cannot be handled as a {resource.kind}: '
                f"{problem}"
            )

    def _prepare_create(
        self, resource: ResourceType, namespace: str | None, body: Any, strict: bool
    ) -> JSON:
        body = self._check_body(resource, body)
        self._check_decodable(resource, body)
        obj: JSON = json.loads(json.dumps(body))
        self._normalize(resource, obj)
        meta: JSON = obj.setdefault("metadata", {})
        name = meta.get("name")
        if not name:
            prefix = meta.get("generateName")
            if not prefix:
                raise errors.invalid(
                    resource.kind,
                    resource.group,
                    "",
                    [("metadata.name", "Required value: name or generateName is required")],
                )
            name = metadata.generate_name(str(prefix))
            while self._key(resource, namespace, name) in self._bucket(resource):
                name = metadata.generate_name(str(prefix))
        name = str(name)
        meta["name"] = name
        problems = []
        dns_label = _type_key(resource) == NAMESPACE_KEY
        if (problem := metadata.name_problem(name, dns_label=dns_label)) is not None:
            problems.append(("metadata.name", problem))
        problems += metadata.metadata_problems(meta)
        if resource.namespaced:
            body_ns = meta.get("namespace")
            if namespace is None:
                namespace = body_ns
            if not namespace:
                raise errors.bad_request("a namespace must be given for a namespaced resource")
            if body_ns and body_ns != namespace:
                raise errors.bad_request(
                    "the namespace of the provided object does not match the namespace sent on "
                    "the request"
                )
            meta["namespace"] = namespace
            self._check_namespace_open(namespace)
        else:
            meta.pop("namespace", None)
        for dropped in ("deletionTimestamp", "deletionGracePeriodSeconds", "managedFields",
                        "selfLink", "resourceVersion"):  # fmt: skip
            meta.pop(dropped, None)
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = metadata.now()
        if resource.has_generation:
            meta["generation"] = 1
        else:
            meta.pop("generation", None)
        obj["apiVersion"] = resource.api_version
        obj["kind"] = resource.kind
        if resource.has_status and resource.custom:
            obj.pop("status", None)
        if problems:
            raise errors.invalid(resource.kind, resource.group, name, problems)
        obj = self._apply_schema(resource, obj, name, strict)
        problems = apply_create_defaults(resource, obj)
        if problems:
            raise errors.invalid(resource.kind, resource.group, name, problems)
        if eventsv1.is_event(resource.group, resource.plural):
            problems = eventsv1.problems(obj, resource.api_version)
            if problems:  # validated as the internal (core) Event, whichever API posted it
                raise errors.invalid(resource.kind, "", name, problems)
        if _type_key(resource) == CRD_KEY:
            obj["status"] = crd_status(obj, meta["creationTimestamp"])
        return obj

    def _check_namespace_open(self, namespace: str) -> None:
        ns = self._objects[NAMESPACE_KEY].get(("", namespace))
        if ns is None:
            raise errors.not_found("", "namespaces", namespace)
        if _meta(ns.obj).get("deletionTimestamp"):
            raise errors.forbidden(
                f"unable to create new content in namespace {namespace} because it is being "
                "terminated"
            )

    def _apply_schema(
        self,
        resource: ResourceType,
        obj: JSON,
        name: str,
        strict: bool = False,
        old: JSON | None = None,
    ) -> JSON:
        if not resource.custom or resource.schema is None:
            return obj
        if strict:
            unknown = schema.unknown_fields(obj, resource.schema, root=True)
            if unknown:
                raise errors.bad_request(
                    f'{resource.kind} in version "{resource.version}" cannot be handled as a '
                    f"{resource.kind}: strict decoding error: "
                    + ", ".join(f'unknown field "{field}"' for field in unknown)
                )
        pruned = schema.prune_and_default(obj, resource.schema, root=True)
        assert isinstance(pruned, dict)
        problems = schema.validate(pruned, resource.schema)
        if not problems:
            problems = cel.validate_object(pruned, resource.schema, old)
        if problems:
            raise errors.invalid(resource.kind, resource.group, name, problems)
        return pruned

    # ----------------------------------------------------------------- update / patch

    def update(
        self,
        resource: ResourceType,
        namespace: str | None,
        name: str,
        body: Any,
        subresource: str | None = None,
        *,
        strict: bool = False,
    ) -> Stored:
        with self._lock:
            body = self._check_body(resource, body)
            self._check_decodable(resource, body)
            meta = _meta(body)
            if meta.get("name") and meta["name"] != name:
                raise errors.bad_request(
                    f"the name of the object ({meta['name']}) does not match the name on the URL "
                    f"({name})"
                )
            current = self._existing(resource, namespace, name)
            rv = meta.get("resourceVersion")
            if not rv and resource.custom:
                raise errors.invalid(
                    resource.kind,
                    resource.group,
                    name,
                    [
                        (
                            "metadata.resourceVersion",
                            "Invalid value: 0: must be specified for an update",
                        )
                    ],
                )
            copied = json.loads(json.dumps(body))
            self._normalize(resource, copied)
            return self._write(resource, current, copied, rv, subresource, strict)

    def patch(
        self,
        resource: ResourceType,
        namespace: str | None,
        name: str,
        content_type: str,
        body: Any,
        subresource: str | None = None,
        *,
        strict: bool = False,
    ) -> Stored:
        with self._lock:
            current = self._existing(resource, namespace, name)
            base = json.loads(self._present(current, resource).raw)
            if content_type == patches.MERGE or (
                content_type == patches.STRATEGIC and resource.custom
            ):
                if content_type == patches.STRATEGIC:
                    raise errors.ApiError(
                        415,
                        "UnsupportedMediaType",
                        "strategic merge patch is not supported for custom resources; use "
                        "application/merge-patch+json",
                    )
                if not isinstance(body, dict):
                    raise errors.bad_request("a merge patch must be a JSON object")
                patched = patches.merge_patch(base, body)
            elif content_type == patches.STRATEGIC:
                if not isinstance(body, dict):
                    raise errors.bad_request("a strategic merge patch must be a JSON object")
                patched = patches.strategic_merge_patch(base, body)
            elif content_type == patches.JSON_PATCH:
                patched = patches.json_patch(base, body)
            elif content_type == patches.APPLY:
                if not isinstance(body, dict):
                    raise errors.bad_request("an apply patch must be a YAML or JSON object")
                patched = patches.merge_patch(base, body)
            else:
                raise errors.unsupported_media_type(content_type)
            if not isinstance(patched, dict):
                raise errors.bad_request("the patched object is not a JSON object")
            self._check_body(resource, patched)
            problem = (
                None
                if resource.custom
                else timestamps.decode_problem((resource.group, resource.plural), patched)
            )
            if problem is not None:
                shown = body if content_type == patches.STRATEGIC else patched
                raise errors.undecodable_patch(shown, content_type == patches.STRATEGIC, problem)
            self._normalize(resource, patched)
            rv = _meta(patched).get("resourceVersion")
            return self._write(resource, current, patched, rv, subresource, strict)

    def _write(
        self,
        resource: ResourceType,
        current: Stored,
        new: JSON,
        precondition_rv: Any,
        subresource: str | None,
        strict: bool = False,
    ) -> Stored:
        old = current.obj
        old_meta = old["metadata"]
        name = old_meta["name"]
        if precondition_rv and str(precondition_rv) != old_meta["resourceVersion"]:
            raise errors.conflict(resource.group, resource.plural, name)
        if subresource == "status":
            if not resource.has_status:
                raise errors.not_found(resource.group, f"{resource.plural}/status", name)
            obj = {**copy.deepcopy(old), "status": new.get("status")}
            if obj["status"] is None:
                obj.pop("status")
        elif subresource is not None:
            raise errors.not_found(resource.group, f"{resource.plural}/{subresource}", name)
        else:
            obj = new
            if resource.has_status:
                if "status" in old:
                    obj["status"] = copy.deepcopy(old["status"])
                else:
                    obj.pop("status", None)
        new_meta = obj.get("metadata")
        if not isinstance(new_meta, dict):
            new_meta = {}
        problems = metadata.metadata_problems(new_meta)
        if problems:
            raise errors.invalid(resource.kind, resource.group, name, problems)
        # Fields a client cannot change.
        for fixed in ("name", "namespace", "uid", "creationTimestamp", "deletionTimestamp",
                      "deletionGracePeriodSeconds", "generation", "generateName"):  # fmt: skip
            if fixed in old_meta:
                new_meta[fixed] = old_meta[fixed]
            else:
                new_meta.pop(fixed, None)
        new_meta.pop("managedFields", None)
        new_meta.pop("selfLink", None)
        new_meta["resourceVersion"] = old_meta["resourceVersion"]
        obj["metadata"] = new_meta
        if eventsv1.is_event(resource.group, resource.plural):
            obj["apiVersion"] = resource.api_version  # stored in the shape it is written in
        else:
            obj["apiVersion"] = old.get("apiVersion", resource.api_version)
        obj["kind"] = resource.kind
        if old_meta.get("deletionTimestamp"):
            added = set(new_meta.get("finalizers") or []) - set(old_meta.get("finalizers") or [])
            if added:
                raise errors.invalid(
                    resource.kind,
                    resource.group,
                    name,
                    [
                        (
                            "metadata.finalizers",
                            "Forbidden: no new finalizers can be added if the "
                            "object is being deleted, found new finalizers " + repr(sorted(added)),
                        )
                    ],
                )
        obj = self._apply_schema(resource, obj, name, strict, old)
        new_meta = obj["metadata"]  # pruning returns a copy
        if _type_key(resource) == CRD_KEY and subresource is None:
            problems = crd_problems(obj)
            if problems:
                raise errors.invalid(resource.kind, resource.group, name, problems)
            obj["status"] = crd_status(obj, old_meta["creationTimestamp"])
        if resource.has_generation and self._spec_changed(resource, old, obj):
            new_meta["generation"] = int(old_meta.get("generation", 1)) + 1
        if obj == old:
            return self._present(current, resource)  # a no-op write changes nothing
        key = self._key(resource, old_meta.get("namespace"), name)
        if (
            new_meta.get("deletionTimestamp")
            and not new_meta.get("finalizers")
            and not new_meta.get("deletionGracePeriodSeconds")
        ):
            # The last finalizer is gone: the object is deleted instead of written.
            return self._present(self._remove(resource, key, obj, current), resource)
        stored = self._commit(resource, key, obj, "MODIFIED", current)
        if _type_key(resource) == CRD_KEY:
            self.registry.register_crd(stored.obj)
        if self._is_root_ca(resource, key):
            self._publish_root_ca(key[0])
        return self._present(stored, resource)

    @staticmethod
    def _spec_changed(resource: ResourceType, old: JSON, new: JSON) -> bool:
        ignored = ("metadata", "status") if resource.has_status else ("metadata",)
        return _without(old, *ignored) != _without(new, *ignored)

    # ----------------------------------------------------------------- delete

    def delete(
        self,
        resource: ResourceType,
        namespace: str | None,
        name: str,
        *,
        propagation: str | None = None,
        grace_period: int | None = None,
        preconditions: JSON | None = None,
    ) -> Stored:
        with self._lock:
            current = self._existing(resource, namespace, name)
            meta = current.obj["metadata"]
            if preconditions:
                uid, rv = preconditions.get("uid"), preconditions.get("resourceVersion")
                if uid and uid != meta.get("uid"):
                    raise errors.conflict(
                        resource.group,
                        resource.plural,
                        name,
                        f"Precondition failed: UID in precondition: {uid}, UID in object meta: "
                        f"{meta.get('uid')}",
                    )
                if rv and str(rv) != meta["resourceVersion"]:
                    raise errors.conflict(
                        resource.group,
                        resource.plural,
                        name,
                        f"Precondition failed: ResourceVersion in precondition: {rv}, "
                        f"ResourceVersion in object meta: {meta['resourceVersion']}",
                    )
            if propagation not in (None, BACKGROUND, FOREGROUND, ORPHAN):
                raise errors.bad_request(
                    f'propagationPolicy "{propagation}" must be Background, Foreground or Orphan'
                )
            policy = propagation or self._default_propagation(resource)
            return self._present(self._delete(resource, current, policy, grace_period), resource)

    @staticmethod
    def _default_propagation(resource: ResourceType) -> str:
        # batch/v1 Jobs orphan their pods by default, for backwards compatibility; kubectl and
        # careful clients pass propagationPolicy=Background explicitly.
        return ORPHAN if _type_key(resource) == JOB_KEY else BACKGROUND

    def _delete(
        self, resource: ResourceType, current: Stored, policy: str, grace_period: int | None
    ) -> Stored:
        old = current.obj
        meta = old["metadata"]
        key = self._key(resource, meta.get("namespace"), meta["name"])
        if policy == ORPHAN:
            self._orphan_dependents(meta["uid"])
        if _type_key(resource) == NAMESPACE_KEY:
            return self._delete_namespace(resource, current)
        finalizers = list(meta.get("finalizers") or [])
        if (
            policy == FOREGROUND
            and FOREGROUND_FINALIZER not in finalizers
            and self._dependents(meta["uid"], meta.get("namespace"))
        ):
            finalizers.append(FOREGROUND_FINALIZER)
        grace = self._pod_grace(resource, old, grace_period)
        if not finalizers and not grace:
            return self._remove(resource, key, copy.deepcopy(old), current)
        obj = copy.deepcopy(old)
        new_meta = obj["metadata"]
        new_meta["finalizers"] = finalizers
        if not new_meta["finalizers"]:
            new_meta.pop("finalizers")
        existing_grace = new_meta.get("deletionGracePeriodSeconds")
        if new_meta.get("deletionTimestamp") and (
            existing_grace is None or grace >= existing_grace
        ):
            if obj == old:
                return current  # already being deleted; nothing new to record
        else:
            new_meta["deletionTimestamp"] = metadata.timestamp_in(grace)
            new_meta["deletionGracePeriodSeconds"] = grace
            if resource.has_generation:
                new_meta["generation"] = int(new_meta.get("generation", 1)) + 1
        stored = self._commit(resource, key, obj, "MODIFIED", current)
        if policy == FOREGROUND:
            for dep_type, dep_key in self._dependents(meta["uid"], meta.get("namespace")):
                self._delete_dependent(dep_type, dep_key, BACKGROUND)
        return stored

    def _pod_grace(self, resource: ResourceType, obj: JSON, requested: int | None) -> int:
        """Graceful deletion applies to pods bound to a node that have not finished yet.

        An unbound or finished pod goes at once (as on a real server); a running pod gets a
        `deletionTimestamp` and stays until its kubelet (here: the job runner) deletes it with
        `gracePeriodSeconds=0` after stopping its process.
        """
        if _type_key(resource) != POD_KEY:
            return 0
        spec, status = obj.get("spec") or {}, obj.get("status") or {}
        if not spec.get("nodeName") or status.get("phase") in ("Succeeded", "Failed"):
            return 0
        if requested is not None:
            return max(0, int(requested))
        return int(spec.get("terminationGracePeriodSeconds", 30))

    def _remove(self, resource: ResourceType, key: ObjectKey, obj: JSON, current: Stored) -> Stored:
        stored = self._commit(resource, key, obj, "DELETED", current)
        self._after_removal(resource, stored)
        return stored

    def _after_removal(self, resource: ResourceType, stored: Stored) -> None:
        meta = stored.obj["metadata"]
        type_key = _type_key(resource)
        if type_key == CRD_KEY:
            self._remove_custom_resources(stored.obj)
        self._collect_dependents(meta["uid"], meta.get("namespace"))
        self._release_foreground_owners(stored.obj)
        namespace = meta.get("namespace")
        if namespace:
            self._finish_namespace_if_empty(namespace)
        if namespace and self._is_root_ca(resource, (namespace, meta["name"])):
            self._publish_root_ca(namespace)

    # ----------------------------------------------------------------- garbage collection

    def _dependents(
        self, owner_uid: str, namespace: str | None
    ) -> builtins.list[tuple[TypeKey, ObjectKey]]:
        found = []
        for type_key, bucket in self._objects.items():
            for key, stored in bucket.items():
                if namespace and key[0] not in (namespace, ""):
                    continue
                owners = _meta(stored.obj).get("ownerReferences") or []
                if any(isinstance(o, dict) and o.get("uid") == owner_uid for o in owners):
                    found.append((type_key, key))
        return found

    def _resource_for(self, type_key: TypeKey) -> ResourceType | None:
        """The resource type that stores `type_key`'s objects (the core one for Events)."""
        found = [r for r in self.registry.all() if r.key == type_key]
        return next((r for r in found if r.group == type_key[0]), found[0] if found else None)

    def _collect_dependents(self, owner_uid: str, namespace: str | None) -> None:
        """Background propagation: the owner is gone, so delete what it alone owned."""
        for type_key, key in self._dependents(owner_uid, namespace):
            stored = self._objects[type_key].get(key)
            resource = self._resource_for(type_key)
            if stored is None or resource is None:
                continue
            owners = _meta(stored.obj).get("ownerReferences") or []
            alive = [o for o in owners if o.get("uid") != owner_uid and o.get("uid") in self._uids]
            if alive:
                self._strip_owner(resource, stored, owner_uid)
            else:
                self._delete_dependent(type_key, key, BACKGROUND)

    def _delete_dependent(self, type_key: TypeKey, key: ObjectKey, policy: str) -> None:
        stored = self._objects[type_key].get(key)
        resource = self._resource_for(type_key)
        if stored is None or resource is None:
            return
        if _meta(stored.obj).get("deletionTimestamp") and _type_key(resource) != POD_KEY:
            return
        self._delete(resource, stored, policy, None)

    def _strip_owner(self, resource: ResourceType, stored: Stored, owner_uid: str) -> None:
        obj = copy.deepcopy(stored.obj)
        owners = [
            o for o in obj["metadata"].get("ownerReferences") or [] if o.get("uid") != owner_uid
        ]
        if owners:
            obj["metadata"]["ownerReferences"] = owners
        else:
            obj["metadata"].pop("ownerReferences", None)
        key = self._key(resource, obj["metadata"].get("namespace"), obj["metadata"]["name"])
        self._commit(resource, key, obj, "MODIFIED", stored)

    def _orphan_dependents(self, owner_uid: str) -> None:
        for type_key, key in self._dependents(owner_uid, None):
            stored = self._objects[type_key].get(key)
            resource = self._resource_for(type_key)
            if stored is not None and resource is not None:
                self._strip_owner(resource, stored, owner_uid)

    def _release_foreground_owners(self, removed: JSON) -> None:
        """Foreground propagation: an owner waits for its dependents, then goes itself."""
        for owner in _meta(removed).get("ownerReferences") or []:
            where = self._uids.get(str(owner.get("uid")))
            if where is None:
                continue
            type_key, key = where
            stored = self._objects[type_key].get(key)
            resource = self._resource_for(type_key)
            if stored is None or resource is None:
                continue
            meta = stored.obj["metadata"]
            if FOREGROUND_FINALIZER not in (meta.get("finalizers") or []):
                continue
            if self._dependents(meta["uid"], meta.get("namespace")):
                continue
            obj = copy.deepcopy(stored.obj)
            finalizers = [f for f in meta["finalizers"] if f != FOREGROUND_FINALIZER]
            if finalizers:
                obj["metadata"]["finalizers"] = finalizers
                self._commit(resource, key, obj, "MODIFIED", stored)
            else:
                obj["metadata"].pop("finalizers")
                self._remove(resource, key, obj, stored)

    # ----------------------------------------------------------------- namespaces and CRDs

    def _delete_namespace(self, resource: ResourceType, current: Stored) -> Stored:
        name = current.obj["metadata"]["name"]
        stored = current
        if not current.obj["metadata"].get("deletionTimestamp"):
            obj = copy.deepcopy(current.obj)
            obj["metadata"]["deletionTimestamp"] = metadata.now()
            obj["status"] = {"phase": "Terminating"}
            stored = self._commit(resource, ("", name), obj, "MODIFIED", current)
        for type_key, bucket in list(self._objects.items()):
            if type_key == NAMESPACE_KEY:
                continue
            for key in [k for k in bucket if k[0] == name]:
                self._delete_dependent(type_key, key, BACKGROUND)
        self._finish_namespace_if_empty(name)
        return self._objects[NAMESPACE_KEY].get(("", name), stored)

    def _finish_namespace_if_empty(self, namespace: str) -> None:
        ns = self._objects[NAMESPACE_KEY].get(("", namespace))
        if ns is None or not ns.obj["metadata"].get("deletionTimestamp"):
            return
        for type_key, bucket in self._objects.items():
            if type_key != NAMESPACE_KEY and any(k[0] == namespace for k in bucket):
                return
        resource = self._resource_for(NAMESPACE_KEY)
        assert resource is not None
        obj = copy.deepcopy(ns.obj)
        obj["spec"] = {}
        self._remove(resource, ("", namespace), obj, ns)

    @staticmethod
    def _is_root_ca(resource: ResourceType, key: ObjectKey) -> bool:
        return _type_key(resource) == CONFIGMAP_KEY and key[1] == rootca.NAME

    def _publish_root_ca(self, namespace: str) -> None:
        """kube-controller-manager's root-ca-cert-publisher, right after the change it reacts to.

        A live namespace gets the `kube-root-ca.crt` ConfigMap when it is created, gets it back
        when it is deleted and gets its data back when it is changed; a terminating namespace is
        left alone, so it can empty and go.
        """
        ns = self._objects[NAMESPACE_KEY].get(("", namespace))
        resource = self._resource_for(CONFIGMAP_KEY)
        if ns is None or _meta(ns.obj).get("deletionTimestamp") or resource is None:
            return
        current = self._objects[CONFIGMAP_KEY].get((namespace, rootca.NAME))
        if current is None:
            self.create(resource, namespace, rootca.new_config_map())
            return
        repaired = rootca.reconciled(current.obj)
        if repaired is not None:
            self._write(resource, current, copy.deepcopy(repaired), None, None)

    def _remove_custom_resources(self, crd: JSON) -> None:
        removed = self.registry.unregister_crd(crd["metadata"]["name"])
        if not removed:
            return
        resource = removed[0]
        bucket = self._objects[_type_key(resource)]
        for key, stored in sorted(bucket.items()):
            self._remove(resource, key, copy.deepcopy(stored.obj), stored)

    # ----------------------------------------------------------------- in-process helpers

    def find_type(self, api_version: str, kind_or_plural: str) -> ResourceType:
        """The resource type for an apiVersion and a kind or plural, for in-process callers."""
        group, _, version = api_version.rpartition("/")
        for resource in self.registry.by_group_version(group, version):
            if kind_or_plural in (resource.kind, resource.plural):
                return resource
        raise errors.ApiError(
            404,
            "NotFound",
            f'the server could not find the requested resource "{kind_or_plural}" in '
            f'"{api_version}"',
        )

    def objects(self, resource: ResourceType) -> Iterable[JSON]:
        """Deep copies of every stored object of `resource` (for test assertions)."""
        items, _ = self.list(resource, None)
        return [json.loads(s.raw) for s in items]

    def run_locked(self, action: Callable[[], Any]) -> Any:
        with self._lock:
            return action()
