"""Azure role assignments in the stand-in (``Microsoft.Authorization/roleAssignments``).

Enough of the Authorization API for ``setup events`` to grant a system topic's identity the
right to send queue messages, and for Event Grid's delivery with that identity to check it
(:meth:`RoleAssignments.may_send`). State is guarded by the World's lock (:class:`Host`).
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from services.domain.clock import iso_z
from services.domain.wiring import id_segment
from services.standin.arm import (
    Answer,
    Host,
    ancestor_or_self,
    arm_error,
    bad_request,
    method_not_allowed,
)

AUTHORIZATION_API_VERSIONS: frozenset[str] = frozenset({
    "2015-07-01", "2018-01-01-preview", "2018-09-01-preview", "2020-04-01-preview",
    "2020-10-01-preview", "2022-04-01",
})

#: Built-in role definitions the stand-in knows (name -> GUID, from Azure's built-in roles
#: list). Only the first two carry the data action that sends queue messages.
ROLE_QUEUE_SENDER = "c6a89b2d-59bc-44d0-9896-0f6e12d7b80a"  # Storage Queue Data Message Sender
ROLE_QUEUE_CONTRIBUTOR = "974c5e8b-45b9-4653-ba55-5f855dd0fb88"  # Storage Queue Data Contributor
KNOWN_ROLES: dict[str, str] = {
    ROLE_QUEUE_SENDER: "Storage Queue Data Message Sender",
    ROLE_QUEUE_CONTRIBUTOR: "Storage Queue Data Contributor",
    "19e7f393-937e-4f77-808e-94535e297925": "Storage Queue Data Reader",
    "8a0f0c08-91a1-4084-bc3d-661d67233fed": "Storage Queue Data Message Processor",
    "acdd72a7-3385-48ef-bd42-f606fba81ae7": "Reader",
    "b24988ac-6180-42a0-ab88-20f7382dd24c": "Contributor",
    "8e3af657-a8ff-443c-a75c-2fe8c4bcb635": "Owner",
}
QUEUE_SEND_ROLES = frozenset({ROLE_QUEUE_SENDER, ROLE_QUEUE_CONTRIBUTOR})

_GUID_RE = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-"
                      r"[0-9a-fA-F]{12}")


@dataclass
class RoleAssignment:
    """One role assignment: a built-in role granted to a principal at a scope."""

    id: str
    name: str
    scope: str
    role_definition_id: str
    principal_id: str
    principal_type: str
    created: datetime

    @property
    def role_guid(self) -> str:
        """The role definition's GUID (lower case), the last segment of its id."""
        return self.role_definition_id.rsplit("/", 1)[-1].lower()

    def arm(self) -> dict[str, Any]:
        """The assignment as ARM returns it."""
        stamp = iso_z(self.created)
        return {
            "id": self.id, "name": self.name, "type": "Microsoft.Authorization/roleAssignments",
            "properties": {
                "roleDefinitionId": self.role_definition_id, "principalId": self.principal_id,
                "principalType": self.principal_type, "scope": self.scope,
                "condition": None, "conditionVersion": None, "description": None,
                "createdOn": stamp, "updatedOn": stamp, "createdBy": None, "updatedBy": None,
                "delegatedManagedIdentityResourceId": None,
            },
        }


class RoleAssignments:
    """The role assignments of one World."""

    def __init__(self, host: Host) -> None:
        self.host = host
        self._roles: dict[str, RoleAssignment] = {}  # id lower -> assignment

    def all(self) -> list[RoleAssignment]:
        """Every assignment (any order)."""
        with self.host.lock:
            return list(self._roles.values())

    def may_send(self, principal_id: str | None, account_id: str) -> bool:
        """Whether ``principal_id`` holds a role that sends queue messages on the account."""
        if principal_id is None:
            return False
        with self.host.lock:
            return any(r.principal_id.lower() == principal_id.lower()
                       and r.role_guid in QUEUE_SEND_ROLES
                       and ancestor_or_self(r.scope, account_id)
                       for r in self._roles.values())

    def add(self, scope: str, role_guid: str, principal_id: str,
            *, principal_type: str = "ServicePrincipal") -> RoleAssignment:
        """Grant a built-in role (by GUID) to a principal at a scope."""
        name = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{scope.lower()}|{role_guid}|{principal_id}"))
        sub = id_segment(scope, "subscriptions")
        body = {"properties": {
            "roleDefinitionId": f"/subscriptions/{sub}/providers/Microsoft.Authorization/"
                                f"roleDefinitions/{role_guid}",
            "principalId": principal_id, "principalType": principal_type}}
        status, answer, _ = self.arm_put(scope, name, body)
        if status >= 400:
            raise ValueError(str(answer))
        return self._roles[f"{scope.rstrip('/')}/providers/microsoft.authorization/"
                           f"roleassignments/{name}".lower()]

    # -- ARM ------------------------------------------------------------------------------
    def arm_list(self, scope: str, filter_text: str | None) -> Answer:
        """Role assignments that apply at ``scope``: at it, above it and (without
        ``atScope()``) below it; ``principalId eq '...'`` narrows to one principal."""
        principal: str | None = None
        at_scope = False
        if filter_text:
            text = filter_text.strip()
            match = re.fullmatch(r"principalId\s+eq\s+'([^']*)'", text, re.IGNORECASE)
            if match:
                principal = match.group(1)
            elif text.replace(" ", "").lower() == "atscope()":
                at_scope = True
            else:
                return 400, arm_error("UnsupportedQuery",
                                      f"The filter '{filter_text}' is not supported."), {}
        with self.host.lock:
            out = []
            for ra in self._roles.values():
                if principal is not None and ra.principal_id.lower() != principal.lower():
                    continue
                above = ancestor_or_self(ra.scope, scope)
                below = ancestor_or_self(scope, ra.scope)
                if above or (below and not at_scope):
                    out.append(ra.arm())
            return 200, {"value": sorted(out, key=lambda r: r["id"].lower())}, {}

    def arm_role(self, method: str, scope: str, name: str, body: Any) -> Answer:
        """GET, PUT or DELETE of one role assignment."""
        rid = f"{scope.rstrip('/')}/providers/Microsoft.Authorization/roleAssignments/{name}"
        if method == "GET":
            with self.host.lock:
                ra = self._roles.get(rid.lower())
            if ra is None:
                return 404, arm_error("RoleAssignmentNotFound",
                                      f"The role assignment '{name}' is not found."), {}
            return 200, ra.arm(), {}
        if method == "PUT":
            return self.arm_put(scope, name, body)
        if method == "DELETE":
            with self.host.lock:
                ra = self._roles.pop(rid.lower(), None)
            return (200, ra.arm(), {}) if ra else (204, None, {})
        return method_not_allowed(method)

    def arm_put(self, scope: str, name: str, body: Any) -> Answer:
        """PUT of a role assignment, validated as the Authorization API does."""
        if not _GUID_RE.fullmatch(name):
            return bad_request(f"The role assignment ID '{name}' is not valid. The role "
                               "assignment ID must be a GUID.", "InvalidRoleAssignmentId")
        props = body.get("properties") if isinstance(body, dict) else None
        if not isinstance(props, dict):
            return bad_request("The role assignment needs its properties.",
                               "InvalidRequestContent")
        role_id = str(props.get("roleDefinitionId") or "")
        principal = str(props.get("principalId") or "")
        role_guid = role_id.rstrip("/").rsplit("/", 1)[-1].lower()
        if "/providers/microsoft.authorization/roledefinitions/" not in role_id.lower() or \
                role_guid not in KNOWN_ROLES:
            return bad_request(f"The specified role definition with ID '{role_guid}' does not "
                               "exist.", "RoleDefinitionDoesNotExist")
        if not _GUID_RE.fullmatch(principal):
            return bad_request(f"The principal ID '{principal}' is not valid.",
                               "InvalidPrincipalId")
        rid = f"{scope.rstrip('/')}/providers/Microsoft.Authorization/roleAssignments/{name}"
        with self.host.lock:
            existing = self._roles.get(rid.lower())
            if existing is not None:
                same = (existing.role_guid == role_guid
                        and existing.principal_id.lower() == principal.lower())
                if not same:
                    return bad_request("Tenant ID, application ID, principal ID, and scope are "
                                       "not allowed to be updated.",
                                       "RoleAssignmentUpdateNotPermitted")
                return 201, existing.arm(), {}
            for ra in self._roles.values():
                if (ra.scope.lower() == scope.lower().rstrip("/")
                        and ra.principal_id.lower() == principal.lower()
                        and ra.role_guid == role_guid):
                    return 409, arm_error("RoleAssignmentExists",
                                          "The role assignment already exists."), {}
            ra = RoleAssignment(id=rid, name=name, scope=scope.rstrip("/"),
                                role_definition_id=role_id, principal_id=principal,
                                principal_type=str(props.get("principalType")
                                                   or "ServicePrincipal"),
                                created=self.host.clock.now())
            self._roles[rid.lower()] = ra
            return 201, ra.arm(), {}
