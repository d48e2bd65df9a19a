-- stage: beacon_scope
-- inputs: beacon_conns
-- grain: one row per stored connection of the day $date (every stored connection when $date is empty)
-- doc: The connections of the windows being scored with the subnet and list rules applied: what is scored (keep), what is always reported (listed), pair keys, and whether the pair is listed in `beacons` (eligible).
--
-- Lists and subnets are applied here, from the stored connections, so that
-- editing a list and running `--from beacon_scope` rescores a stored day
-- without the logs. See beacons.sql for the definitions.
WITH params AS (
    SELECT
        CAST($group_by_port AS BOOLEAN)            AS group_by_port,
        CAST($min_timestamps AS BIGINT)            AS min_timestamps,
        CAST($long_connection_seconds AS DOUBLE)   AS long_connection_seconds
),
base AS (
    SELECT b.uid, b.ts, b.sec, b.src_ip, b.dest_ip, b.dest_port, b.protocol,
           b.service, b.duration, b.orig_ip_bytes, b.window_start,
           coalesce(ip_in_cidrs(b.src_ip, CAST($internal_subnets AS VARCHAR)), false) AS src_internal,
           coalesce(ip_in_cidrs(b.dest_ip, CAST($internal_subnets AS VARCHAR)), false) AS dest_internal,
           coalesce(ip_in_cidrs(b.dest_ip, CAST($ignored_dest_subnets AS VARCHAR)), false) AS dest_ignored,
           coalesce(ip_in_cidrs(b.dest_ip, CAST($never_score AS VARCHAR)), false) AS dest_never,
           coalesce(ip_in_cidrs(b.src_ip, CAST($always_report AS VARCHAR)), false)
               OR coalesce(ip_in_cidrs(b.dest_ip, CAST($always_report AS VARCHAR)), false) AS listed,
           CASE WHEN p.group_by_port THEN b.dest_port END AS key_port,
           CASE WHEN p.group_by_port THEN b.protocol END AS key_protocol
    FROM params p CROSS JOIN beacon_conns b
    -- The day as a literal condition, which the planner folds away when
    -- $date is empty.
    WHERE CAST($date AS VARCHAR) = ''
       OR b.window_start = to_unixtime(CAST(nullif(CAST($date AS VARCHAR), '') AS DATE))
),
keyed AS (
    SELECT b.*,
           b.listed OR NOT ((b.src_internal AND b.dest_internal) OR b.dest_ignored OR b.dest_never) AS keep,
           concat_ws('|', b.src_ip, b.dest_ip, coalesce(CAST(b.key_port AS VARCHAR), ''),
                     coalesce(b.key_protocol, ''), CAST(b.window_start AS VARCHAR)) AS pair_id
    FROM base b
),
-- Pairs `beacons` lists: enough distinct timestamps, long, or listed.
-- Counted over (pair, second) groups rather than with count(DISTINCT),
-- which keeps a set per pair: millions of them for a day of a network.
eligible AS (
    SELECT s.pair_id
    FROM params p
    CROSS JOIN (
        -- Whole microseconds, as beacons sums them: the same on every run.
        SELECT k.pair_id, k.sec, sum(CAST(round(k.duration * 1e6) AS BIGINT)) AS micros,
               bool_or(k.listed) AS listed
        FROM keyed k
        WHERE k.keep
        GROUP BY k.pair_id, k.sec
    ) s
    GROUP BY s.pair_id, p.min_timestamps, p.long_connection_seconds
    HAVING count(*) >= p.min_timestamps
        OR coalesce(sum(s.micros) / 1e6, 0) >= p.long_connection_seconds
        OR bool_or(s.listed)
)
SELECT k.uid, k.ts, k.sec, k.src_ip, k.dest_ip, k.dest_port, k.protocol,
       k.service, k.duration, k.orig_ip_bytes, k.window_start,
       k.src_internal, k.listed, k.keep, k.key_port, k.key_protocol, k.pair_id,
       k.keep AND e.pair_id IS NOT NULL AS eligible
-- The pairs on the build side of the join, not the connections.
FROM eligible e RIGHT JOIN keyed k ON k.pair_id = e.pair_id
