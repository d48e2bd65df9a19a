-- report: model_stage
-- inputs: runs
-- grain: one row: the latest successful lightgbm stage
-- doc: The tables and model directory (`models/<name>`) the latest training stage wrote.
SELECT outputs
FROM runs
WHERE kind = 'lightgbm' AND status = 'ok'
ORDER BY started_at DESC, run_id DESC
LIMIT 1
