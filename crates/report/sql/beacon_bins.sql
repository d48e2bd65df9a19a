-- report: beacon_bins
-- inputs: beacons, beacon_conns
-- grain: one row per top pair-day and bin (24 equal bins of its window's span: hours of a full day)
-- doc: Connections over time of the three pairs with the highest threat scores.
WITH top AS (
    SELECT src_ip, dest_ip, window_start
    FROM beacons
    ORDER BY threat_score DESC, score DESC, src_ip, dest_ip, window_start
    LIMIT 3
),
span AS (
    SELECT window_start, min(ts) AS first_ts, max(ts) AS last_ts
    FROM beacon_conns
    WHERE window_start IN (SELECT window_start FROM top)
    GROUP BY window_start
)
SELECT c.src_ip, c.dest_ip, c.window_start, s.first_ts, s.last_ts,
       least(CAST(floor(24 * (c.ts - s.first_ts) / greatest(s.last_ts - s.first_ts, 1e-9)) AS BIGINT), 23) AS bin,
       count(*) AS connections
FROM beacon_conns c
JOIN top t ON c.src_ip = t.src_ip AND c.dest_ip = t.dest_ip AND c.window_start = t.window_start
JOIN span s ON c.window_start = s.window_start
GROUP BY c.src_ip, c.dest_ip, c.window_start, s.first_ts, s.last_ts,
         least(CAST(floor(24 * (c.ts - s.first_ts) / greatest(s.last_ts - s.first_ts, 1e-9)) AS BIGINT), 23)
