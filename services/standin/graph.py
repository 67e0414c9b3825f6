"""Resource Graph query execution for the stand-in: real KQL over the World's tables.

A query runs through duckdb-kql (KQL translated to DuckDB SQL) over the tables built from
:meth:`World.tables`: ``resources``, ``maintenanceresources``, ``patchassessmentresources`` and
``patchinstallationresources``, with ARG's common columns (id, name, type, tenantId, kind,
location, resourceGroup, subscriptionId, managedBy, sku, plan, properties, tags, identity,
zones, extendedLocation). The dynamic columns (``properties``, ``tags``, ``sku``...) are DuckDB
``JSON`` columns, which duckdb-kql treats as KQL ``dynamic``. The tables are loaded once per
``World.version`` (through a newline-delimited JSON file: DuckDB reads 20k rows in ~0.2 s
where row inserts take ~15 s) and narrowed to the request's subscriptions by views. With a
Resource Graph lag (:mod:`services.standin.lag`) they hold each row as visible now and are
reloaded when the World changes or a lagging change comes due.

KQL surface checked to work (duckdb-kql 1.1.2), e.g.:

* ``where`` with ``==``, ``=~``, ``!=``, ``has``, ``contains``, ``startswith``, ``in``,
  ``and``/``or``; dynamic access ``properties.x``, ``properties["x"]``, nested paths;
* ``extend``/``project`` with ``tostring()``, ``toint()``, ``tolower()``, ``todatetime()``,
  ``strcat()``; ``project-away``;
* ``order by`` / ``sort by``, ``take``/``limit``, ``top N by``, ``count``, ``distinct``,
  ``summarize count() by ...``;
* ``join kind=leftouter|inner (...) on $left.a == $right.b`` and ``on a``;
  ``union``; ``let``; ``mv-expand`` of arrays (not of property bags: DuckDB refuses it);
* ``iff``, ``case``, ``isnotempty``, ``split``, ``extract``, ``datetime_diff``,
  ``parse_json``, ``countif``, ``arg_max``, ``make_list``;
* ``now()`` and ``ago()`` read the World's clock (``query_now``), not the OS clock.

Known gaps (400 ``UnsupportedQuery``): ``bag_keys``, ``evaluate`` plugins, and whatever
else duckdb-kql 1.1.2 has no mapping for.

Refused as the real Resource Graph refuses them (:func:`check_limits`): operators outside
its documented list (so ``lookup`` and ``project-rename``, which duckdb-kql would run), join
flavours other than innerunique/inner/leftouter/fullouter, more than three ``join`` (at most
one across tables), more than three ``mv-expand``, more than three ``union`` legs. A query
that passes here therefore stays inside the real service's limits.

Not offered: control commands (``.show``...), writes, ``cluster()``/``database()``, tables
other than the three above; they are refused with ARG's 400 shape
(``BadRequest`` / ``InvalidQuery``), as is any query duckdb-kql cannot translate or DuckDB
cannot bind (unknown column...). Paging follows ARG: at most 1000 rows a page, ``$top`` up
to 1000, ``$skip``, and an opaque ``$skipToken`` (base64 of the offset and a hash of the
query and scopes) only when more rows remain and the query has no ``take``/``limit``/``top``
(found on the parsed query, not by text matching).
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import json
import os
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

from services.standin.lag import ArgLag, LaggedView
from services.standin.world import World

#: The tables a query may read, as ARG names them.
TABLES: tuple[str, ...] = ("resources", "maintenanceresources", "patchinstallationresources",
                          "patchassessmentresources")
#: ARG's common columns and whether each is dynamic (JSON).
COLUMNS: tuple[tuple[str, bool], ...] = (
    ("id", False), ("name", False), ("type", False), ("tenantId", False), ("kind", False),
    ("location", False), ("resourceGroup", False), ("subscriptionId", False),
    ("managedBy", False), ("sku", True), ("plan", True), ("properties", True), ("tags", True),
    ("identity", True), ("zones", True), ("extendedLocation", True),
)
MAX_PAGE = 1000
_RESULT_CACHE_SIZE = 8
#: KQL functions that read the current time (duckdb-kql answers them from ``query_now``).
_CLOCK_FUNCTIONS = frozenset({"now", "ago"})
_BASE_PREFIX = "__aumwatch_base_"


class GraphQueryError(Exception):
    """A request ARG would refuse with 400; ``code`` goes into ``error.details``."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def body(self) -> dict[str, Any]:
        """ARG's error envelope for this refusal."""
        return {"error": {
            "code": "BadRequest",
            "message": "Please provide below info when asking for support: the query and the "
                       "x-ms-request-id of this response.",
            "details": [
                {"code": "InvalidQuery",
                 "message": "Query is invalid. Please refer to the documentation for the Azure "
                            "Resource Graph service and fix the error before retrying."},
                {"code": self.code, "message": self.message},
            ],
        }}


@dataclass(frozen=True)
class GraphRequest:
    """A parsed QueryRequest body."""

    query: str
    subscriptions: tuple[str, ...] = ()
    management_groups: tuple[str, ...] = ()
    top: int | None = None
    skip: int = 0
    skip_token: str | None = None
    result_format: str = "objectArray"

    @classmethod
    def from_json(cls, body: Any) -> GraphRequest:
        """Validate a QueryRequest JSON body; GraphQueryError names what is wrong."""
        if not isinstance(body, dict):
            raise GraphQueryError("InvalidRequestContent",
                                  "The request body must be a JSON object.")
        query = body.get("query")
        if not isinstance(query, str) or not query.strip():
            raise GraphQueryError("InvalidRequestContent", "The 'query' property is required.")
        subs = _str_list(body.get("subscriptions"), "subscriptions")
        mgs = _str_list(body.get("managementGroups"), "managementGroups")
        options = body.get("options") or {}
        if not isinstance(options, dict):
            raise GraphQueryError("InvalidRequestContent", "'options' must be a JSON object.")
        top = options.get("$top")
        if top is not None and (isinstance(top, bool) or not isinstance(top, int)
                                or not 1 <= top <= MAX_PAGE):
            raise GraphQueryError("InvalidTopValue",
                                  f"$top must be an integer between 1 and {MAX_PAGE}, not {top!r}.")
        skip = options.get("$skip") or 0
        if isinstance(skip, bool) or not isinstance(skip, int) or skip < 0:
            raise GraphQueryError("InvalidSkipValue",
                                  f"$skip must be a non-negative integer, not {skip!r}.")
        token = options.get("$skipToken")
        if token is not None and not isinstance(token, str):
            raise GraphQueryError("InvalidSkipToken", "$skipToken must be a string.")
        fmt = options.get("resultFormat") or "objectArray"
        if fmt not in ("objectArray", "table"):
            raise GraphQueryError("InvalidResultFormat",
                                  f"resultFormat must be 'objectArray' or 'table', not {fmt!r}.")
        return cls(query=query, subscriptions=tuple(subs), management_groups=tuple(mgs),
                   top=top, skip=skip, skip_token=token or None, result_format=fmt)


def _str_list(value: Any, name: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise GraphQueryError("InvalidRequestContent", f"'{name}' must be a list of strings.")
    return value


@dataclass
class _Result:
    columns: list[tuple[str, str]]  # (name, ARG type)
    rows: list[tuple[Any, ...]]
    dynamic: list[bool] = field(default_factory=list)


class GraphEngine:
    """Runs ARG queries over a World; one DuckDB connection, one query at a time.

    Thread-safe (a lock serialises queries; DuckDB connections are not shareable across
    threads mid-query). Call :meth:`execute` from a worker thread, not the event loop.

    ``lag`` (:mod:`services.standin.lag`): queries see each change only once its lag has
    passed on the World's clock; what the World holds when the engine is created is visible
    at once. ``ArgLag(fixed=0)`` loads the World as it is (no versions kept).
    """

    def __init__(self, world: World, *, scratch_dir: str | None = None,
                 lag: ArgLag | None = None) -> None:
        self.world = world
        self.lag = lag if lag is not None else ArgLag(fixed=0)
        self._scratch_dir = scratch_dir
        self._lock = threading.Lock()
        self._con: Any = None
        self._view: LaggedView | None = None
        self._observed_version: int | None = None
        self._next_visible: datetime | None = None
        if not self.lag.none:
            self._view = LaggedView(self.lag, encode=_row_line)
            self.settle()
        self._loaded_version: int | None = None
        self._view_key: tuple[str, ...] | None = None
        self._loads = 0
        self._results: OrderedDict[tuple[Any, ...], _Result] = OrderedDict()

    @property
    def loads(self) -> int:
        """How many times the tables were (re)loaded from the World (for tests and benches)."""
        return self._loads

    def settle(self) -> None:
        """Make everything the World holds now visible to queries at once (old news)."""
        if self._view is None:
            return
        with self._lock:
            self._observe()
            self._view.settle()
            self._next_visible = None
            self._loaded_version = None  # reload on the next query

    def _observe(self) -> None:
        assert self._view is not None
        with self.world.lock:
            version = self.world.version
            if version == self._observed_version:
                return
            stamped = self.world.stamped_tables()
        self._view.observe(stamped, self.world.clock.now())
        self._observed_version = version
        self._loaded_version = None

    def close(self) -> None:
        with self._lock:
            if self._con is not None:
                self._con.close()
                self._con = None

    # -- public ----------------------------------------------------------------------------
    def execute(self, request: GraphRequest) -> dict[str, Any]:
        """Answer a QueryRequest with ARG's QueryResponse JSON; GraphQueryError on refusal."""
        shape = inspect_query(request.query)
        offset = request.skip
        fingerprint = _fingerprint(request)
        if request.skip_token is not None:
            offset = _decode_skip_token(request.skip_token, fingerprint)
        now = self.world.clock.now()
        with self._lock:
            self._ensure_loaded()
            self._ensure_views(request)
            # Paging resends the same query: answer later pages from the cached rows. A query
            # that reads the clock is cached only for the same instant.
            key = (self._loads, self._view_key, request.query,
                   now if shape.reads_clock else None)
            result = self._results.get(key)
            if result is None:
                result = self._run(request.query, now)
                self._results[key] = result
                while len(self._results) > _RESULT_CACHE_SIZE:
                    self._results.popitem(last=False)
            else:
                self._results.move_to_end(key)
        limited = shape.limited
        total = len(result.rows)
        page_size = min(request.top or MAX_PAGE, MAX_PAGE)
        page = result.rows[offset:offset + page_size]
        more = offset + len(page) < total
        body: dict[str, Any] = {
            "totalRecords": total,
            "count": len(page),
            "resultTruncated": "true" if more and limited else "false",
            "facets": [],
        }
        if more and not limited:
            body["$skipToken"] = _encode_skip_token(offset + len(page), fingerprint)
        names = [name for name, _ in result.columns]
        decoded = [_row_values(row, result.dynamic) for row in page]
        if request.result_format == "table":
            body["data"] = {
                "columns": [{"name": n, "type": t} for n, t in result.columns],
                "rows": decoded,
            }
        else:
            body["data"] = [dict(zip(names, row, strict=True)) for row in decoded]
        return body

    # -- internals -------------------------------------------------------------------------
    def _connection(self) -> Any:
        if self._con is None:
            import duckdb_kql  # the [standin] extra

            self._con = duckdb_kql.connect()
            # One thread for the stand-in keeps CPU free for the app under test (2-core CI)
            # and keeps row order stable for paging of unordered queries.
            self._con.execute("SET threads TO 1")
        return self._con

    def _ensure_loaded(self) -> None:
        if self._view is not None:
            self._ensure_lagged()
            return
        with self.world.lock:
            version = self.world.version
            if version == self._loaded_version:
                return
            tables = self.world.tables()
        con = self._connection()
        for table in TABLES:
            _load_table(con, _BASE_PREFIX + table, tables.get(table, []), self._scratch_dir)
        self._loaded_version = version
        self._loads += 1
        self._results.clear()

    def _ensure_lagged(self) -> None:
        assert self._view is not None
        self._observe()
        now = self.world.clock.now()
        due = self._next_visible is not None and now >= self._next_visible
        if self._loaded_version is not None and not due:
            return
        lines, self._next_visible = self._view.tables(now, TABLES)
        con = self._connection()
        for table in TABLES:
            _load_lines(con, _BASE_PREFIX + table, lines.get(table, []), self._scratch_dir)
        self._loaded_version = self._observed_version
        self._loads += 1
        self._results.clear()

    def _ensure_views(self, request: GraphRequest) -> None:
        # Management groups have no model in the World: they see every subscription.
        subs: tuple[str, ...] = ()
        if request.subscriptions and not request.management_groups:
            subs = tuple(sorted({s.lower() for s in request.subscriptions}))
        if subs == self._view_key:
            return
        con = self._connection()
        for table in TABLES:
            where = ""
            if subs:
                literals = ", ".join("'" + s.replace("'", "''") + "'" for s in subs)
                where = f" WHERE lower(subscriptionId) IN ({literals})"
            con.execute(f'CREATE OR REPLACE VIEW "{table}" AS '
                        f'SELECT * FROM "{_BASE_PREFIX}{table}"{where}')
        self._view_key = subs

    def _run(self, query: str, now: datetime) -> _Result:
        import duckdb
        import duckdb_kql
        from duckdb_kql.errors import KqlError, KqlSyntaxError, KqlUnsupportedError

        con = self._connection()
        try:
            rel = duckdb_kql.kql(con, query, allow_write=False, query_now=now)
            rows = rel.fetchall() if rel is not None else []
            types = [str(t) for t in rel.types] if rel is not None else []
            names = list(rel.columns) if rel is not None else []
        except KqlSyntaxError as exc:
            raise GraphQueryError("ParserFailure", str(exc)) from None
        except KqlUnsupportedError as exc:
            raise GraphQueryError("UnsupportedQuery",
                                  f"Not supported by the stand-in's KQL engine: {exc}") from None
        except KqlError as exc:
            raise GraphQueryError("InvalidQuery", str(exc)) from None
        except duckdb.Error as exc:
            raise GraphQueryError("FailedToExecuteQuery", _first_line(str(exc))) from None
        columns = [(n, _arg_type(t)) for n, t in zip(names, types, strict=True)]
        return _Result(columns=columns, rows=rows,
                       dynamic=[t == "JSON" or t.endswith("[]") or t.startswith("STRUCT")
                                or t.startswith("MAP") for t in types])


# -- query inspection ----------------------------------------------------------------------
def _lowered(query: str) -> Any:
    """The duckdb-kql IR of a query; GraphQueryError when it does not parse or translate."""
    from duckdb_kql.errors import KqlError, KqlSyntaxError
    from duckdb_kql.lower import lower

    head = query.lstrip()
    if head.startswith("."):
        raise GraphQueryError("UnsupportedQuery", "Control commands are not supported.")
    try:
        return lower(query)
    except KqlSyntaxError as exc:
        raise GraphQueryError("ParserFailure", str(exc)) from None
    except KqlError as exc:
        raise GraphQueryError("UnsupportedQuery",
                              f"Not supported by the stand-in's KQL engine: {exc}") from None
    except Exception as exc:  # the translator must never turn a bad query into a 500
        raise GraphQueryError("InvalidQuery", _first_line(str(exc)) or type(exc).__name__) from None


@dataclass(frozen=True)
class QueryShape:
    """What the server needs to know about a query before running it."""

    limited: bool  # a take/limit/top in the outer pipeline: ARG then returns no $skipToken
    reads_clock: bool  # now()/ago(): the answer depends on the moment it runs


def inspect_query(query: str) -> QueryShape:
    """Check that ``query`` is one the stand-in answers and describe it.

    Raises GraphQueryError (ARG's 400) for a query that does not parse, does not translate,
    or reads a table other than the three ARG tables.
    """
    from duckdb_kql import ir

    lowered = _lowered(query)
    _check_tables(lowered)
    check_limits(lowered)
    calls = {n.name.lower() for n in _walk(lowered) if isinstance(n, ir.FunctionCall)}
    # The text check is a safety net for spellings that lower to no call (datetime(now)).
    reads_clock = bool(calls & _CLOCK_FUNCTIONS) or "now" in query.lower()
    return QueryShape(limited=any(isinstance(op, ir.Take | ir.Top) for op in lowered.operators),
                      reads_clock=reads_clock)


#: The operators Resource Graph accepts (its documented list; ``limit`` is ``take`` and
#: ``order`` is ``sort``). ``sample`` / ``sample-distinct`` are documented too but have no
#: duckdb-kql translation. ``lookup`` and ``project-rename`` are not on the list: refused.
ALLOWED_OPERATORS: dict[str, str] = {
    "Count": "count", "Distinct": "distinct", "Extend": "extend", "Join": "join",
    "MvExpand": "mv-expand", "Parse": "parse", "Project": "project",
    "ProjectAway": "project-away", "Sort": "sort", "Summarize": "summarize", "Take": "take",
    "Top": "top", "Union": "union", "Where": "where",
}
#: Join flavours Resource Graph supports.
ALLOWED_JOIN_KINDS = frozenset({"innerunique", "inner", "leftouter", "fullouter"})
MAX_JOINS = 3
MAX_CROSS_TABLE_JOINS = 1
MAX_MV_EXPANDS = 3
MAX_UNION_LEGS = 3
_OPERATOR_NAMES = {"Lookup": "lookup", "ProjectRename": "project-rename",
                   "GetSchema": "getschema"}


def check_limits(lowered: Any) -> None:
    """Refuse what the real Resource Graph refuses (docs/azure.md "Resource Graph"): an
    operator outside its list, a join flavour it lacks, more than three ``join`` (at most one
    of them across tables), more than three ``mv-expand``, more than three ``union`` legs.
    The refusal is ARG's 400 (``BadRequest`` / ``InvalidQuery``); the inner detail codes are
    the stand-in's own (the real ones are not recorded)."""
    from duckdb_kql import ir

    joins = cross = expands = legs = 0
    for node in _walk(lowered):
        if not isinstance(node, ir.Query):
            continue
        left = node.source.name.lower() if isinstance(node.source, ir.TableRef) else None
        for op in node.operators:
            kind = type(op).__name__
            if kind not in ALLOWED_OPERATORS:
                name = _OPERATOR_NAMES.get(kind, kind)
                raise GraphQueryError(
                    "UnsupportedOperator",
                    f"The operator '{name}' is not supported by Azure Resource Graph. Supported: "
                    f"{', '.join(sorted(set(ALLOWED_OPERATORS.values())))}.")
            if isinstance(op, ir.Join):
                joins += 1
                if str(op.kind).lower() not in ALLOWED_JOIN_KINDS:
                    raise GraphQueryError(
                        "UnsupportedJoinFlavor",
                        f"Join kind '{op.kind}' is not supported; use one of "
                        f"{', '.join(sorted(ALLOWED_JOIN_KINDS))}.")
                right = op.right.source if isinstance(op.right, ir.Query) else op.right
                right_table = right.name.lower() if isinstance(right, ir.TableRef) else None
                if left and right_table and right_table != left:
                    cross += 1
            elif isinstance(op, ir.MvExpand):
                expands += 1
            elif isinstance(op, ir.Union):
                legs += len(op.branches) + 1  # the piped-in table is a leg too
    if joins > MAX_JOINS or cross > MAX_CROSS_TABLE_JOINS:
        raise GraphQueryError(
            "JoinLimitExceeded",
            f"The query has {joins} join operator(s), {cross} of them across tables; Azure "
            f"Resource Graph allows at most {MAX_JOINS} joins, at most "
            f"{MAX_CROSS_TABLE_JOINS} of them across tables.")
    if expands > MAX_MV_EXPANDS:
        raise GraphQueryError(
            "MvExpandLimitExceeded",
            f"The query has {expands} mv-expand operators; Azure Resource Graph allows at most "
            f"{MAX_MV_EXPANDS}.")
    if legs > MAX_UNION_LEGS:
        raise GraphQueryError(
            "UnionLimitExceeded",
            f"The query unions {legs} tables or subqueries; the stand-in allows at most "
            f"{MAX_UNION_LEGS} (Azure Resource Graph's union limit, read as legs).")


def _walk(node: Any) -> Iterable[Any]:
    """Every IR node reachable from ``node`` (dataclass fields, lists, tuples)."""
    stack = [node]
    seen: set[int] = set()
    while stack:
        cur = stack.pop()
        if id(cur) in seen:
            continue
        seen.add(id(cur))
        if dataclasses.is_dataclass(cur) and not isinstance(cur, type):
            yield cur
            stack.extend(getattr(cur, f.name) for f in dataclasses.fields(cur))
        elif isinstance(cur, list | tuple):
            stack.extend(cur)


def _check_tables(lowered: Any) -> None:
    """Refuse a query that reads anything but the three ARG tables (or its own lets)."""
    from duckdb_kql import ir

    lets = {name.lower() for name, _ in _all_lets(lowered)}
    for node in _walk(lowered):
        if isinstance(node, ir.TableRef):
            if node.database is not None or node.cluster is not None:
                raise GraphQueryError("UnsupportedQuery",
                                      f"Cross-database references are not supported: "
                                      f"{node.qualified}")
            if node.name.lower() not in TABLES and node.name.lower() not in lets:
                raise GraphQueryError(
                    "UnknownTable",
                    f"Table '{node.name}' is not supported; use one of: {', '.join(TABLES)}.")
        elif isinstance(node, ir.WildcardTableRef | ir.CommandSource):
            raise GraphQueryError("UnsupportedQuery",
                                  "Wildcard tables and commands are not supported.")


def _all_lets(query: Any) -> Iterable[tuple[str, Any]]:
    from duckdb_kql import ir

    for node in _walk(query):
        if isinstance(node, ir.Query):
            yield from node.lets


# -- paging tokens -------------------------------------------------------------------------
def _fingerprint(request: GraphRequest) -> str:
    scopes = sorted(s.lower() for s in request.subscriptions + request.management_groups)
    raw = json.dumps([request.query, scopes])
    return hashlib.sha256(raw.encode()).hexdigest()[:16]


def _encode_skip_token(offset: int, fingerprint: str) -> str:
    raw = json.dumps({"o": offset, "f": fingerprint}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode()


def _decode_skip_token(token: str, fingerprint: str) -> int:
    try:
        data = json.loads(base64.urlsafe_b64decode(token.encode()))
        offset = data["o"]
        same = data["f"] == fingerprint
    except (binascii.Error, ValueError, KeyError, TypeError):
        raise GraphQueryError("InvalidSkipToken", "The $skipToken is not valid.") from None
    if not same:
        raise GraphQueryError("InvalidSkipToken",
                              "The $skipToken belongs to a different query or scope; resend "
                              "the same query and subscriptions with it.")
    if not isinstance(offset, int) or offset < 0:
        raise GraphQueryError("InvalidSkipToken", "The $skipToken is not valid.")
    return offset


# -- loading -------------------------------------------------------------------------------
def _row_line(row: dict[str, Any]) -> str:
    """One row as the NDJSON line DuckDB loads: ARG's columns, compact JSON."""
    return json.dumps({col: row.get(col) for col, _ in COLUMNS}, separators=(",", ":"))


def _load_table(con: Any, name: str, rows: Sequence[dict[str, Any]],
                scratch_dir: str | None) -> None:
    """Replace table ``name`` with ``rows``, read by DuckDB from a temporary NDJSON file."""
    _load_lines(con, name, [_row_line(row) for row in rows], scratch_dir)


def _load_lines(con: Any, name: str, lines: Sequence[str], scratch_dir: str | None) -> None:
    """Replace table ``name`` with rows given as NDJSON lines (:func:`_row_line`)."""
    spec = ", ".join(f"'{col}': '{'JSON' if dyn else 'VARCHAR'}'" for col, dyn in COLUMNS)
    fd, path = tempfile.mkstemp(prefix="aumwatch-arg-", suffix=".ndjson", dir=scratch_dir)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            for line in lines:
                fh.write(line)
                fh.write("\n")
        if lines:
            source = (f"read_json('{_sql_str(path)}', format='newline_delimited', "
                      f"columns={{{spec}}})")
            con.execute(f'CREATE OR REPLACE TABLE "{name}" AS SELECT * FROM {source}')
        else:
            ddl = ", ".join(f'"{col}" {"JSON" if dyn else "VARCHAR"}' for col, dyn in COLUMNS)
            con.execute(f'CREATE OR REPLACE TABLE "{name}" ({ddl})')
    finally:
        os.unlink(path)


def _sql_str(value: str) -> str:
    return value.replace("'", "''")


# -- result conversion ---------------------------------------------------------------------
def _arg_type(duck: str) -> str:
    """The ARG ``table`` format column type for a DuckDB type name."""
    upper = duck.upper()
    if upper in ("VARCHAR", "UUID") or upper.startswith("ENUM"):
        return "string"
    if upper in ("BIGINT", "INTEGER", "SMALLINT", "TINYINT", "HUGEINT", "UBIGINT", "UINTEGER",
                 "USMALLINT", "UTINYINT"):
        return "integer"
    if upper in ("DOUBLE", "FLOAT", "REAL") or upper.startswith("DECIMAL"):
        return "number"
    if upper == "BOOLEAN":
        return "boolean"
    if upper.startswith("TIMESTAMP") or upper == "DATE":
        return "datetime"
    if upper == "INTERVAL" or upper.startswith("TIME"):
        return "timespan"
    return "object"


def _row_values(row: tuple[Any, ...], dynamic: list[bool]) -> list[Any]:
    return [_value(v, dyn) for v, dyn in zip(row, dynamic, strict=True)]


def _value(value: Any, dynamic: bool) -> Any:
    if value is None:
        return None
    if dynamic and isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    if isinstance(value, datetime):
        aware = value if value.tzinfo else value.replace(tzinfo=UTC)
        return aware.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ").replace(".000000Z", "Z")
    if isinstance(value, date):
        return value.isoformat() + "T00:00:00Z"
    if isinstance(value, timedelta):
        return _timespan(value)
    if isinstance(value, time):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, list | tuple):
        return [_value(v, False) for v in value]
    if isinstance(value, dict):
        return {str(k): _value(v, False) for k, v in value.items()}
    return value


def _timespan(value: timedelta) -> str:
    """KQL's timespan text: ``[-][d.]hh:mm:ss[.fffffff]``."""
    sign = "-" if value < timedelta(0) else ""
    value = abs(value)
    hours, rem = divmod(value.seconds, 3600)
    minutes, seconds = divmod(rem, 60)
    text = f"{hours:02d}:{minutes:02d}:{seconds:02d}"
    if value.days:
        text = f"{value.days}.{text}"
    if value.microseconds:
        text += f".{value.microseconds:06d}0"
    return sign + text


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else ""
