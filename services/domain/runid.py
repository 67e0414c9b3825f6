"""Run identity: the correlation id that names one run of a maintenance configuration.

A run's id is ``<configurationId>/providers/microsoft.maintenance/applyupdates/<runName>``,
where the run name is, in every example we know, ``yyyyMMddHHmmss`` of the run's UTC start
(docs/azure.md: not confirmed to always hold, so a run name that is not a timestamp is still
accepted; its ``start`` is then None).

Azure resource ids are case-insensitive and come back from different APIs in different
casings (``resourceGroups`` vs ``resourcegroups``, ``Microsoft.Maintenance`` vs
``microsoft.maintenance``): compare them only through :attr:`RunId.key` / :func:`same_run`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime

RUN_NAME_FORMAT = "%Y%m%d%H%M%S"

# One path segment of an ARM id: anything but a separator, query/fragment marks, whitespace
# and control characters (a value with those is not an id, whatever else it is).
_SEGMENT = r"[^/?#\s\x00-\x1f\x7f]+"
_CONFIGURATION_ID = (
    rf"/subscriptions/(?P<sub>{_SEGMENT})"
    rf"/resourceGroups/(?P<rg>{_SEGMENT})"
    rf"/providers/Microsoft\.Maintenance/maintenanceConfigurations/(?P<name>{_SEGMENT})"
)
_CONFIGURATION_RE = re.compile(rf"{_CONFIGURATION_ID}/?", re.IGNORECASE)
_RUN_RE = re.compile(
    rf"(?P<config>{_CONFIGURATION_ID})"
    rf"/providers/Microsoft\.Maintenance/applyUpdates/(?P<run>{_SEGMENT})/?",
    re.IGNORECASE,
)
_RUN_NAME_RE = re.compile(r"\d{14}")
# Most ids are ~200 characters; anything far longer is not an id (and is not worth a regex).
_MAX_ID_LENGTH = 2048


class RunIdError(ValueError):
    """A text that is not a run (or configuration) id; the message says what is wrong."""


def _clip(text: str) -> str:
    return text if len(text) <= 120 else text[:117] + "..."


def _check_text(text: object, what: str) -> str:
    if not isinstance(text, str):
        raise RunIdError(f"{what} must be text, not {type(text).__name__}")
    stripped = text.strip()
    if not stripped:
        raise RunIdError(f"{what} is empty")
    if len(stripped) > _MAX_ID_LENGTH:
        raise RunIdError(f"{what} is {len(stripped)} characters long (at most {_MAX_ID_LENGTH})")
    return stripped


def parse_configuration_id(text: str) -> tuple[str, str, str]:
    """Split a maintenance configuration id into (subscription id, resource group, name)."""
    stripped = _check_text(text, "configuration id")
    match = _CONFIGURATION_RE.fullmatch(stripped)
    if match is None:
        raise RunIdError(
            f"not a maintenance configuration id: {_clip(stripped)!r} (expected /subscriptions/"
            "<id>/resourceGroups/<rg>/providers/Microsoft.Maintenance/maintenanceConfigurations/"
            "<name>)"
        )
    return match["sub"], match["rg"], match["name"]


def _start_from_run_name(run_name: str) -> datetime | None:
    if _RUN_NAME_RE.fullmatch(run_name) is None:
        return None
    try:
        return datetime.strptime(run_name, RUN_NAME_FORMAT).replace(tzinfo=UTC)
    except ValueError:  # 14 digits but not a real date (month 13, Feb 30...)
        return None


@dataclass(frozen=True, eq=False)
class RunId:
    """A parsed run id. Equality and hashing ignore case; ``correlation_id`` keeps the
    original text (as received, minus surrounding whitespace and a trailing slash)."""

    subscription_id: str
    resource_group: str
    configuration_name: str
    run_name: str
    correlation_id: str
    _configuration_id: str = field(repr=False, default="")

    @property
    def configuration_id(self) -> str:
        """The maintenance configuration's id, in the casing it was received in."""
        if self._configuration_id:
            return self._configuration_id
        return (
            f"/subscriptions/{self.subscription_id}/resourceGroups/{self.resource_group}"
            "/providers/Microsoft.Maintenance/maintenanceConfigurations/"
            f"{self.configuration_name}"
        )

    @property
    def start(self) -> datetime | None:
        """The run's UTC start read from its name (``yyyyMMddHHmmss``), None if not a time."""
        return _start_from_run_name(self.run_name)

    @property
    def key(self) -> str:
        """A canonical lower-case form: use it as a dict key or to compare ids."""
        return (
            f"/subscriptions/{self.subscription_id}/resourcegroups/{self.resource_group}"
            "/providers/microsoft.maintenance/maintenanceconfigurations/"
            f"{self.configuration_name}/providers/microsoft.maintenance/applyupdates/"
            f"{self.run_name}"
        ).lower()

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RunId):
            return NotImplemented
        return self.key == other.key

    def __hash__(self) -> int:
        return hash(self.key)

    def __str__(self) -> str:
        return self.correlation_id


def parse_run_id(text: str) -> RunId:
    """Parse a run's correlation id; raises :class:`RunIdError` saying what is wrong."""
    stripped = _check_text(text, "run id")
    match = _RUN_RE.fullmatch(stripped)
    if match is None:
        if _CONFIGURATION_RE.fullmatch(stripped):
            raise RunIdError(
                f"{_clip(stripped)!r} is a configuration id, not a run id (it lacks "
                "/providers/microsoft.maintenance/applyupdates/<run name>)"
            )
        raise RunIdError(
            f"not a run id: {_clip(stripped)!r} (expected <configuration id>"
            "/providers/microsoft.maintenance/applyupdates/<yyyyMMddHHmmss>)"
        )
    return RunId(
        subscription_id=match["sub"],
        resource_group=match["rg"],
        configuration_name=match["name"],
        run_name=match["run"],
        correlation_id=stripped.rstrip("/"),
        _configuration_id=match["config"],
    )


def same_run(a: str, b: str) -> bool:
    """Whether two run ids name the same run, ignoring case (and a trailing slash).

    Texts that are not run ids (an event id of some other kind, say) are compared as plain
    strings, case-insensitively, rather than raising: "is this the same run?" has an answer
    (no, unless they are the same text) either way.
    """
    try:
        return parse_run_id(a) == parse_run_id(b)
    except RunIdError:
        return isinstance(a, str) and isinstance(b, str) and a.strip().lower() == b.strip().lower()


def _utc(value: datetime, name: str) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} {value.isoformat()} is naive (a time zone is required)")
    return value.astimezone(UTC)


def expected_run_name(start_utc: datetime) -> str:
    """The run name Azure gives the run starting at ``start_utc``: its UTC ``yyyyMMddHHmmss``
    (an aware datetime in any zone is converted; fractions of a second are dropped)."""
    return _utc(start_utc, "start").strftime(RUN_NAME_FORMAT)


def correlation_id_for(configuration_id: str, start_utc: datetime) -> str:
    """The expected correlation id of the run of ``configuration_id`` starting at
    ``start_utc``: ``<configurationId>/providers/microsoft.maintenance/applyupdates/<name>``.

    The configuration id keeps its casing; the suffix is written lower-case as Azure's own
    events write it.
    """
    stripped = _check_text(configuration_id, "configuration id").rstrip("/")
    parse_configuration_id(stripped)  # refuse anything that is not a configuration id
    return (
        f"{stripped}/providers/microsoft.maintenance/applyupdates/{expected_run_name(start_utc)}"
    )
