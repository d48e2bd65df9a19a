//! Network address functions for SQL stages, which DataFusion lacks.
//!
//! `ip_in_cidrs(ip, cidrs)` tells whether an address lies in any block of a
//! comma-separated IPv4/IPv6 CIDR list, so that settings such as a
//! pipeline's internal subnets stay one text parameter.

use std::net::IpAddr;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, BooleanArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::cast::as_string_array;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::scalar::ScalarValue;

/// One address block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cidr {
    /// IPv4 network address (masked) and prefix length.
    V4(u32, u8),
    /// IPv6 network address (masked) and prefix length.
    V6(u128, u8),
}

impl Cidr {
    /// Parses `a.b.c.d/n`, `x::y/n`, or a bare address (a single host).
    pub fn parse(text: &str) -> Option<Cidr> {
        let (addr, len) = match text.split_once('/') {
            Some((a, l)) => (a.trim(), Some(l.trim().parse::<u8>().ok()?)),
            None => (text.trim(), None),
        };
        match addr.parse::<IpAddr>().ok()? {
            IpAddr::V4(a) => {
                let len = len.unwrap_or(32);
                (len <= 32).then(|| Cidr::V4(u32::from(a) & mask32(len), len))
            }
            IpAddr::V6(a) => {
                let len = len.unwrap_or(128);
                (len <= 128).then(|| Cidr::V6(u128::from(a) & mask128(len), len))
            }
        }
    }

    /// Whether `ip` lies in this block; IPv4-mapped IPv6 addresses
    /// (`::ffff:a.b.c.d`) count as their IPv4 address.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self, ip.to_canonical()) {
            (Cidr::V4(net, len), IpAddr::V4(a)) => u32::from(a) & mask32(*len) == *net,
            (Cidr::V6(net, len), IpAddr::V6(a)) => u128::from(a) & mask128(*len) == *net,
            _ => false,
        }
    }
}

fn mask32(len: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0)
}

fn mask128(len: u8) -> u128 {
    u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0)
}

/// Parses a comma-separated CIDR list; blank entries are skipped, so an
/// empty list matches nothing.
pub fn parse_cidr_list(list: &str) -> DfResult<Vec<Cidr>> {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|item| {
            Cidr::parse(item).ok_or_else(|| {
                DataFusionError::Execution(format!(
                    "ip_in_cidrs: '{item}' in '{list}' is not an IPv4 or IPv6 CIDR block"
                ))
            })
        })
        .collect()
}

/// Parses an address as Zeek writes it; a zone suffix (`fe80::1%eth0`) is dropped.
pub fn parse_ip(text: &str) -> Option<IpAddr> {
    let text = text.trim();
    let addr = text.split_once('%').map_or(text, |(a, _)| a);
    addr.parse().ok()
}

/// `ip_in_cidrs(ip TEXT, cidrs TEXT) -> BOOLEAN`: true when `ip` lies in a
/// block of the comma-separated list. NULL when either argument is NULL or
/// `ip` is not an address; an invalid block is an error naming it.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct IpInCidrs {
    signature: Signature,
}

impl Default for IpInCidrs {
    fn default() -> Self {
        IpInCidrs {
            signature: Signature::string(2, Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for IpInCidrs {
    fn name(&self) -> &str {
        "ip_in_cidrs"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Boolean)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let [ip, cidrs] = args.args.as_slice() else {
            return Err(DataFusionError::Execution(
                "ip_in_cidrs takes two arguments: ip, cidrs".into(),
            ));
        };
        let all_scalar = matches!(
            (ip, cidrs),
            (ColumnarValue::Scalar(_), ColumnarValue::Scalar(_))
        );
        let rows = if all_scalar { 1 } else { args.number_rows };
        let ips = utf8(ip, rows)?;
        let ips = as_string_array(&ips)?;
        let out: BooleanArray = match cidrs {
            // The usual case: one list (a pipeline parameter), parsed once.
            ColumnarValue::Scalar(s) => match scalar_text(s)? {
                None => BooleanArray::new_null(rows),
                Some(list) => {
                    let blocks = parse_cidr_list(&list)?;
                    ips.iter()
                        .map(|ip| {
                            ip.and_then(parse_ip)
                                .map(|a| blocks.iter().any(|b| b.contains(a)))
                        })
                        .collect()
                }
            },
            ColumnarValue::Array(_) => {
                let lists = utf8(cidrs, rows)?;
                let lists = as_string_array(&lists)?;
                let mut last: Option<(&str, Vec<Cidr>)> = None;
                let mut out = Vec::with_capacity(rows);
                for (ip, list) in ips.iter().zip(lists.iter()) {
                    let (Some(ip), Some(list)) = (ip, list) else {
                        out.push(None);
                        continue;
                    };
                    if last.as_ref().is_none_or(|(l, _)| *l != list) {
                        last = Some((list, parse_cidr_list(list)?));
                    }
                    let blocks = last.as_ref().map(|(_, b)| b.as_slice()).unwrap_or_default();
                    out.push(parse_ip(ip).map(|a| blocks.iter().any(|b| b.contains(a))));
                }
                out.into_iter().collect()
            }
        };
        let out: ArrayRef = Arc::new(out);
        Ok(if all_scalar {
            ColumnarValue::Scalar(ScalarValue::try_from_array(&out, 0)?)
        } else {
            ColumnarValue::Array(out)
        })
    }
}

/// The argument as a `Utf8` array of `rows` rows, whatever string type it has.
fn utf8(value: &ColumnarValue, rows: usize) -> DfResult<ArrayRef> {
    let array = value.to_array(rows)?;
    if array.data_type() == &DataType::Utf8 {
        return Ok(array);
    }
    Ok(cast(&array, &DataType::Utf8)?)
}

fn scalar_text(value: &ScalarValue) -> DfResult<Option<String>> {
    if value.is_null() {
        return Ok(None);
    }
    let array = cast(&value.to_array()?, &DataType::Utf8)?;
    let text = as_string_array(&array)?;
    Ok((text.len() == 1 && text.is_valid(0)).then(|| text.value(0).to_string()))
}

/// The `ip_in_cidrs` function, ready to register.
pub fn ip_in_cidrs_udf() -> ScalarUDF {
    ScalarUDF::new_from_impl(IpInCidrs::default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::common::cast::as_boolean_array;

    fn has(list: &str, ip: &str) -> bool {
        let blocks = parse_cidr_list(list).expect("valid list");
        let ip = parse_ip(ip).expect("valid ip");
        blocks.iter().any(|b| b.contains(ip))
    }

    #[test]
    fn v4_v6_mapped_and_zone_addresses_match() {
        let list = "10.0.0.0/8, 172.16.0.0/12,192.168.0.0/16,fc00::/7,fe80::/10";
        assert!(has(list, "10.255.1.2"));
        assert!(has(list, "172.31.255.255"));
        assert!(!has(list, "172.32.0.1"));
        assert!(!has(list, "8.8.8.8"));
        assert!(has(list, "fd2d:ab8c:225::1"));
        assert!(has(list, "fe80::5dd3:6bb3:7720:1e83%eth0"));
        assert!(!has(list, "ff02::1"));
        assert!(has(list, "::ffff:192.168.1.115"));
        assert!(!has(list, "2001:db8::1"));
        assert!(has("0.0.0.0/0", "1.2.3.4"));
        assert!(!has("0.0.0.0/0", "::1"));
        assert!(has("::/0", "::1"));
        assert!(has("192.168.1.7", "192.168.1.7"));
        assert!(!has("192.168.1.7", "192.168.1.8"));
        assert!(has("192.168.1.7/24", "192.168.1.200"));
        assert!(!has("", "10.0.0.1"));
    }

    #[test]
    fn bad_blocks_are_named() {
        for bad in [
            "10.0.0.0/33",
            "fe80::/129",
            "10.0.0/8",
            "ten/8",
            "10.0.0.0/x",
        ] {
            let err = parse_cidr_list(&format!("192.168.0.0/16,{bad}")).expect_err(bad);
            assert!(
                err.to_string().contains(&format!(
                    "'{bad}' in '192.168.0.0/16,{bad}' is not an IPv4 or IPv6 CIDR block"
                )),
                "{err}"
            );
        }
    }

    #[tokio::test]
    async fn works_in_sql_with_nulls_columns_and_bad_input() {
        let ctx = crate::session::new_context();
        let batches = ctx
            .sql(
                "SELECT ip_in_cidrs(ip, '10.0.0.0/8,fe80::/10') AS a, ip_in_cidrs(ip, list) AS b \
                 FROM (VALUES ('10.1.2.3', '10.0.0.0/8'), ('8.8.8.8', '8.0.0.0/8'), \
                              (NULL, '10.0.0.0/8'), ('not-an-ip', '10.0.0.0/8'), \
                              ('fe80::1', NULL)) t(ip, list)",
            )
            .await
            .expect("plan")
            .collect()
            .await
            .expect("run");
        let a = as_boolean_array(batches[0].column(0)).expect("bool");
        let b = as_boolean_array(batches[0].column(1)).expect("bool");
        let got = |x: &BooleanArray| {
            (0..x.len())
                .map(|i| x.is_valid(i).then(|| x.value(i)))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            got(a),
            vec![Some(true), Some(false), None, None, Some(true)]
        );
        assert_eq!(got(b), vec![Some(true), Some(true), None, None, None]);

        let batches = ctx
            .sql("SELECT ip_in_cidrs('192.168.1.1', '192.168.0.0/16') AS x")
            .await
            .expect("plan")
            .collect()
            .await
            .expect("run");
        assert!(as_boolean_array(batches[0].column(0))
            .expect("bool")
            .value(0));

        let err = ctx
            .sql("SELECT ip_in_cidrs('10.0.0.1', '10.0.0.0/8,nope') AS x")
            .await
            .expect("plan")
            .collect()
            .await
            .expect_err("invalid block");
        assert!(
            err.to_string().contains("'nope' in '10.0.0.0/8,nope'"),
            "{err}"
        );
    }
}
