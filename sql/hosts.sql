-- stage: hosts
-- inputs: host_conns
-- grain: one row per (src_ip, window_start): each source's connections in windows of $host_window_seconds
-- doc: Host-level reconnaissance features per source and time window, with horizontal/vertical scan flags and a rule score.
--
-- Definitions:
-- * window_start = floor(ts / $host_window_seconds) * $host_window_seconds
--   (windows aligned to ts 0, i.e. to the hour of the epoch by default).
-- * Connections: rows of `clean` with ts and src_ip set; identical rows (same
--   uid, ts, endpoints, state, duration and bytes) count once (`host_conns`).
-- * Probe: a connection in state S0 (no reply), REJ (rejected), SHR
--   (responder only) or RSTO (originator reset) that carried no responder
--   payload (resp_bytes 0 or unset): a browser resetting a finished download
--   also ends in RSTO, but with payload.
-- * horizontal_hosts: the most distinct destination hosts one destination
--   port was probed on; vertical_ports: the most distinct ports one
--   destination host was probed on.
-- * horizontal_scan: horizontal_hosts >= $scan_min_hosts;
--   vertical_scan: vertical_ports >= $scan_min_ports.
-- * recon_score = max(min(1, horizontal_hosts / $scan_min_hosts),
--   min(1, vertical_ports / $scan_min_ports)): 1 at a threshold, rising
--   linearly from 0 below it.
-- * Medians are percentile_cont(0.5) (the mean of the two middle values for
--   an even count) over the set values; NULL when none is set.
WITH params AS (
    SELECT
        CAST($host_window_seconds AS DOUBLE) AS window_seconds,
        CAST($scan_min_hosts AS DOUBLE)      AS scan_min_hosts,
        CAST($scan_min_ports AS DOUBLE)      AS scan_min_ports
),
conns AS (
    SELECT * FROM host_conns
),
-- Aggregates that group cheaply: DISTINCT counts and medians are taken
-- from de-duplicated or ranked rows, not with count(DISTINCT) or
-- percentile_cont, which keep a state per group (gigabytes for a day of a
-- busy network's source windows).
per_window AS (
    SELECT
        src_ip, window_start,
        count(*)                                                        AS connections,
        avg(CASE WHEN conn_state = 'S0' THEN 1.0 ELSE 0.0 END)          AS s0_share,
        avg(CASE WHEN conn_state = 'REJ' THEN 1.0 ELSE 0.0 END)         AS rej_share,
        avg(CASE WHEN conn_state = 'SHR' THEN 1.0 ELSE 0.0 END)         AS shr_share,
        avg(CASE WHEN conn_state = 'RSTO' THEN 1.0 ELSE 0.0 END)        AS rsto_share,
        avg(CASE WHEN probe THEN 1.0 ELSE 0.0 END)                      AS probe_share,
        avg(CASE WHEN duration IS NULL THEN 1.0 ELSE 0.0 END)           AS unset_duration_share
    FROM conns
    GROUP BY src_ip, window_start
),
dest_hosts AS (
    SELECT src_ip, window_start, count(*) AS dest_hosts
    FROM (SELECT DISTINCT src_ip, window_start, dest_ip FROM conns WHERE dest_ip IS NOT NULL) t
    GROUP BY src_ip, window_start
),
dest_ports AS (
    SELECT src_ip, window_start, count(*) AS dest_ports
    FROM (SELECT DISTINCT src_ip, window_start, dest_port FROM conns WHERE dest_port IS NOT NULL) t
    GROUP BY src_ip, window_start
),
-- Medians by position: the mean of the values at (n + 1) / 2 and
-- (n + 2) / 2 of the n set values (percentile_cont's 0.5).
sizes AS (
    SELECT src_ip, window_start, 'orig' AS kind, CAST(orig_bytes AS DOUBLE) AS x FROM conns WHERE orig_bytes IS NOT NULL
    UNION ALL
    SELECT src_ip, window_start, 'resp' AS kind, CAST(resp_bytes AS DOUBLE) AS x FROM conns WHERE resp_bytes IS NOT NULL
),
-- n joined back rather than taken by count(*) OVER (PARTITION BY ...):
-- DataFusion 55 holds the whole input of a window over entire partitions
-- in memory, outside the memory pool.
size_counts AS (
    SELECT src_ip, window_start, kind, count(*) AS n FROM sizes GROUP BY src_ip, window_start, kind
),
medians AS (
    SELECT src_ip, window_start,
           avg(CASE WHEN kind = 'orig' AND rn IN ((n + 1) / 2, (n + 2) / 2) THEN x END) AS median_orig_bytes,
           avg(CASE WHEN kind = 'resp' AND rn IN ((n + 1) / 2, (n + 2) / 2) THEN x END) AS median_resp_bytes
    FROM (
        SELECT s.src_ip, s.window_start, s.kind, s.x, z.n,
               row_number() OVER (PARTITION BY s.src_ip, s.window_start, s.kind ORDER BY s.x) AS rn
        FROM size_counts z
        JOIN sizes s ON s.src_ip = z.src_ip AND s.window_start = z.window_start AND s.kind = z.kind
    ) r
    GROUP BY src_ip, window_start
),
horizontal AS (
    SELECT src_ip, window_start, max(hosts) AS horizontal_hosts
    FROM (
        SELECT src_ip, window_start, dest_port, count(*) AS hosts
        FROM (SELECT DISTINCT src_ip, window_start, dest_port, dest_ip FROM conns
              WHERE probe AND dest_port IS NOT NULL) d
        GROUP BY src_ip, window_start, dest_port
    ) t
    GROUP BY src_ip, window_start
),
vertical AS (
    SELECT src_ip, window_start, max(ports) AS vertical_ports
    FROM (
        SELECT src_ip, window_start, dest_ip, count(*) AS ports
        FROM (SELECT DISTINCT src_ip, window_start, dest_ip, dest_port FROM conns
              WHERE probe AND dest_ip IS NOT NULL) d
        GROUP BY src_ip, window_start, dest_ip
    ) t
    GROUP BY src_ip, window_start
),
counted AS (
    SELECT w.*,
           coalesce(dh.dest_hosts, 0)      AS dest_hosts,
           coalesce(dp.dest_ports, 0)      AS dest_ports,
           m.median_orig_bytes, m.median_resp_bytes,
           coalesce(h.horizontal_hosts, 0) AS horizontal_hosts,
           coalesce(v.vertical_ports, 0)   AS vertical_ports
    FROM per_window w
    LEFT JOIN dest_hosts dh ON w.src_ip = dh.src_ip AND w.window_start = dh.window_start
    LEFT JOIN dest_ports dp ON w.src_ip = dp.src_ip AND w.window_start = dp.window_start
    LEFT JOIN medians m ON w.src_ip = m.src_ip AND w.window_start = m.window_start
    LEFT JOIN horizontal h ON w.src_ip = h.src_ip AND w.window_start = h.window_start
    LEFT JOIN vertical v ON w.src_ip = v.src_ip AND w.window_start = v.window_start
)
SELECT
    c.src_ip, c.window_start, c.window_start + p.window_seconds AS window_end,
    c.connections, c.dest_hosts, c.dest_ports,
    c.s0_share, c.rej_share, c.shr_share, c.rsto_share, c.probe_share,
    c.unset_duration_share, c.median_orig_bytes, c.median_resp_bytes,
    c.horizontal_hosts, c.vertical_ports,
    c.horizontal_hosts >= p.scan_min_hosts AS horizontal_scan,
    c.vertical_ports >= p.scan_min_ports   AS vertical_scan,
    greatest(least(c.horizontal_hosts / p.scan_min_hosts, 1.0),
             least(c.vertical_ports / p.scan_min_ports, 1.0)) AS recon_score
FROM counted c CROSS JOIN params p
