-- stage: beacon_evidence
-- inputs: beacon_scope
-- grain: one row per pair listed in `beacons`, in the windows being scored
-- doc: The uids of each pair's first $uid_sample connections by time (ties by uid), listed in uid order: the evidence `beacons` shows.
--
-- A stage of its own so that its sort of every listed connection runs
-- apart from the rest of the beacon score, and spills rather than shares
-- a memory limit. An ordered array_agg is many times slower in DataFusion 55.
WITH params AS (
    SELECT CAST($uid_sample AS BIGINT) AS uid_sample
)
SELECT e.pair_id, array_sort(array_agg(e.uid)) AS uids
FROM params p
CROSS JOIN (
    SELECT pair_id, uid,
           row_number() OVER (PARTITION BY pair_id ORDER BY ts, uid) AS place
    FROM beacon_scope
    WHERE eligible
) e
WHERE e.place <= p.uid_sample
GROUP BY e.pair_id
