"""`servicemap diff --release SERVICE@VERSION`: where to split the data, and why it cannot be.

The split is the start of the first trace that reached SERVICE running service.version
VERSION; that trace falls wholly on the after side. A version never seen, a release with no
span of SERVICE before it, and a name that is no instrumented service are one-line errors.
"""

from __future__ import annotations

import duckdb

from servicemap.analysis.diff import Side
from servicemap.analysis.prepared import (
    intersect,
    kind_node,
    no_such_service,
    prepare,
    register_identity,
)
from servicemap.build import connect
from servicemap.errors import UsageError
from servicemap.sources import SpanSources
from servicemap.timeparse import TimeRange


def parse_release(text: str) -> tuple[str, str]:
    service, at, version = text.rpartition("@")
    if not at or not service or not version:
        raise UsageError(f"--release: expected SERVICE@VERSION, got {text!r}")
    return service, version


_FIRST_TRACE = """
WITH first AS (
    SELECT trace_id FROM span_identity
    WHERE service_name = $service AND service_version = $version
    ORDER BY start_time, trace_id LIMIT 1
)
SELECT epoch_ns(min(start_time)) FROM span_identity
WHERE trace_id IN (SELECT trace_id FROM first)
"""


def _earlier_spans(con: duckdb.DuckDBPyConnection, service: str, split: int) -> bool:
    row = con.execute(
        "SELECT count(*) FROM span_identity "
        "WHERE service_name = $service AND epoch_ns(start_time) < $split",
        {"service": service, "split": split},
    ).fetchone()
    return bool(row and row[0])


def _not_a_release(
    con: duckdb.DuckDBPyConnection, sources: SpanSources, service: str, window: TimeRange
) -> UsageError:
    """Why `service` has no version: no spans of its own, or not in the data at all."""
    names = [
        r[0] for r in con.execute("SELECT DISTINCT service_name FROM span_identity").fetchall()
    ]
    if service in names:
        return UsageError(f"--release: {service} spans carry no service.version")
    kinds = {n.id: n.kind for n in prepare(con, sources, window).nodes}
    if service in kinds:
        return UsageError(
            f"--release: {service} is {kind_node(kinds[service])} on the map, not an instrumented "
            "service: it sends no spans, so it has no service.version"
        )
    return no_such_service("--release", service, names)


def release_time(sources: SpanSources, service: str, version: str, window: TimeRange) -> int:
    """When spans of `service` with service.version `version` first appear in the window.

    The split is the start of the first trace that reached the new version, so that trace
    falls wholly on the after side. A release with no span of `service` before it has nothing
    to be compared with: a UsageError.
    """
    con = connect()
    try:
        register_identity(con, sources, window)
        params = {"service": service, "version": version}
        row = con.execute(_FIRST_TRACE, params).fetchone()
        if row is not None and row[0] is not None:
            if not _earlier_spans(con, service, int(row[0])):
                raise UsageError(
                    f"--release: {service}@{version} is the earliest version seen; "
                    "nothing to compare it with"
                )
            return int(row[0])
        versions = [
            r[0]
            for r in con.execute(
                "SELECT DISTINCT service_version FROM span_identity "
                "WHERE service_name = $service AND service_version IS NOT NULL ORDER BY 1",
                {"service": service},
            ).fetchall()
        ]
        if versions:
            raise UsageError(
                f"--release: {service} has no spans of version {version!r}; "
                f"versions seen: {', '.join(versions[:10])}"
            )
        raise _not_a_release(con, sources, service, window)
    finally:
        con.close()


def release_sides(
    sources: SpanSources, service: str, version: str, window: TimeRange
) -> tuple[Side, Side]:
    """The windows before and after the release of `service` at `version`."""
    split = release_time(sources, service, version, window)
    release = f"{service}@{version}"
    return (
        Side(
            f"before {release}", intersect(window, TimeRange(None, split)), f"--release {release}"
        ),
        Side(
            f"{release} and after",
            intersect(window, TimeRange(split, None)),
            f"--release {release}",
        ),
    )
