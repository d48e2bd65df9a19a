-- report: latest_run
-- inputs: runs
-- grain: one row per stage of the latest run
-- doc: What each stage of the most recently started run did.
SELECT run_id, pipeline, started_at, stage, kind, outputs, rows_in, rows_out, rows_rejected,
       seconds, peak_rss_mib, status
FROM runs
WHERE run_id = (SELECT run_id FROM runs ORDER BY started_at DESC, run_id DESC LIMIT 1)
ORDER BY stage_index
