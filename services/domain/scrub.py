"""Scrubbing a capture: identifying values become consistent pseudonyms, secrets are dropped.

A capture (``aumwatch capture``) is a set of JSON documents read from a tenant: Resource Graph
rows, ARM objects, queue message texts. Before any of it is written, a :class:`Scrubber`

* learns every identifier in all the documents first (subscription and tenant ids, resource
  groups, resource names found in ARM ids and in the columns that carry them, machine names,
  IP addresses, e-mail addresses, the principals in ARM's ``systemData``), then
* replaces each, wherever it occurs (ids, free text such as error messages, event payloads
  inside base64 queue messages), by one pseudonym per identifier: the same value, in any
  casing, always becomes the same pseudonym in every document of the capture;
* removes secrets outright: SAS signatures and URL query strings, connection-string keys,
  bearer tokens and JWTs, and the values of fields named like a secret.

Pseudonyms stay well-formed so the capture still parses: a subscription or tenant id is
still a GUID, a name keeps a short prefix for its kind (``rg-``, ``mc-``, ``vm-``, ``arc-``)
and is a valid ARM segment, so a scrubbed run id still parses with
:func:`services.domain.runid.parse_run_id`. Run names (``yyyyMMddHHmmss``) and patch result
GUIDs name no one and are kept. Pseudonyms are numbered in a fixed order of kind and value,
and GUIDs carry a per-capture random ``salt``: one capture is deterministic, two captures
of the same tenant cannot be joined.

:meth:`Scrubber.report` counts what was scrubbed per kind, never the originals;
:meth:`Scrubber.table` (pseudonym -> original) exists for tests and stays in memory.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import json
import re
import secrets as _secrets
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

REDACTED = "REDACTED"

#: Kinds, in the order pseudonyms are handed out (a value seen as two kinds keeps the first).
KINDS: tuple[str, ...] = ("subscription", "tenant", "resource_group", "configuration",
                          "machine", "resource", "ip", "email", "principal")
#: Name prefixes per kind (ARM segment-safe).
PREFIXES: Mapping[str, str] = {"resource_group": "rg", "configuration": "mc", "machine": "vm",
                               "resource": "res", "principal": "principal"}

_GUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_SEG = r"[^/?#\s\"'\\,;()\[\]{}<>]+"
_SUB_IN_ID = re.compile(rf"/subscriptions/({_SEG})", re.IGNORECASE)
_RG_IN_ID = re.compile(rf"/resourceGroups/({_SEG})", re.IGNORECASE)
# /providers/<namespace>/<type>/<name>[/<type>/<name>]...
_PROVIDER_IN_ID = re.compile(rf"/providers/({_SEG})((?:/{_SEG}/{_SEG})+)", re.IGNORECASE)

#: Child types whose names identify no one (timestamps, GUIDs) or repeat another name.
_KEEP_TYPES = frozenset({"applyupdates", "patchinstallationresults", "patchassessmentresults",
                         "configurationassignments", "eventsubscriptions", "queueservices",
                         "queues", "default", "extensions",
                         # Azure Monitor: ``<resource>/providers/Microsoft.Insights/metrics/
                         # <metric name>``; a metric's name is Azure's, not the tenant's.
                         "metrics", "metricdefinitions"})
_MACHINE_TYPES = {"virtualmachines": "machine", "machines": "arc",
                  "virtualmachinescalesets": "machine"}

_IPV4 = re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?![\w.])")
# Full form with at least three colons (so times like 12:30:00 never match), or a "::" form.
_IPV6 = re.compile(
    r"(?<![\w:.])(?:(?:[0-9A-Fa-f]{1,4}:){3,7}[0-9A-Fa-f]{1,4}"
    r"|(?:[0-9A-Fa-f]{1,4}:){1,6}:(?:[0-9A-Fa-f]{1,4}(?::[0-9A-Fa-f]{1,4}){0,5})?"
    r"|::(?:[0-9A-Fa-f]{1,4}:){0,5}[0-9A-Fa-f]{1,4})(?![\w:])")
_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")

# Secrets: each pattern's match is replaced, keeping the group 1 prefix (the key name).
_SECRET_PATTERNS: tuple[re.Pattern[str], ...] = (
    # Any URL's query string (SAS tokens, webhook keys): keep scheme, host and path only.
    re.compile(r"(https?://[^\s\"'?#]*\?)[^\s\"'#]*", re.IGNORECASE),
    # A bare SAS token or its signature.
    re.compile(r"((?:^|[?&\s\"';])(?:sig|se|sv|sp|spr|srt|ss|st|skoid|sktid|skt|ske|sks|skv)=)"
               r"[^&\s\"';]+", re.IGNORECASE),
    # Connection-string keys and other key=value secrets.
    re.compile(r"((?:AccountKey|SharedAccessKey|SharedAccessSignature|SharedAccessKeyName|"
               r"Password|Pwd|ClientSecret|Secret|Token|AccessKey|ApiKey|Sig)\s*=\s*)"
               r"[^;&\s\"']+", re.IGNORECASE),
    re.compile(r"(\bBearer\s+)[A-Za-z0-9\-._~+/]+=*", re.IGNORECASE),
    re.compile(r"()\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*"),
)
_SECRET_KEY = re.compile(
    r"(token|secret|password|passwd|pwd|connectionstring|accountkey|accesskey|apikey|"
    r"sharedaccesskey|signature|sastoken|sasurl|sasuri|primarykey|secondarykey|credential|"
    r"authorization|endpointurl|webhookurl)$", re.IGNORECASE)

#: Fields (lower-cased) whose value is an identifier of one kind.
_FIELD_KINDS: Mapping[str, str] = {"subscriptionid": "subscription", "tenantid": "tenant",
                                   "resourcegroup": "resource_group",
                                   # ARM's systemData: who created or changed a resource.
                                   "createdby": "principal", "lastmodifiedby": "principal",
                                   "principalid": "principal", "clientid": "principal",
                                   "objectid": "principal",
                                   # An Event Grid topic's id in Azure Monitor (a GUID).
                                   "metricresourceid": "resource"}


class Scrubber:
    """Learns identifiers from documents, then rewrites documents with pseudonyms.

    Use :meth:`learn` on every document, then :meth:`scrub` (or :meth:`scrub_message` for a
    raw queue message text) on each. Learning after scrubbing has begun is allowed; values
    learned late get pseudonyms then.
    """

    def __init__(self, salt: str | None = None) -> None:
        self.salt = (salt or _secrets.token_hex(4)).lower()[:8].rjust(8, "0")
        if not re.fullmatch(r"[0-9a-f]{8}", self.salt):
            raise ValueError("salt must be 8 hexadecimal digits")
        self._candidates: dict[str, set[str]] = {kind: set() for kind in KINDS}
        self._pseudonym: dict[str, str] = {}  # lower-case original -> pseudonym
        self._kind_of: dict[str, str] = {}  # lower-case original -> kind
        self._original: dict[str, str] = {}  # pseudonym -> original (first spelling seen)
        self._counters: Counter[str] = Counter()
        self._arc: set[str] = set()  # machine names (lower) of Azure Arc machines
        self._secrets = 0
        self._dirty = True
        self._long: re.Pattern[str] | None = None
        self._short: re.Pattern[str] | None = None

    # -- learning --------------------------------------------------------------------------
    def learn(self, document: Any) -> None:
        """Collect the identifiers in a JSON-like value (dicts, lists, strings)."""
        self._walk_learn(document, None)
        self._dirty = True

    def learn_message(self, text: str) -> None:
        """Collect the identifiers in a raw queue message (base64 JSON or plain text)."""
        decoded = _decode_base64_text(text)
        body = decoded if decoded is not None else text
        try:
            self.learn(json.loads(body))
        except ValueError:
            self.learn(body)

    def _walk_learn(self, value: Any, key: str | None) -> None:
        if isinstance(value, Mapping):
            for k, v in value.items():
                self._walk_learn(v, str(k))
        elif isinstance(value, list | tuple):
            for item in value:
                self._walk_learn(item, key)
        elif isinstance(value, str):
            self._learn_text(value, key)

    def _add(self, kind: str, value: str) -> None:
        value = value.strip()
        if value and value.lower() != REDACTED.lower():
            self._candidates[kind].add(value)

    def _learn_text(self, text: str, key: str | None) -> None:
        field_kind = _FIELD_KINDS.get((key or "").lower())
        lowered_key = (key or "").lower()
        if field_kind is not None and "/" not in text:
            self._add(field_kind, text)
        elif "subscriptionid" in lowered_key and _GUID.fullmatch(text.strip()):
            self._add("subscription", text)  # ResourceSubscriptionIds and the like
        for match in _SUB_IN_ID.finditer(text):
            self._add("subscription", match.group(1))
        for match in _RG_IN_ID.finditer(text):
            self._add("resource_group", match.group(1))
        for match in _PROVIDER_IN_ID.finditer(text):
            parts = match.group(2).strip("/").split("/")
            for rtype, name in zip(parts[0::2], parts[1::2], strict=False):
                lowered = rtype.lower()
                if lowered == "providers" or lowered in _KEEP_TYPES:
                    continue  # a nested provider namespace, or a name that names no one
                if lowered == "maintenanceconfigurations":
                    self._add("configuration", name)
                elif lowered in _MACHINE_TYPES:
                    self._add("machine", name)
                    if _MACHINE_TYPES[lowered] == "arc":
                        self._arc.add(name.lower())
                else:
                    self._add("resource", name)
        for match in _IPV4.finditer(text):
            if _is_ip(match.group(0)):
                self._add("ip", match.group(0))
        for match in _IPV6.finditer(text):
            if _is_ip(match.group(0)):
                self._add("ip", match.group(0))
        for match in _EMAIL.finditer(text):
            self._add("email", match.group(0))

    # -- pseudonyms ------------------------------------------------------------------------
    def _assign(self) -> None:
        """Hand out pseudonyms to the candidates that have none, in a fixed order."""
        if not self._dirty:
            return
        for kind in KINDS:
            for original in sorted(self._candidates[kind], key=lambda v: (v.lower(), v)):
                low = original.lower()
                if low in self._pseudonym:
                    continue
                pseudonym = self._make(kind, original)
                self._pseudonym[low] = pseudonym
                self._kind_of[low] = kind
                self._original[pseudonym.lower()] = original
        long_ones = [o for o in self._pseudonym if len(o) >= 3]
        short_ones = [o for o in self._pseudonym if len(o) < 3]
        # Names are matched whole: not inside a longer name (letters, digits, '-', '_').
        self._long = (re.compile(r"(?<![\w-])(" + _trie_pattern(long_ones) + r")(?![\w-])",
                                 re.IGNORECASE) if long_ones else None)
        # A one- or two-character name is replaced only as a whole id segment.
        self._short = (re.compile(r"(?<=/)(" + _trie_pattern(short_ones) + r")(?=/|$)",
                                  re.IGNORECASE) if short_ones else None)
        self._dirty = False

    def _make(self, kind: str, original: str) -> str:
        self._counters[kind] += 1
        n = self._counters[kind]
        if kind == "subscription":
            return f"{self.salt}-0000-4000-8000-{n:012x}"
        if kind == "tenant":
            return f"{self.salt}-0000-4000-9000-{n:012x}"
        if kind == "ip":
            if ":" in original:
                return f"2001:db8::{n:x}"
            # Documentation ranges (RFC 5737), then a private range: never a real host.
            ranges = ("192.0.2", "198.51.100", "203.0.113")
            block, host = divmod(n - 1, 254)
            if block < len(ranges):
                return f"{ranges[block]}.{host + 1}"
            return f"10.255.{(n // 254) % 256}.{n % 254 + 1}"
        if kind == "email":
            return f"user-{n:03d}@example.com"
        prefix = PREFIXES.get(kind, "res")
        if kind == "machine" and original.lower() in self._arc:
            self._counters["arc"] += 1
            return f"arc-{self._counters['arc']:03d}"
        return f"{prefix}-{n:03d}"

    # -- scrubbing -------------------------------------------------------------------------
    def scrub(self, document: Any) -> Any:
        """A copy of ``document`` with identifiers replaced and secrets removed."""
        self._assign()
        return self._walk_scrub(document, None)

    def scrub_message(self, text: str) -> str:
        """A raw queue message text, scrubbed in the form it came in: base64 text stays
        base64 (of the scrubbed JSON), plain text stays plain."""
        self._assign()
        decoded = _decode_base64_text(text)
        if decoded is None:
            return self.scrub_text(text)
        return base64.b64encode(self._scrub_body(decoded).encode("utf-8")).decode("ascii")

    def _scrub_body(self, body: str) -> str:
        try:
            parsed = json.loads(body)
        except ValueError:
            return self.scrub_text(body)
        return json.dumps(self.scrub(parsed), ensure_ascii=False)

    def _walk_scrub(self, value: Any, key: str | None) -> Any:
        if isinstance(value, Mapping):
            # Keys are the schema, except a tag's name, which is the user's text.
            rename = self.scrub_text if (key or "").lower() == "tags" else str
            return {rename(str(k)): self._walk_scrub(v, str(k)) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self._walk_scrub(item, key) for item in value]
        if isinstance(value, str):
            if key is not None and _SECRET_KEY.search(key) and value:
                self._secrets += 1
                return REDACTED
            return self.scrub_text(value)
        return value

    def scrub_text(self, text: str) -> str:
        """One string, scrubbed: secrets first (a key may look like anything), then
        identifiers, then IP and e-mail addresses not learned before."""
        self._assign()
        for pattern in _SECRET_PATTERNS:
            text, count = pattern.subn(lambda m: m.group(1) + REDACTED, text)
            self._secrets += count

        def swap(match: re.Match[str]) -> str:
            return self._pseudonym[match.group(1).lower()]

        if self._long is not None:
            text = self._long.sub(swap, text)
        if self._short is not None:
            text = self._short.sub(swap, text)
        # Addresses in text not seen while learning still never survive.
        for pattern in (_IPV4, _IPV6, _EMAIL):
            text = pattern.sub(self._late, text)
        return text

    def _late(self, match: re.Match[str]) -> str:
        value = match.group(0)
        low = value.lower()
        if low in self._pseudonym or low in self._original:
            return self._pseudonym.get(low, value)
        if "@" not in value and not _is_ip(value):
            return value
        kind = "email" if "@" in value else "ip"
        pseudonym = self._make(kind, value)
        self._pseudonym[low] = pseudonym
        self._kind_of[low] = kind
        self._original[pseudonym.lower()] = value
        return pseudonym

    # -- what was done ---------------------------------------------------------------------
    def report(self) -> dict[str, int]:
        """How many distinct values of each kind were replaced, and how many secrets were
        removed. Never the values themselves."""
        self._assign()
        counts = Counter(self._kind_of.values())
        out = {kind: counts.get(kind, 0) for kind in KINDS}
        out["secrets"] = self._secrets
        return out

    def table(self) -> dict[str, str]:
        """Pseudonym -> original. For tests only: never write it next to a capture."""
        self._assign()
        return dict(self._original)

    def pseudonym(self, original: str) -> str | None:
        """The pseudonym given to ``original`` (any casing), None when it was not learned."""
        self._assign()
        return self._pseudonym.get(original.lower())


def _trie_pattern(words: Iterable[str]) -> str:
    """One regex alternation of lower-case ``words``, factored as a trie (``web-0(?:1|2)``):
    a plain alternation of thousands of machine names tries each name at every position of
    the text, a trie only the names that share the prefix read so far. Backtracking makes a
    longer word win where a shorter one is its prefix and the boundary check fails."""
    trie: dict[str, Any] = {}
    for word in words:
        node = trie
        for char in word:
            node = node.setdefault(char, {})
        node[""] = {}  # end of a word

    def render(node: dict[str, Any]) -> str:
        branches = [re.escape(char) + render(child)
                    for char, child in sorted(node.items(), key=lambda kv: kv[0]) if char]
        if not branches:
            return ""
        body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
        if "" in node:
            # A word ends here, and longer ones go on: try the longer first.
            return "(?:" + body + ")?"
        return body

    return render(trie)


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _decode_base64_text(text: str) -> str | None:
    """The UTF-8 text inside a base64 message, None when ``text`` is not base64 of text that
    looks like JSON (plain JSON is not base64: '{' is not in the alphabet)."""
    stripped = text.strip()
    if not stripped or stripped[0] in "{[":
        return None
    try:
        raw = base64.b64decode(stripped, validate=True)
        decoded = raw.decode("utf-8")
    except (binascii.Error, ValueError):
        return None
    return decoded if decoded.lstrip()[:1] in ("{", "[") else None


def scrub_documents(documents: Mapping[str, Any], messages: Iterable[str] = (),
                    *, salt: str | None = None) -> tuple[dict[str, Any], list[str], Scrubber]:
    """Scrub named documents and raw queue messages together (one pseudonym table).

    Returns the scrubbed documents, the scrubbed messages and the scrubber (for its report).
    """
    scrubber = Scrubber(salt)
    texts = list(messages)
    for document in documents.values():
        scrubber.learn(document)
    for text in texts:
        scrubber.learn_message(text)
    out = {name: scrubber.scrub(document) for name, document in documents.items()}
    return out, [scrubber.scrub_message(t) for t in texts], scrubber
