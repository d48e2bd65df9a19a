-- Flagged connections with their pair's beacon score and their host window's
-- recon score: needs `alerts` (pipelines/zeek_score.toml) and `conn_scores`
-- (pipelines/beacon.toml) in one warehouse.
--   zeekml sql --warehouse WH --file sql/queries/flagged_with_context.sql
SELECT a.ts, a.src_ip, a.dest_ip, a.dest_port, a.conn_state,
       round(a.score, 3) AS conn, a.flag,
       round(c.beacon_score, 3) AS beacon, c.pair_connections AS pair_n,
       c.recon_score AS recon, c.horizontal_scan OR c.vertical_scan AS scan
FROM alerts a
JOIN conn_scores c USING (uid, ts, src_ip, src_port, dest_ip, dest_port)
WHERE a.flag OR c.beacon_score >= 0.8 OR c.recon_score >= 1
ORDER BY greatest(a.score, coalesce(c.beacon_score, 0), coalesce(c.recon_score, 0)) DESC,
         a.score DESC, a.ts
LIMIT 5
