-- stage: beacon_conns
-- inputs: clean
-- grain: one row per distinct connection of `clean` with ts, both addresses, dest_port and protocol set
-- doc: The stored connections beacon scores are computed from: the fields the scores read, the whole-second timestamp and the beacon window.
--
-- Kept as its own table (one `date=` partition per day when the pipeline's
-- $date is set), so that `beacon_scope` and `beacons` can be recomputed for
-- any stored day, with edited lists or settings, without the logs.
-- * window_start: with $date set, that UTC day's start for every
--   connection of the input (the day's logs: a connection that began a
--   second before midnight is scored with the day whose log holds it);
--   else ts windows of $window_seconds aligned to ts 0 (86400: UTC days);
--   $window_seconds = 0 makes the input one window starting at its first
--   connection.
-- * sec: ts to the whole second, as RITA stores timestamps.
WITH params AS (
    SELECT
        CAST($window_seconds AS DOUBLE) AS window_seconds,
        to_unixtime(CAST(nullif(CAST($date AS VARCHAR), '') AS DATE)) AS day_start
),
conns AS (
    SELECT DISTINCT uid, ts, src_ip, dest_ip, dest_port, protocol, service, duration, orig_ip_bytes
    FROM clean
    WHERE ts IS NOT NULL AND src_ip IS NOT NULL AND dest_ip IS NOT NULL
      AND dest_port IS NOT NULL AND protocol IS NOT NULL
),
-- The first connection's ts is the same with or without duplicates: taken
-- from `clean` rather than from a second de-duplication.
origin AS (
    SELECT min(ts) AS t0 FROM clean
    WHERE ts IS NOT NULL AND src_ip IS NOT NULL AND dest_ip IS NOT NULL
      AND dest_port IS NOT NULL AND protocol IS NOT NULL
)
SELECT c.uid, c.ts, floor(c.ts) AS sec, c.src_ip, c.dest_ip, c.dest_port, c.protocol,
       c.service, c.duration, c.orig_ip_bytes,
       CASE WHEN p.day_start IS NOT NULL THEN CAST(p.day_start AS DOUBLE)
            WHEN p.window_seconds > 0 THEN floor(c.ts / p.window_seconds) * p.window_seconds
            ELSE o.t0 END AS window_start
FROM params p CROSS JOIN origin o CROSS JOIN conns c
