-- report: alert_sources
-- inputs: alerts
-- grain: one row per source, the ten with the most flagged connections
-- doc: Sources of the most alerts.
SELECT src_ip, count(*) AS flagged, count(DISTINCT dest_ip) AS destinations, max(score) AS max_score
FROM alerts
WHERE flag
GROUP BY src_ip
ORDER BY flagged DESC, src_ip
LIMIT 10
