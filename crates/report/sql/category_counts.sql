-- report: category_counts
-- inputs: features
-- grain: one row per field, value and label
-- doc: Connections by protocol, conn_state and service for each label.
SELECT 'protocol' AS field, coalesce(protocol, '(unset)') AS value, label, count(*) AS connections
FROM features GROUP BY coalesce(protocol, '(unset)'), label
UNION ALL
SELECT 'conn_state', coalesce(conn_state, '(unset)'), label, count(*)
FROM features GROUP BY coalesce(conn_state, '(unset)'), label
UNION ALL
SELECT 'service', coalesce(service, '(unset)'), label, count(*)
FROM features GROUP BY coalesce(service, '(unset)'), label
