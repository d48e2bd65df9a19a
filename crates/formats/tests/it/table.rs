//! `ZeekLogTable` queried through DataFusion SQL.

use std::sync::Arc;

use datafusion::arrow::array::AsArray;
use datafusion::arrow::datatypes::Int64Type;
use datafusion::prelude::SessionContext;
use zeekml_formats::{ZeekLogTable, ZeekReadOptions};

use crate::{real, reject};

#[tokio::test]
async fn sql_over_labeled_logs() {
    let table = ZeekLogTable::try_new(
        &real("stratosphere-labeled-tsv/*labeled*"),
        ZeekReadOptions {
            batch_size: 4096,
            ..ZeekReadOptions::default()
        },
    )
    .await
    .expect("table");
    assert_eq!((table.files(), table.rows()), (5, 25_790));
    assert!(table.rejects().is_empty());

    let ctx = SessionContext::new();
    ctx.register_table("conn", Arc::new(table))
        .expect("register");
    let batches = ctx
        .sql(
            "SELECT label_text, count(*) AS n, count(DISTINCT source_file) AS files \
             FROM conn GROUP BY label_text ORDER BY label_text",
        )
        .await
        .expect("plan")
        .collect()
        .await
        .expect("run");
    let mut rows = Vec::new();
    for b in &batches {
        let labels = b.column(0).as_string::<i32>();
        let n = b.column(1).as_primitive::<Int64Type>();
        let files = b.column(2).as_primitive::<Int64Type>();
        for i in 0..b.num_rows() {
            rows.push((labels.value(i).to_string(), n.value(i), files.value(i)));
        }
    }
    assert_eq!(
        rows,
        vec![
            ("Background".to_string(), 739 + 60 + 37 + 326 + 930, 5),
            ("Benign".to_string(), 9 + 1402 + 1937 + 4771 + 782, 5),
            ("Malicious".to_string(), 244 + 4201 + 3373 + 3951 + 3028, 5),
        ]
    );
}

#[tokio::test]
async fn projection_and_limit() {
    let table = ZeekLogTable::try_new(&real("rita-json/conn.log"), reject())
        .await
        .expect("table");
    let ctx = SessionContext::new();
    ctx.register_table("conn", Arc::new(table))
        .expect("register");
    let batches = ctx
        .sql("SELECT dest_port, source_line FROM conn ORDER BY source_line LIMIT 3")
        .await
        .expect("plan")
        .collect()
        .await
        .expect("run");
    assert_eq!(batches[0].num_columns(), 2);
    let ports: Vec<i64> = batches
        .iter()
        .flat_map(|b| b.column(0).as_primitive::<Int64Type>().values().to_vec())
        .collect();
    assert_eq!(ports, vec![80, 80, 80]);
}
