-- stage: beacon_dests
-- inputs: beacon_scope
-- grain: one row per (dest_ip, window_start) of the windows being scored
-- doc: Each destination's first and last connection and its internal sources per window: the history behind the first-seen and prevalence modifiers of `beacons`.
--
-- With $date set it is written as that day's `date=` partition, so the
-- table keeps one small partition per scheduled day and `beacons` finds
-- when a destination was first seen in this warehouse (the last
-- $history_days days).
WITH sources AS (
    SELECT DISTINCT window_start, dest_ip, src_ip FROM beacon_scope WHERE src_internal
),
internal AS (
    SELECT window_start, dest_ip, count(*) AS internal_sources
    FROM sources GROUP BY window_start, dest_ip
),
seen AS (
    SELECT window_start, dest_ip, min(ts) AS first_ts, max(ts) AS last_ts, count(*) AS connections
    FROM beacon_scope GROUP BY window_start, dest_ip
)
SELECT s.dest_ip, s.window_start, s.first_ts, s.last_ts, s.connections,
       coalesce(i.internal_sources, 0) AS internal_sources
FROM seen s
LEFT JOIN internal i ON s.window_start = i.window_start AND s.dest_ip = i.dest_ip
