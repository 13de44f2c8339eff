"""DESIGN §4 as DuckDB SQL: the span table in, one row per call out. No I/O here.

The queries read a view named `spans` (span table columns) and leave behind temporary tables:
`s` (deduplicated spans), `pairs` (parent/child pairs that matter), `calls` (one row per call:
source, target, their kinds, connection, failed, latency) and `quality` (pairing counts).
Keep the SQL close to ANSI so it can run on other engines later.
"""

from __future__ import annotations

from servicemap.schema import UNKNOWN_SERVICE, SpanKind, StatusCode

K_SERVER, K_CLIENT = int(SpanKind.SERVER), int(SpanKind.CLIENT)
K_PRODUCER, K_CONSUMER = int(SpanKind.PRODUCER), int(SpanKind.CONSUMER)
ERROR = int(StatusCode.ERROR)

# Columns the pairing reads; the rest of the span table stays on disk.
PAIRING_COLUMNS = (
    "trace_id",
    "span_id",
    "parent_span_id",
    "service_name",
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

DEDUPLICATED_SPANS = f"""
CREATE OR REPLACE TEMP TABLE s AS
SELECT trace_id, span_id, parent_span_id, service_name, kind,
       status_code = {ERROR} AS failed, start_time, duration_ns,
       peer_service, server_address, url_full,
       db_system IS NOT NULL OR db_system_name IS NOT NULL AS is_db,
       COALESCE(peer_service, db_namespace, db_name, server_address, db_system_name, db_system)
           AS db_node,
       COALESCE(messaging_destination_name, peer_service) AS destination,
       messaging_system,
       links
FROM spans
QUALIFY row_number() OVER (
    PARTITION BY trace_id, span_id, service_name
    ORDER BY duration_ns DESC NULLS LAST, status_code DESC) = 1
"""

# Spans whose service is unknown (no service name in the data) are counted, but draw no edge:
# one `unknown_service` node would join unrelated processes into false paths.
NAMED_SPANS = f"""
CREATE OR REPLACE TEMP VIEW named AS
SELECT * FROM s WHERE service_name <> '{UNKNOWN_SERVICE}'
"""

# Parent/child pairs that any rule reads: cross-service pairs, a CLIENT's children (to know
# whether it is paired), and a PRODUCER's children (a consumer inherits its destination).
PAIRS = f"""
CREATE OR REPLACE TEMP TABLE pairs AS
SELECT c.trace_id, c.span_id AS child_id, c.service_name AS child_service, c.kind AS child_kind,
       c.failed AS child_failed, c.duration_ns AS child_duration,
       p.span_id AS parent_id, p.service_name AS parent_service, p.kind AS parent_kind,
       p.failed AS parent_failed, p.duration_ns AS parent_duration,
       p.destination AS parent_destination, p.messaging_system AS parent_messaging_system
FROM named AS c
JOIN named AS p ON c.trace_id = p.trace_id AND c.parent_span_id = p.span_id
WHERE c.service_name <> p.service_name OR p.kind IN ({K_CLIENT}, {K_PRODUCER})
"""

PAIRED_CLIENTS = f"""
CREATE OR REPLACE TEMP TABLE paired_clients AS
SELECT DISTINCT trace_id, parent_id AS span_id, parent_service AS service_name
FROM pairs
WHERE parent_kind = {K_CLIENT}
  AND (child_kind = {K_SERVER} OR child_service <> parent_service)
"""

# A consumer without a destination of its own takes its producer's: by parent, then by link.
CONSUMER_DESTINATIONS = f"""
CREATE OR REPLACE TEMP TABLE consumer_destinations AS
WITH consumers AS (
    SELECT * FROM named WHERE kind = {K_CONSUMER}
), by_parent AS (
    SELECT trace_id, child_id AS span_id, child_service AS service_name,
           min(COALESCE(parent_destination, parent_messaging_system)) AS destination
    FROM pairs
    WHERE child_kind = {K_CONSUMER} AND parent_kind = {K_PRODUCER}
    GROUP BY ALL
), link_rows AS (
    SELECT c.trace_id, c.span_id, c.service_name, unnest(c.links) AS link
    FROM consumers AS c
    WHERE c.destination IS NULL AND c.links IS NOT NULL
), by_link AS (
    SELECT l.trace_id, l.span_id, l.service_name,
           min(COALESCE(p.destination, p.messaging_system)) AS destination
    FROM link_rows AS l
    JOIN s AS p ON p.trace_id = l.link.trace_id AND p.span_id = l.link.span_id
    WHERE p.kind = {K_PRODUCER}
    GROUP BY ALL
)
SELECT c.trace_id, c.span_id, c.service_name, c.failed, c.duration_ns,
       COALESCE(c.destination, bp.destination, bl.destination, c.messaging_system) AS destination
FROM consumers AS c
LEFT JOIN by_parent AS bp USING (trace_id, span_id, service_name)
LEFT JOIN by_link AS bl USING (trace_id, span_id, service_name)
"""

# One row per call. latency_ns is the client side where one exists, else the server side.
CALLS = f"""
CREATE OR REPLACE TEMP TABLE raw_calls AS
-- rule 1: CLIENT in A, SERVER child in B; one call per client span and callee service
SELECT parent_service AS source, 'service' AS source_kind,
       child_service AS target, 'service' AS target_kind, 'direct' AS connection,
       bool_or(parent_failed OR child_failed) AS failed,
       any_value(parent_duration) AS latency_ns, max(child_duration) AS server_latency_ns,
       FALSE AS virtual_name
FROM pairs
WHERE parent_kind = {K_CLIENT} AND child_kind = {K_SERVER}
GROUP BY trace_id, parent_id, parent_service, child_service
UNION ALL
-- rule 6: any other cross-service pair, timed by the child
SELECT parent_service, 'service', child_service, 'service', 'direct',
       parent_failed OR child_failed, child_duration, NULL, FALSE
FROM pairs
WHERE child_service <> parent_service
  AND NOT (parent_kind = {K_CLIENT} AND child_kind = {K_SERVER})
  AND NOT (parent_kind = {K_PRODUCER} AND child_kind = {K_CONSUMER})
UNION ALL
-- rule 2: producer → destination, destination → consumer
SELECT service_name, 'service', COALESCE(destination, messaging_system), 'messaging',
       'messaging', failed, duration_ns, NULL, TRUE
FROM named
WHERE kind = {K_PRODUCER} AND COALESCE(destination, messaging_system) IS NOT NULL
UNION ALL
SELECT destination, 'messaging', service_name, 'service', 'messaging',
       failed, duration_ns, duration_ns, TRUE
FROM consumer_destinations
WHERE destination IS NOT NULL
UNION ALL
-- rules 3 and 4: unpaired CLIENT spans → database or external node
SELECT c.service_name, 'service',
       CASE WHEN c.is_db THEN c.db_node
            ELSE COALESCE(c.peer_service, c.server_address,
                          NULLIF(regexp_extract(c.url_full, {_URL_HOST}, 1), ''), 'unknown')
       END,
       CASE WHEN c.is_db THEN 'database' ELSE 'external' END,
       CASE WHEN c.is_db THEN 'database' ELSE 'virtual' END,
       c.failed, c.duration_ns, NULL, TRUE
FROM named AS c
WHERE c.kind = {K_CLIENT}
  AND NOT EXISTS (
      SELECT 1 FROM paired_clients AS pc
      WHERE pc.trace_id = c.trace_id AND pc.span_id = c.span_id
        AND pc.service_name = c.service_name)
UNION ALL
-- rule 5: a root SERVER span is called by the user, or by the external peer it names
SELECT COALESCE(peer_service, 'user'),
       CASE WHEN peer_service IS NULL THEN 'user' ELSE 'external' END,
       service_name, 'service', 'virtual', failed, duration_ns, duration_ns, TRUE
FROM named
WHERE kind = {K_SERVER} AND parent_span_id IS NULL
"""

# A virtual node named like an instrumented service is that service; a self-edge that exists
# only through such a name is dropped.
RESOLVED_CALLS = """
CREATE OR REPLACE TEMP TABLE calls AS
WITH services AS (SELECT DISTINCT service_name FROM s)
SELECT r.source,
       CASE WHEN src.service_name IS NOT NULL THEN 'service' ELSE r.source_kind END AS source_kind,
       r.target,
       CASE WHEN dst.service_name IS NOT NULL THEN 'service' ELSE r.target_kind END AS target_kind,
       r.connection, r.failed, r.latency_ns, r.server_latency_ns
FROM raw_calls AS r
LEFT JOIN services AS src ON src.service_name = r.source
LEFT JOIN services AS dst ON dst.service_name = r.target
WHERE NOT (r.virtual_name AND r.source = r.target)
"""

QUALITY = f"""
CREATE OR REPLACE TEMP TABLE quality AS
SELECT
  (SELECT count(*) FROM (
      SELECT trace_id, child_id, child_service FROM pairs
      WHERE child_service <> parent_service OR child_kind = {K_SERVER}
      UNION
      SELECT trace_id, parent_id, parent_service FROM pairs
      WHERE child_service <> parent_service OR child_kind = {K_SERVER})) AS paired,
  (SELECT count(*) FROM raw_calls WHERE virtual_name) AS virtual,
  (SELECT count(*) FROM s AS c WHERE c.parent_span_id IS NOT NULL AND NOT EXISTS (
      SELECT 1 FROM s AS p WHERE p.trace_id = c.trace_id AND p.span_id = c.parent_span_id))
      AS orphans
"""

PAIRING_STEPS: tuple[str, ...] = (
    DEDUPLICATED_SPANS,
    NAMED_SPANS,
    PAIRS,
    PAIRED_CLIENTS,
    CONSUMER_DESTINATIONS,
    CALLS,
    RESOLVED_CALLS,
    QUALITY,
)
