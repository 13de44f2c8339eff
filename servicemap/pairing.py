"""DESIGN §4 as DuckDB SQL: the span table in, one row per call out. No I/O here.

The statements read a view named `spans` (span table columns) and leave behind:
`sv`/`s` (slim spans, deduplicated when needed), `pairs` (child/parent pairs that matter,
and orphans), `consumer_destinations`, and `raw_calls` (one row per call: source, target,
their kinds, connection, failed, latency, start time). The queries at the end aggregate them.

Why it is shaped this way (bench/build.py, 5 M spans): ids are compared as integers
(`BLOB → BIT → UHUGEINT/UBIGINT` is exact and hashes faster than blobs); spans stay a view
over Parquet unless some id repeats; one LEFT JOIN child → parent serves rules 1, 6 and the
orphan count, and `pairs` carries only what those rules read (the few producers a consumer
needs are looked up apart); the unpaired CLIENT spans (rules 3, 4) are one hash anti-join
against `pairs`, the other rules that need no join (2, 5) one scan.
"""

from __future__ import annotations

from servicemap.schema import UNKNOWN_SERVICE, SpanKind, StatusCode

K_SERVER, K_CLIENT = int(SpanKind.SERVER), int(SpanKind.CLIENT)
K_PRODUCER, K_CONSUMER = int(SpanKind.PRODUCER), int(SpanKind.CONSUMER)
ERROR = int(StatusCode.ERROR)
QUANTILES = "[0.5, 0.95, 0.99]"
INCOMING = f"kind IN ({K_SERVER}, {K_CONSUMER})"
NAMED = f"<> '{UNKNOWN_SERVICE}'"


def span_end_ns(duration: str = "duration_ns") -> str:
    """SQL for a span's end in ns since the epoch: its start plus `duration`, or its start
    alone when the duration is unknown or the end would not fit int64 (the span table's rule,
    kept here for Parquet written by other tools)."""
    end = f"epoch_ns(start_time)::HUGEINT + {duration}"
    return (
        f"epoch_ns(start_time) + COALESCE(CASE WHEN {end} BETWEEN {-(2**63)} AND {2**63 - 1} "
        f"THEN {duration} END, 0)"
    )


# Columns the pairing reads; the rest of the span table stays on disk.
PAIRING_COLUMNS = (
    "trace_id",
    "span_id",
    "parent_span_id",
    "service_name",
    "service_namespace",
    "kind",
    "status_code",
    "start_time",
    "duration_ns",
    "peer_service",
    "server_address",
    "url_full",
    "db_system",
    "db_system_name",
    "db_namespace",
    "db_name",
    "messaging_system",
    "messaging_destination_name",
    "links",
)

_URL_HOST = r"'^[A-Za-z][A-Za-z0-9+.-]*://(?:[^@/]*@)?(\[[^\]]*\]|[^:/?#]*)'"
_IS_DB = "(db_system IS NOT NULL OR db_system_name IS NOT NULL)"

# The virtual peer of each span is computed once, only for the kinds that use it (rules 2-5).
# `has_parent` tests the stored id: DuckDB pushes that filter into the Parquet scan, not one
# on the cast.
SLIM_SPANS = f"""
CREATE OR REPLACE TEMP VIEW sv AS
SELECT trace_id::BIT::UHUGEINT AS trace_id, span_id::BIT::UBIGINT AS span_id,
       parent_span_id::BIT::UBIGINT AS parent_span_id, parent_span_id IS NOT NULL AS has_parent,
       service_name, service_namespace, kind,
       status_code = {ERROR} AS failed, start_time, duration_ns,
       CASE WHEN kind = {K_CLIENT} THEN {_IS_DB} END AS is_db,
       CASE WHEN kind = {K_CLIENT} THEN
           CASE WHEN {_IS_DB}
                THEN COALESCE(peer_service, db_namespace, db_name, server_address,
                              db_system_name, db_system)
                ELSE COALESCE(peer_service, server_address,
                              NULLIF(regexp_extract(url_full, {_URL_HOST}, 1), ''), 'unknown')
           END
       END AS client_target,
       CASE WHEN kind = {K_SERVER} AND parent_span_id IS NULL THEN peer_service END AS root_peer,
       CASE WHEN kind = {K_PRODUCER}
            THEN COALESCE(messaging_destination_name, peer_service, messaging_system)
       END AS topic,
       CASE WHEN kind = {K_CONSUMER}
            THEN COALESCE(messaging_destination_name, peer_service) END AS destination,
       CASE WHEN kind = {K_CONSUMER} THEN messaging_system END AS messaging_system,
       CASE WHEN kind = {K_CONSUMER} AND messaging_destination_name IS NULL
                 AND peer_service IS NULL THEN links END AS links
FROM spans
"""

# Does any (trace, span) id repeat? A hash collision only sends the build down the exact
# path, never skips a real duplicate. The same scan counts the traces. It reads the ids as
# stored: equal blobs are equal integers, and skipping the casts makes this scan ~25 % faster.
REPEATED_IDS = """
SELECT count(*) - count(DISTINCT hash(trace_id, span_id)), count(DISTINCT trace_id) FROM spans
"""

# A span seen twice (same trace, span id and service) counts once (§3): the longest copy,
# failed when any copy failed (a retry may carry the error its first report lacked).
DEDUPLICATED_SPANS = """
CREATE OR REPLACE TEMP TABLE s AS
SELECT * EXCLUDE (any_failed) REPLACE (any_failed AS failed) FROM (
    SELECT *, bool_or(failed) OVER copies AS any_failed FROM sv
    WINDOW copies AS (PARTITION BY trace_id, span_id, service_name)
    QUALIFY row_number() OVER (copies ORDER BY duration_ns DESC NULLS LAST, failed DESC) = 1)
"""
PLAIN_SPANS = "CREATE OR REPLACE TEMP VIEW s AS SELECT * FROM sv"

# Every child joined to its parent once: the pairs any rule reads (cross-service pairs, a
# CLIENT's children, a PRODUCER's children), and the orphans (parent missing, §4.9). Spans
# of an unknown service are counted but pair with nothing: one such node would join
# unrelated processes into false paths.
PAIRS = f"""
CREATE OR REPLACE TEMP TABLE pairs AS
SELECT c.trace_id, c.span_id AS child_id, c.service_name AS child_service,
       c.kind AS child_kind, c.failed AS child_failed, c.duration_ns AS child_duration,
       c.start_time AS child_start,
       p.span_id AS parent_id, p.service_name AS parent_service, p.kind AS parent_kind,
       p.failed AS parent_failed, p.duration_ns AS parent_duration,
       p.start_time AS parent_start
FROM s AS c
LEFT JOIN s AS p ON c.trace_id = p.trace_id AND c.parent_span_id = p.span_id
WHERE c.has_parent
  AND (p.span_id IS NULL
       OR (c.service_name {NAMED} AND p.service_name {NAMED}
           AND (c.service_name <> p.service_name OR p.kind IN ({K_CLIENT}, {K_PRODUCER}))))
"""

# A consumer without a destination of its own takes its producer's: by parent, then by link.
# The few producers are looked up here, not carried through `pairs` for every parent span.
CONSUMER_DESTINATIONS = f"""
CREATE OR REPLACE TEMP TABLE consumer_destinations AS
WITH consumers AS (
    SELECT * FROM s WHERE kind = {K_CONSUMER} AND service_name {NAMED}
), producers AS (
    SELECT trace_id, span_id, service_name, topic FROM s WHERE kind = {K_PRODUCER}
), by_parent AS (
    SELECT c.trace_id, c.span_id, c.service_name, min(p.topic) AS destination
    FROM consumers AS c
    JOIN producers AS p ON p.trace_id = c.trace_id AND p.span_id = c.parent_span_id
    WHERE p.service_name {NAMED}
    GROUP BY ALL
), link_rows AS (
    SELECT c.trace_id, c.span_id, c.service_name, unnest(c.links) AS link
    FROM consumers AS c
    WHERE c.destination IS NULL AND c.links IS NOT NULL
), by_link AS (
    SELECT l.trace_id, l.span_id, l.service_name, min(p.topic) AS destination
    FROM link_rows AS l
    JOIN producers AS p ON p.trace_id = l.link.trace_id::BIT::UHUGEINT
                       AND p.span_id = l.link.span_id::BIT::UBIGINT
    WHERE p.service_name {NAMED}
    GROUP BY ALL
)
SELECT c.trace_id, c.span_id, c.service_name, c.failed, c.duration_ns, c.start_time,
       COALESCE(c.destination, bp.destination, bl.destination, c.messaging_system) AS destination
FROM consumers AS c
LEFT JOIN by_parent AS bp USING (trace_id, span_id, service_name)
LEFT JOIN by_link AS bl USING (trace_id, span_id, service_name)
"""

# One row per call. latency_ns is the client side where one exists, else the server side;
# virtual_name marks calls whose other end was named, not seen.
RAW_CALLS = f"""
CREATE OR REPLACE TEMP TABLE raw_calls AS
-- rule 1: CLIENT in A, SERVER child in B; one call per client span and callee service
SELECT parent_service AS source, 'service' AS source_kind,
       child_service AS target, 'service' AS target_kind, 'direct' AS connection,
       bool_or(parent_failed OR child_failed) AS failed,
       any_value(parent_duration) AS latency_ns, max(child_duration) AS server_latency_ns,
       any_value(parent_start) AS start_time, FALSE AS virtual_name
FROM pairs
WHERE parent_kind = {K_CLIENT} AND child_kind = {K_SERVER}
GROUP BY trace_id, parent_id, parent_service, child_service
UNION ALL
-- rule 6: any other cross-service pair, timed by the child
SELECT parent_service, 'service', child_service, 'service', 'direct',
       parent_failed OR child_failed, child_duration, NULL, child_start, FALSE
FROM pairs
WHERE child_service <> parent_service
  AND NOT (parent_kind = {K_CLIENT} AND child_kind = {K_SERVER})
  AND NOT (parent_kind = {K_PRODUCER} AND child_kind = {K_CONSUMER})
UNION ALL
-- rule 2, consumer side: destination → consumer
SELECT destination, 'messaging', service_name, 'service', 'messaging',
       failed, duration_ns, duration_ns, start_time, TRUE
FROM consumer_destinations
WHERE destination IS NOT NULL
UNION ALL
-- rule 5 (root SERVER ← user or the peer it names) and rule 2 producer side (→ topic)
SELECT CASE WHEN kind = {K_SERVER} THEN COALESCE(root_peer, 'user') ELSE service_name END,
       CASE WHEN kind = {K_PRODUCER} THEN 'service'
            WHEN root_peer IS NULL THEN 'user' ELSE 'external' END,
       CASE WHEN kind = {K_SERVER} THEN service_name ELSE topic END,
       CASE WHEN kind = {K_SERVER} THEN 'service' ELSE 'messaging' END,
       CASE WHEN kind = {K_SERVER} THEN 'virtual' ELSE 'messaging' END,
       failed, duration_ns, CASE WHEN kind = {K_SERVER} THEN duration_ns END, start_time, TRUE
FROM s
WHERE service_name {NAMED}
  AND ((kind = {K_SERVER} AND NOT has_parent) OR (kind = {K_PRODUCER} AND topic IS NOT NULL))
UNION ALL
-- rules 3 and 4: unpaired CLIENT → database or external node. A branch of its own, so the
-- NOT EXISTS plans as one hash anti-join (inside an OR it became a delim join: 2× slower).
SELECT service_name, 'service', client_target,
       CASE WHEN is_db THEN 'database' ELSE 'external' END,
       CASE WHEN is_db THEN 'database' ELSE 'virtual' END,
       failed, duration_ns, NULL, start_time, TRUE
FROM s AS c
WHERE kind = {K_CLIENT} AND service_name {NAMED} AND NOT EXISTS (
          SELECT 1 FROM pairs AS pc
          WHERE pc.parent_kind = {K_CLIENT}
            AND (pc.child_kind = {K_SERVER} OR pc.child_service <> pc.parent_service)
            AND pc.trace_id = c.trace_id AND pc.parent_id = c.span_id
            AND pc.parent_service = c.service_name)
"""

PAIRING_STEPS: tuple[str, ...] = (PAIRS, CONSUMER_DESTINATIONS, RAW_CALLS)

# Spans in cross-service pairs (or a same-service CLIENT → SERVER self-edge), calls to or from
# a virtual node, spans whose parent is missing.
_PAIRED = f"""parent_id IS NOT NULL
        AND (child_service <> parent_service
             OR (parent_kind = {K_CLIENT} AND child_kind = {K_SERVER}))"""
QUALITY = f"""
SELECT
  (SELECT count(*) FROM (
      SELECT trace_id, child_id, child_service FROM pairs WHERE {_PAIRED}
      UNION
      SELECT trace_id, parent_id, parent_service FROM pairs WHERE {_PAIRED})),
  (SELECT count(*) FROM raw_calls WHERE virtual_name),
  (SELECT count(*) FROM pairs WHERE parent_id IS NULL)
"""

# One scan of the spans for the window and the service nodes (incoming SERVER/CONSUMER).
SPAN_STATS = f"""
SELECT service_name,
       count(*) FILTER (WHERE {INCOMING}),
       count(*) FILTER (WHERE {INCOMING} AND failed),
       quantile_cont(duration_ns, {QUANTILES}) FILTER (WHERE {INCOMING}),
       epoch_ns(min(start_time)), max({span_end_ns()}),
       count(*), min(service_namespace)
FROM s GROUP BY service_name
"""
TRACES = "SELECT count(DISTINCT trace_id) FROM s"

# Edges and every node's incoming calls in one pass. A self-edge that exists only through a
# virtual name is dropped here; names that are services are resolved on the few result rows.
CALL_STATS = f"""
SELECT GROUPING(source) = 1 AS per_target, source, target,
       list(DISTINCT source_kind), list(DISTINCT target_kind), list(DISTINCT connection),
       count(*), count(*) FILTER (WHERE failed),
       quantile_cont(latency_ns, {QUANTILES}), quantile_cont(server_latency_ns, {QUANTILES})
FROM raw_calls
WHERE NOT (virtual_name AND source = target)
GROUP BY GROUPING SETS ((source, target), (target))
"""
