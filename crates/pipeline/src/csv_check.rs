//! Line-level CSV validation: the slow path that names the file and line of
//! a bad row, or sets bad rows aside, when the fast DataFusion scan cannot.

use datafusion::arrow::compute::kernels::cast_utils::Parser;
use datafusion::arrow::datatypes::{DataType, Float64Type, Int64Type};

/// Why one CSV data line is unreadable under the expected column types.
pub fn check_line(line: &str, names: &[String], types: &[DataType]) -> Option<String> {
    let fields = split_csv_line(line);
    if fields.len() != types.len() {
        return Some(format!(
            "expected {} fields, found {}{}",
            types.len(),
            fields.len(),
            if fields.len() < types.len() {
                " (truncated row?)"
            } else {
                ""
            }
        ));
    }
    for ((value, ty), name) in fields.iter().zip(types).zip(names) {
        if value.is_empty() || cell_parses(value, ty) {
            continue;
        }
        return Some(format!(
            "column '{name}': cannot read '{}' as {}",
            value.chars().take(60).collect::<String>(),
            type_name(ty)
        ));
    }
    None
}

fn cell_parses(value: &str, ty: &DataType) -> bool {
    match ty {
        DataType::Int64 => Int64Type::parse(value).is_some(),
        DataType::Float64 => Float64Type::parse(value).is_some(),
        DataType::Boolean => {
            value.eq_ignore_ascii_case("true") || value.eq_ignore_ascii_case("false")
        }
        _ => true,
    }
}

fn type_name(ty: &DataType) -> &'static str {
    match ty {
        DataType::Int64 => "an integer",
        DataType::Float64 => "a number",
        DataType::Boolean => "true/false",
        _ => "text",
    }
}

/// Splits one CSV line on commas, honouring double quotes (`""` escapes a quote).
pub fn split_csv_line(line: &str) -> Vec<String> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            ('"', _) => quoted = !quoted,
            (',', false) => fields.push(std::mem::take(&mut field)),
            (c, _) => field.push(c),
        }
    }
    fields.push(field);
    fields
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_services_split_as_one_field() {
        assert_eq!(
            split_csv_line(r#"1,"smb,gssapi,ntlm",,x"#),
            vec!["1", "smb,gssapi,ntlm", "", "x"]
        );
        assert_eq!(split_csv_line(r#""a""b",c"#), vec![r#"a"b"#, "c"]);
    }

    #[test]
    fn bad_cells_and_counts_are_explained() {
        let names: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
        let types = [DataType::Int64, DataType::Float64, DataType::Boolean];
        assert_eq!(
            check_line("1,1.644465509979958E9,false", &names, &types),
            None
        );
        assert_eq!(check_line(",,", &names, &types), None);
        assert_eq!(
            check_line("x1,2,true", &names, &types).as_deref(),
            Some("column 'a': cannot read 'x1' as an integer")
        );
        assert_eq!(
            check_line("1,2", &names, &types).as_deref(),
            Some("expected 3 fields, found 2 (truncated row?)")
        );
        assert_eq!(
            check_line("1,2,maybe", &names, &types).as_deref(),
            Some("column 'c': cannot read 'maybe' as true/false")
        );
    }
}
