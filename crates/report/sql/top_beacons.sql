-- report: top_beacons
-- inputs: beacons
-- grain: one row per pair-day, the ten most beacon-like
-- doc: The pairs with the highest threat scores and their sub-scores.
SELECT src_ip, dest_ip, window_start, connections, ts_score, ds_score, hist_score, dur_score,
       score, threat_score
FROM beacons
ORDER BY threat_score DESC, score DESC, src_ip, dest_ip, window_start
LIMIT 10
