//! Golden tests for the SQL stages under `sql/`: each `tests/golden/*.test`
//! file builds input tables from CSV, runs stage files, and compares query
//! results with the expected rows.
//!
//! Directives (blocks separated by blank lines):
//! - `input <table>` + CSV lines with a header; canonical columns get their
//!   canonical types, missing canonical columns are NULL.
//! - `params <pipeline.toml>` takes the parameters of a pipeline file;
//!   `set <key>=<value>` overrides one.
//! - `stage <file.sql>` runs a stage file and registers its result.
//! - `query` + SQL lines + `----` + expected CSV (header included).
//! - `error <file.sql>` + one line: the stage must fail with that text.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;
use zeekml_formats::schema::CONN_COLUMNS;
use zeekml_pipeline::sql_stage::SqlStage;
use zeekml_pipeline::{render, OutputFormat, Pipeline};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[tokio::test]
async fn golden_files() {
    let dir = root().join("tests/golden");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("tests/golden")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "test"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no golden files in {}", dir.display());
    let mut failures = Vec::new();
    let mut checked = 0;
    for file in &files {
        match run_file(file).await {
            Ok(n) => checked += n,
            Err(e) => failures.push(format!("{}: {e}", file.display())),
        }
    }
    assert!(
        failures.is_empty(),
        "golden failures:\n{}",
        failures.join("\n\n")
    );
    assert!(checked >= files.len(), "every golden file checks something");
}

async fn run_file(path: &Path) -> Result<usize, String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let ctx = zeekml_pipeline::session::new_context();
    let mut params: BTreeMap<String, toml::Value> = BTreeMap::new();
    let mut checks = 0;
    for (block_no, block) in text.split("\n\n").enumerate() {
        let lines: Vec<&str> = block
            .lines()
            .filter(|l| !l.trim_start().starts_with('#'))
            .collect();
        let Some(first) = lines.first() else { continue };
        let here = format!("block {} ('{first}')", block_no + 1);
        let (directive, arg) = first.split_once(' ').unwrap_or((first, ""));
        match directive {
            "input" => register_csv(&ctx, arg, &lines[1..])
                .await
                .map_err(|e| format!("{here}: {e}"))?,
            "params" => {
                let p = Pipeline::load(&root().join(arg), &[]).map_err(|e| e.to_string())?;
                params = p.file.params;
            }
            "set" => {
                let (k, v) = arg.split_once('=').ok_or(format!("{here}: set k=v"))?;
                let value = match v {
                    "true" | "false" => toml::Value::Boolean(v == "true"),
                    _ => toml::Value::String(v.to_string()),
                };
                params.insert(k.to_string(), value);
            }
            "stage" => {
                let stage = SqlStage::load(&root().join("sql").join(arg))
                    .map_err(|e| format!("{here}: {e}"))?;
                let df = stage
                    .plan(&ctx, &params)
                    .await
                    .map_err(|e| format!("{here}: {e}"))?;
                let planned = Arc::new(df.schema().as_arrow().clone());
                let batches = df.collect().await.map_err(|e| format!("{here}: {e}"))?;
                let schema = batches.first().map(|b| b.schema()).unwrap_or(planned);
                let table = MemTable::try_new(schema, vec![batches]).map_err(|e| e.to_string())?;
                ctx.deregister_table(stage.name.as_str())
                    .map_err(|e| e.to_string())?;
                ctx.register_table(stage.name.as_str(), Arc::new(table))
                    .map_err(|e| e.to_string())?;
            }
            "error" => {
                let stage = SqlStage::load(&root().join("sql").join(arg))
                    .map_err(|e| format!("{here}: {e}"))?;
                let expected = lines.get(1).ok_or(format!("{here}: expected text"))?;
                let outcome = match stage.plan(&ctx, &params).await {
                    Ok(df) => df.collect().await.map(|_| ()).map_err(|e| e.to_string()),
                    Err(e) => Err(e.to_string()),
                };
                match outcome {
                    Err(e) if e.contains(expected) => checks += 1,
                    Err(e) => return Err(format!("{here}: error '{e}' lacks '{expected}'")),
                    Ok(()) => return Err(format!("{here}: expected an error")),
                }
            }
            "query" => {
                let sep = lines
                    .iter()
                    .position(|l| l.trim() == "----")
                    .ok_or(format!("{here}: query without ----"))?;
                let sql = lines[1..sep].join("\n");
                let expected = lines[sep + 1..].join("\n");
                let df = ctx.sql(&sql).await.map_err(|e| format!("{here}: {e}"))?;
                let schema = Arc::new(df.schema().as_arrow().clone());
                let batches = df.collect().await.map_err(|e| format!("{here}: {e}"))?;
                let got =
                    render(&schema, &batches, OutputFormat::Csv).map_err(|e| e.to_string())?;
                if got.trim() != expected.trim() {
                    return Err(format!(
                        "{here}: query\n{sql}\nexpected:\n{}\ngot:\n{}",
                        expected.trim(),
                        got.trim()
                    ));
                }
                checks += 1;
            }
            other => return Err(format!("{here}: unknown directive '{other}'")),
        }
    }
    Ok(checks)
}

/// Builds a table from CSV lines; canonical columns are typed and completed.
async fn register_csv(ctx: &SessionContext, table: &str, lines: &[&str]) -> Result<(), String> {
    let header: Vec<&str> = lines.first().ok_or("no header")?.split(',').collect();
    let ty = |name: &str| {
        CONN_COLUMNS
            .iter()
            .find(|(n, _, _)| *n == name)
            .map(|(_, _, t)| t.clone())
            .unwrap_or(DataType::Utf8)
    };
    let schema = Arc::new(Schema::new(
        header
            .iter()
            .map(|h| Field::new(*h, ty(h), true))
            .collect::<Vec<_>>(),
    ));
    let body = lines[1..].join("\n");
    let reader = datafusion::arrow::csv::ReaderBuilder::new(Arc::clone(&schema))
        .with_header(false)
        .build(std::io::Cursor::new(body.into_bytes()))
        .map_err(|e| e.to_string())?;
    let batches = reader
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    let partial =
        MemTable::try_new(Arc::clone(&schema), vec![batches]).map_err(|e| e.to_string())?;
    let df = ctx
        .read_table(Arc::new(partial))
        .map_err(|e| e.to_string())?;
    let mut exprs = Vec::new();
    for (name, _, t) in CONN_COLUMNS {
        if header.contains(name) {
            exprs.push(datafusion::logical_expr::col(*name));
        } else {
            let null = datafusion::scalar::ScalarValue::try_from(t).map_err(|e| e.to_string())?;
            exprs.push(datafusion::logical_expr::lit(null).alias(*name));
        }
    }
    for h in &header {
        if !CONN_COLUMNS.iter().any(|(n, _, _)| n == h) {
            exprs.push(datafusion::logical_expr::col(*h));
        }
    }
    let df = df.select(exprs).map_err(|e| e.to_string())?;
    ctx.deregister_table(table).map_err(|e| e.to_string())?;
    ctx.register_table(table, df.into_view())
        .map_err(|e| e.to_string())?;
    Ok(())
}
