-- stage: beacon_conns
-- inputs: clean
-- grain: one row per distinct connection of `clean` with ts, both addresses, dest_port and protocol set
-- doc: The connections the beacon scores are computed from: whole-second timestamp, beacon window, pair key and the list and subnet flags of beacons.sql.
--
-- Written as a table of its own because `beacons` reads these rows in many
-- places and DataFusion recomputes a query's CTE at every reference. See
-- beacons.sql for the definitions; `keep` marks the rows that are scored,
-- `eligible` those of the pairs `beacons` lists.
WITH params AS (
    SELECT
        CAST($window_seconds AS DOUBLE)            AS window_seconds,
        CAST($group_by_port AS BOOLEAN)            AS group_by_port,
        CAST($min_timestamps AS BIGINT)            AS min_timestamps,
        CAST($long_connection_seconds AS DOUBLE)   AS long_connection_seconds
),
base AS (
    SELECT DISTINCT c.uid, c.ts, c.src_ip, c.dest_ip, c.dest_port, c.protocol,
           c.service, c.duration, c.orig_ip_bytes,
           coalesce(ip_in_cidrs(c.src_ip, CAST($internal_subnets AS VARCHAR)), false) AS src_internal,
           coalesce(ip_in_cidrs(c.dest_ip, CAST($internal_subnets AS VARCHAR)), false) AS dest_internal,
           coalesce(ip_in_cidrs(c.dest_ip, CAST($ignored_dest_subnets AS VARCHAR)), false) AS dest_ignored,
           coalesce(ip_in_cidrs(c.dest_ip, CAST($never_score AS VARCHAR)), false) AS dest_never,
           coalesce(ip_in_cidrs(c.src_ip, CAST($always_report AS VARCHAR)), false)
               OR coalesce(ip_in_cidrs(c.dest_ip, CAST($always_report AS VARCHAR)), false) AS listed
    FROM clean c
    WHERE c.ts IS NOT NULL AND c.src_ip IS NOT NULL AND c.dest_ip IS NOT NULL
      AND c.dest_port IS NOT NULL AND c.protocol IS NOT NULL
),
kept AS (
    SELECT b.*,
           b.listed OR NOT ((b.src_internal AND b.dest_internal) OR b.dest_ignored OR b.dest_never) AS keep
    FROM base b
),
origin AS (SELECT min(ts) AS t0 FROM kept WHERE keep),
windowed AS (
    SELECT k.uid, k.ts, floor(k.ts) AS sec, k.src_ip, k.dest_ip, k.dest_port, k.protocol,
           k.service, k.duration, k.orig_ip_bytes, k.src_internal, k.listed, k.keep,
           CASE WHEN p.window_seconds > 0 THEN floor(k.ts / p.window_seconds) * p.window_seconds
                ELSE o.t0 END AS window_start,
           CASE WHEN p.group_by_port THEN k.dest_port END AS key_port,
           CASE WHEN p.group_by_port THEN k.protocol END AS key_protocol
    FROM kept k CROSS JOIN params p CROSS JOIN origin o
),
keyed AS (
    SELECT w.*,
           concat_ws('|', w.src_ip, w.dest_ip, coalesce(CAST(w.key_port AS VARCHAR), ''),
                     coalesce(w.key_protocol, ''), CAST(w.window_start AS VARCHAR)) AS pair_id
    FROM windowed w
),
-- Pairs `beacons` lists: enough distinct timestamps, long, or listed.
eligible AS (
    SELECT k.pair_id
    FROM keyed k CROSS JOIN params p
    WHERE k.keep
    GROUP BY k.pair_id, p.min_timestamps, p.long_connection_seconds
    HAVING count(DISTINCT k.sec) >= p.min_timestamps
        OR coalesce(sum(k.duration), 0) >= p.long_connection_seconds
        OR bool_or(k.listed)
)
SELECT k.*, k.keep AND e.pair_id IS NOT NULL AS eligible
FROM keyed k LEFT JOIN eligible e ON k.pair_id = e.pair_id
