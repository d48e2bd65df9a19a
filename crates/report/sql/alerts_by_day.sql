-- report: alerts_by_day
-- inputs: alerts
-- grain: one row per day partition
-- doc: Scored and flagged connections per day.
SELECT date, count(*) AS connections, sum(CASE WHEN flag THEN 1 ELSE 0 END) AS flagged
FROM alerts
GROUP BY date
ORDER BY date
