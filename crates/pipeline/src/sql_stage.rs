//! The one generic runner for every `.sql` stage file.
//!
//! A stage file holds one query preceded by a comment header:
//!
//! ```sql
//! -- stage: clean
//! -- inputs: raw
//! -- grain: one row per connection
//! -- doc: Typed, validated connections with missing-value flags.
//! SELECT ...
//! ```
//!
//! The declared inputs are checked against the tables the query really
//! reads, and the query runs with DDL, DML and other statements disabled.
//! Pipeline parameters reach the query as named placeholders (`$drop_unset`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use datafusion::common::ParamValues;
use datafusion::config::Dialect;
use datafusion::execution::context::SQLOptions;
use datafusion::prelude::{DataFrame, SessionContext};
use datafusion::scalar::ScalarValue;

use crate::error::{Error, Result};

/// A parsed `.sql` stage file.
#[derive(Debug, Clone)]
pub struct SqlStage {
    /// The file it was read from.
    pub path: PathBuf,
    /// `-- stage:` name (also the output table).
    pub name: String,
    /// `-- inputs:` tables, comma separated in the file.
    pub inputs: Vec<String>,
    /// `-- doc:` line.
    pub doc: String,
    /// The whole file text, runnable as is.
    pub sql: String,
}

impl SqlStage {
    /// Reads and parses a stage file.
    pub fn load(path: &Path) -> Result<Self> {
        let sql = std::fs::read_to_string(path).map_err(|source| Error::ReadSql {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(path, &sql)
    }

    /// Parses stage text; `path` is used in messages.
    pub fn parse(path: &Path, sql: &str) -> Result<Self> {
        let invalid = |message: String| Error::InvalidSql {
            path: path.to_path_buf(),
            message,
        };
        let mut header = BTreeMap::new();
        for line in sql.lines() {
            let line = line.trim();
            let Some(comment) = line.strip_prefix("--") else {
                if line.is_empty() {
                    continue;
                }
                break;
            };
            if let Some((key, value)) = comment.trim().split_once(':') {
                header
                    .entry(key.trim().to_ascii_lowercase())
                    .or_insert_with(|| value.trim().to_string());
            }
        }
        let name = header
            .remove("stage")
            .ok_or_else(|| invalid("missing '-- stage: <name>' header line".into()))?;
        let inputs_line = header
            .remove("inputs")
            .ok_or_else(|| invalid("missing '-- inputs: <table>, ...' header line".into()))?;
        let inputs = inputs_line
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect();
        let doc = header.remove("doc").unwrap_or_default();
        Ok(SqlStage {
            path: path.to_path_buf(),
            name,
            inputs,
            doc,
            sql: sql.to_string(),
        })
    }

    /// Plans the query against `ctx` with parameters bound, after checking
    /// that it is a single read-only query reading exactly its declared inputs.
    pub async fn plan(
        &self,
        ctx: &SessionContext,
        params: &BTreeMap<String, toml::Value>,
    ) -> Result<DataFrame> {
        let invalid = |message: String| Error::InvalidSql {
            path: self.path.clone(),
            message,
        };
        let state = ctx.state();
        let statement = state
            .sql_to_statement(&self.sql, &Dialect::Generic)
            .map_err(|e| invalid(e.to_string()))?;
        let read: BTreeSet<String> = state
            .resolve_table_references(&statement)?
            .iter()
            .map(|t| t.table().to_string())
            .collect();
        let declared: BTreeSet<String> = self.inputs.iter().cloned().collect();
        if read != declared {
            return Err(invalid(format!(
                "header declares inputs [{}] but the query reads [{}]",
                join(&declared),
                join(&read)
            )));
        }
        let options = SQLOptions::new()
            .with_allow_ddl(false)
            .with_allow_dml(false)
            .with_allow_statements(false);
        let df = ctx
            .sql_with_options(&self.sql, options)
            .await
            .map_err(|e| invalid(e.to_string()))?;
        let values: Vec<(String, ScalarValue)> = params
            .iter()
            .filter(|(key, _)| self.sql.contains(&format!("${key}")))
            .map(|(key, value)| Ok((key.clone(), scalar(key, value).map_err(&invalid)?)))
            .collect::<Result<_>>()?;
        if values.is_empty() {
            return Ok(df);
        }
        df.with_param_values(ParamValues::from(values))
            .map_err(|e| invalid(e.to_string()))
    }
}

fn join(set: &BTreeSet<String>) -> String {
    set.iter().cloned().collect::<Vec<_>>().join(", ")
}

/// Converts a pipeline parameter to a SQL literal value.
fn scalar(key: &str, value: &toml::Value) -> std::result::Result<ScalarValue, String> {
    Ok(match value {
        toml::Value::String(s) => ScalarValue::Utf8(Some(s.clone())),
        toml::Value::Integer(i) => ScalarValue::Int64(Some(*i)),
        toml::Value::Float(f) => ScalarValue::Float64(Some(*f)),
        toml::Value::Boolean(b) => ScalarValue::Boolean(Some(*b)),
        other => {
            return Err(format!(
                "parameter '{key}' has type {} which SQL stages cannot use",
                other.type_str()
            ))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_is_parsed() {
        let s = SqlStage::parse(
            Path::new("x.sql"),
            "-- stage: clean\n-- inputs: raw, other\n-- doc: does things\nSELECT 1",
        )
        .expect("valid header");
        assert_eq!(s.name, "clean");
        assert_eq!(s.inputs, vec!["raw", "other"]);
        assert_eq!(s.doc, "does things");
    }

    #[test]
    fn missing_header_is_named() {
        let err = SqlStage::parse(Path::new("x.sql"), "SELECT 1").expect_err("no header");
        assert!(
            err.to_string().contains("x.sql: missing '-- stage:"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn undeclared_input_and_ddl_are_refused() {
        let ctx = crate::session::new_context();
        ctx.sql("CREATE TABLE raw AS VALUES (1)")
            .await
            .expect("create")
            .collect()
            .await
            .expect("run");
        let s = SqlStage::parse(
            Path::new("x.sql"),
            "-- stage: clean\n-- inputs: other\nSELECT * FROM raw",
        )
        .expect("header");
        let err = s.plan(&ctx, &BTreeMap::new()).await.expect_err("mismatch");
        assert!(
            err.to_string()
                .contains("declares inputs [other] but the query reads [raw]"),
            "{err}"
        );
        let s = SqlStage::parse(
            Path::new("x.sql"),
            "-- stage: clean\n-- inputs: raw\nDROP TABLE raw",
        )
        .expect("header");
        assert!(s.plan(&ctx, &BTreeMap::new()).await.is_err());
    }

    #[tokio::test]
    async fn params_bind_as_placeholders() {
        let ctx = crate::session::new_context();
        ctx.sql("CREATE TABLE raw AS VALUES (1), (2), (3)")
            .await
            .expect("create")
            .collect()
            .await
            .expect("run");
        let s = SqlStage::parse(
            Path::new("x.sql"),
            "-- stage: t\n-- inputs: raw\nWITH c AS (SELECT column1 AS v FROM raw) SELECT v FROM c WHERE v >= $min OR $all",
        )
        .expect("header");
        let mut params = BTreeMap::new();
        params.insert("min".to_string(), toml::Value::Integer(2));
        params.insert("all".to_string(), toml::Value::Boolean(false));
        params.insert("unused".to_string(), toml::Value::String("x".into()));
        let rows = s
            .plan(&ctx, &params)
            .await
            .expect("plan")
            .count()
            .await
            .expect("count");
        assert_eq!(rows, 2);
    }
}
