"""CRD rules: the fields that choose who a run's stage pods are and what code they run stay put
while the run is in flight.

`spec.serviceAccountName` is the identity of every stage pod; `spec.image` is their code, and
`spec.env` / `spec.envFrom` feed it (an env var can point an interpreter at other code, a Secret can
swap credentials). Someone with `patch` on a run, but not on its Jobs or the ServiceAccount, could
otherwise make the operator launch the next attempt of work already in flight with another
identity or another image: the operator would be the confused deputy (docs/security.md). So these
fields may change only while the run is finished (`status.phase` Succeeded or Failed); a re-drive
then runs the new values, knowingly. Per-stage images and env need no rule here: `spec.stages` is
immutable after creation altogether.

The rules sit at the root of the schema because only there can a rule see `status` beside `spec`.
On an update of the main resource the API server keeps the stored status, so `oldSelf.status` is
what the operator last wrote, and a stage identity cannot forge it (it has no status rights).
"""

from __future__ import annotations

from typing import Any, Final

JSON = dict[str, Any]

IDENTITY_FIELDS: Final = ("serviceAccountName", "image", "env", "envFrom")
FINISHED = "has(oldSelf.status) && has(oldSelf.status.phase) && oldSelf.status.phase in ['Succeeded', 'Failed']"  # noqa: E501
PHASE = "(has(oldSelf.status) && has(oldSelf.status.phase) ? oldSelf.status.phase : 'Pending')"


def _unchanged(field: str) -> str:
    new, old = f"self.spec.{field}", f"oldSelf.spec.{field}"
    return f"has({new}) == has({old}) && (!has({new}) || {new} == {old})"


def _rule(field: str) -> JSON:
    return {
        "rule": f"({FINISHED}) || ({_unchanged(field)})",
        "messageExpression": (
            f"'spec.{field} chooses the identity or code of the stage pods and cannot change "
            f"while the run is in flight (phase ' + {PHASE} + '); change it once the run has "
            "Succeeded or Failed, or create a new ExtractionRun'"
        ),
        "fieldPath": f".spec.{field}",
        "reason": "FieldValueForbidden",
    }


ROOT_RULES: Final[list[JSON]] = [_rule(field) for field in IDENTITY_FIELDS]
