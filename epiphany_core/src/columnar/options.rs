//! `CREATE TABLE … USING epiphany_columnar WITH (…)` options: parsing and validation.
//!
//! The glue hands over the `WITH` list as name/value strings; everything a user can get
//! wrong is caught here with a message that names the option and what it accepts.

use std::fmt;

use crate::error::{Error, Result};

pub const DEFAULT_GRANULE_ROWS: u32 = 8192;
pub const MAX_GRANULE_ROWS: u32 = 1 << 20;
pub const DEFAULT_ZSTD_LEVEL: i32 = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Lz4,
    Zstd { level: i32 },
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Compression::None => write!(f, "none"),
            Compression::Lz4 => write!(f, "lz4"),
            Compression::Zstd { .. } => write!(f, "zstd"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableOptions {
    /// Sort key of every part, as column names; empty keeps insertion order.
    pub order_by: Vec<String>,
    /// Rows per granule, the unit of pruning.
    pub granule_rows: u32,
    pub compression: Compression,
}

impl Default for TableOptions {
    fn default() -> Self {
        TableOptions {
            order_by: Vec::new(),
            granule_rows: DEFAULT_GRANULE_ROWS,
            compression: Compression::Zstd {
                level: DEFAULT_ZSTD_LEVEL,
            },
        }
    }
}

/// The option names a table accepts, for error hints.
pub const OPTION_NAMES: &[&str] = &[
    "order_by",
    "granule_rows",
    "compression",
    "compression_level",
];

fn invalid(name: &str, detail: impl Into<String>) -> Error {
    Error::InvalidParameter {
        name: name.to_string(),
        detail: detail.into(),
    }
}

impl TableOptions {
    /// Parses `WITH (name = value, …)`; names are case-insensitive, as in Postgres.
    pub fn parse<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Result<TableOptions> {
        let mut options = TableOptions::default();
        let mut compression: Option<String> = None;
        let mut level: Option<i32> = None;
        let mut seen: Vec<String> = Vec::new();
        for (raw_name, value) in pairs {
            let name = raw_name.to_ascii_lowercase();
            if seen.contains(&name) {
                return Err(invalid(&name, "specified more than once"));
            }
            seen.push(name.clone());
            match name.as_str() {
                "order_by" => options.order_by = parse_column_list(value)?,
                "granule_rows" => {
                    let rows: u32 = value.trim().parse().map_err(|_| {
                        invalid(&name, format!("\"{value}\" is not a whole number"))
                    })?;
                    if rows == 0 || rows > MAX_GRANULE_ROWS {
                        return Err(invalid(
                            &name,
                            format!("{rows} is outside 1..{MAX_GRANULE_ROWS}"),
                        ));
                    }
                    options.granule_rows = rows;
                }
                "compression" => compression = Some(value.trim().to_ascii_lowercase()),
                "compression_level" => {
                    level = Some(value.trim().parse().map_err(|_| {
                        invalid(&name, format!("\"{value}\" is not a whole number"))
                    })?)
                }
                _ => {
                    return Err(invalid(
                        &name,
                        format!(
                            "unknown option; epiphany_columnar accepts {}",
                            OPTION_NAMES.join(", ")
                        ),
                    ))
                }
            }
        }
        options.compression = match (compression.as_deref(), level) {
            (None | Some("zstd"), level) => {
                let level = level.unwrap_or(DEFAULT_ZSTD_LEVEL);
                if !(1..=22).contains(&level) {
                    return Err(invalid(
                        "compression_level",
                        format!("{level} is outside 1..22 for zstd"),
                    ));
                }
                Compression::Zstd { level }
            }
            (Some("none"), None) => Compression::None,
            (Some("lz4"), None) => Compression::Lz4,
            (Some(c @ ("none" | "lz4")), Some(_)) => {
                return Err(invalid(
                    "compression_level",
                    format!("only zstd has levels, not {c}"),
                ))
            }
            (Some(other), _) => {
                return Err(invalid(
                    "compression",
                    format!("\"{other}\" is not one of none, lz4, zstd"),
                ))
            }
        };
        Ok(options)
    }

    /// The options as `name=value` strings, in a fixed order (for catalogs and dumps).
    pub fn to_pairs(&self) -> Vec<(String, String)> {
        let mut pairs = Vec::new();
        if !self.order_by.is_empty() {
            let cols: Vec<String> = self.order_by.iter().map(|c| quote_identifier(c)).collect();
            pairs.push(("order_by".into(), cols.join(", ")));
        }
        pairs.push(("granule_rows".into(), self.granule_rows.to_string()));
        pairs.push(("compression".into(), self.compression.to_string()));
        if let Compression::Zstd { level } = self.compression {
            pairs.push(("compression_level".into(), level.to_string()));
        }
        pairs
    }

    /// Positions of the `order_by` columns among `columns` (the table's, in order).
    pub fn resolve_order_by(&self, columns: &[&str]) -> Result<Vec<usize>> {
        self.order_by
            .iter()
            .map(|name| {
                columns
                    .iter()
                    .position(|c| c == name)
                    .ok_or_else(|| invalid("order_by", format!("column \"{name}\" does not exist")))
            })
            .collect()
    }
}

/// Splits `a, "B c", d` into column names, folding unquoted ones to lower case as the SQL
/// parser does.
pub fn parse_column_list(value: &str) -> Result<Vec<String>> {
    let mut columns = Vec::new();
    let mut chars = value.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut name = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    Some('"') if chars.peek() == Some(&'"') => {
                        chars.next();
                        name.push('"');
                    }
                    Some('"') => break,
                    Some(c) => name.push(c),
                    None => {
                        return Err(invalid(
                            "order_by",
                            format!("unterminated quoted name in \"{value}\""),
                        ))
                    }
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ',' || c.is_whitespace() {
                    break;
                }
                if !(c.is_alphanumeric() || c == '_' || c == '$') {
                    return Err(invalid(
                        "order_by",
                        format!("unexpected \"{c}\" in \"{value}\""),
                    ));
                }
                name.push(c.to_ascii_lowercase());
                chars.next();
            }
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if name.is_empty() {
            return Err(invalid(
                "order_by",
                format!("empty column name in \"{value}\""),
            ));
        }
        if columns.contains(&name) {
            return Err(invalid(
                "order_by",
                format!("column \"{name}\" listed twice"),
            ));
        }
        columns.push(name);
        match chars.next() {
            None => return Ok(columns),
            Some(',') => continue,
            Some(c) => {
                return Err(invalid(
                    "order_by",
                    format!("unexpected \"{c}\" in \"{value}\""),
                ))
            }
        }
    }
}

/// Quotes a column name where the SQL parser would need it.
pub fn quote_identifier(name: &str) -> String {
    let plain = !name.is_empty()
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '$');
    if plain {
        name.to_string()
    } else {
        format!("\"{}\"", name.replace('"', "\"\""))
    }
}

/// Options after `ALTER TABLE … SET (set)` and `RESET (reset)` of `stored`, as Postgres
/// merges them: names compare case-insensitively, a reset name goes (resetting one not
/// set does nothing), a set one replaces the stored value, new ones follow in order.
pub fn merge_set_reset(
    stored: Vec<(String, String)>,
    set: Vec<(String, String)>,
    reset: &[String],
) -> Vec<(String, String)> {
    let mut merged: Vec<(String, String)> = stored
        .into_iter()
        .filter(|(k, _)| !reset.iter().any(|r| r.eq_ignore_ascii_case(k)))
        .filter(|(k, _)| !set.iter().any(|(o, _)| o.eq_ignore_ascii_case(k)))
        .collect();
    merged.extend(set);
    merged
}

/// As [`merge_set_reset`] for a columnar table's own options: a new (or reset) codec
/// starts from its own default level unless the same statement gives one.
pub fn merge_table_options(
    stored: Vec<(String, String)>,
    set: Vec<(String, String)>,
    reset: &[String],
) -> Vec<(String, String)> {
    let sets_level = set.iter().any(|(k, _)| k == "compression_level");
    let new_codec = reset.iter().any(|r| r == "compression")
        || (set.iter().any(|(k, _)| k == "compression") && !sets_level);
    let mut merged = merge_set_reset(stored, set, reset);
    if new_codec && !sets_level {
        merged.retain(|(k, _)| k != "compression_level");
    }
    merged
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(pairs: &[(&str, &str)]) -> Result<TableOptions> {
        TableOptions::parse(pairs.iter().copied())
    }

    #[test]
    fn defaults_and_every_option() {
        assert_eq!(parse(&[]).unwrap(), TableOptions::default());
        let o = parse(&[
            ("order_by", "l_shipdate, L_OrderKey"),
            ("GRANULE_ROWS", "4096"),
            ("compression", "ZSTD"),
            ("compression_level", "9"),
        ])
        .unwrap();
        assert_eq!(o.order_by, vec!["l_shipdate", "l_orderkey"]);
        assert_eq!(o.granule_rows, 4096);
        assert_eq!(o.compression, Compression::Zstd { level: 9 });
        assert_eq!(
            parse(&[("compression", "none")]).unwrap().compression,
            Compression::None
        );
        assert_eq!(
            parse(&[("compression", "lz4")]).unwrap().compression,
            Compression::Lz4
        );
    }

    #[test]
    fn bad_options_name_the_option_and_what_it_accepts() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[("granule_rows", "0")], "granule_rows"),
            (&[("granule_rows", "lots")], "not a whole number"),
            (&[("granule_rows", "99999999")], "outside"),
            (&[("compression", "gzip")], "none, lz4, zstd"),
            (
                &[("compression", "lz4"), ("compression_level", "3")],
                "only zstd has levels",
            ),
            (&[("compression_level", "23")], "outside 1..22"),
            (&[("fillfactor", "50")], "accepts order_by"),
            (&[("order_by", "a,,b")], "empty column name"),
            (&[("order_by", "a, a")], "listed twice"),
            (&[("order_by", "a b")], "unexpected"),
            (&[("order_by", "\"open")], "unterminated"),
            (&[("order_by", "a"), ("ORDER_BY", "b")], "more than once"),
        ];
        for (pairs, needle) in cases {
            let err = parse(pairs).unwrap_err();
            assert!(err.to_string().contains(needle), "{pairs:?}: {err}");
            assert_eq!(err.sqlstate(), crate::SqlState::INVALID_PARAMETER_VALUE);
        }
    }

    #[test]
    fn quoted_names_round_trip_through_to_pairs() {
        let o = parse(&[("order_by", r#"plain, "Mixed Case", "with""quote""#)]).unwrap();
        assert_eq!(o.order_by, vec!["plain", "Mixed Case", "with\"quote"]);
        let pairs = o.to_pairs();
        let again =
            TableOptions::parse(pairs.iter().map(|(n, v)| (n.as_str(), v.as_str()))).unwrap();
        assert_eq!(again, o);
    }

    #[test]
    fn order_by_resolves_against_the_table() {
        let o = parse(&[("order_by", "c, a")]).unwrap();
        assert_eq!(o.resolve_order_by(&["a", "b", "c"]).unwrap(), vec![2, 0]);
        assert!(o
            .resolve_order_by(&["a", "b"])
            .unwrap_err()
            .to_string()
            .contains("\"c\" does not exist"));
    }

    mod properties {
        use super::super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn any_input_parses_or_errs(name in "[a-zA-Z_]{0,20}", value in "\\PC{0,40}") {
                let _ = TableOptions::parse([(name.as_str(), value.as_str())]);
            }

            #[test]
            fn column_lists_round_trip(names in proptest::collection::btree_set("[a-zA-Z _\"]{1,12}", 1..5)) {
                let names: Vec<String> = names.into_iter().collect();
                let list: Vec<String> = names.iter().map(|n| format!("\"{}\"", n.replace('"', "\"\""))).collect();
                prop_assert_eq!(parse_column_list(&list.join(", ")).unwrap(), names.clone());
                let quoted: Vec<String> = names.iter().map(|n| quote_identifier(n)).collect();
                prop_assert_eq!(parse_column_list(&quoted.join(",")).unwrap(), names);
            }
        }
    }

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn set_and_reset_merge_like_postgres() {
        let stored = pairs(&[("fillfactor", "70"), ("autovacuum_enabled", "off")]);
        let merged = merge_set_reset(
            stored,
            pairs(&[("FillFactor", "80"), ("parallel_workers", "2")]),
            &["autovacuum_enabled".into(), "never_set".into()],
        );
        assert_eq!(
            merged,
            pairs(&[("FillFactor", "80"), ("parallel_workers", "2")])
        );
    }

    #[test]
    fn a_new_codec_starts_from_its_own_level() {
        let stored = pairs(&[
            ("order_by", "a"),
            ("compression", "zstd"),
            ("compression_level", "9"),
        ]);
        // A new codec drops the old level; with a level of its own it keeps that.
        assert_eq!(
            merge_table_options(stored.clone(), pairs(&[("compression", "lz4")]), &[]),
            pairs(&[("order_by", "a"), ("compression", "lz4")])
        );
        assert_eq!(
            merge_table_options(
                stored.clone(),
                pairs(&[("compression", "zstd"), ("compression_level", "1")]),
                &[]
            ),
            pairs(&[
                ("order_by", "a"),
                ("compression", "zstd"),
                ("compression_level", "1")
            ])
        );
        // Resetting the codec resets its level too; other options leave it.
        assert_eq!(
            merge_table_options(stored.clone(), vec![], &["compression".into()]),
            pairs(&[("order_by", "a")])
        );
        assert_eq!(
            merge_table_options(stored.clone(), pairs(&[("order_by", "b")]), &[]),
            pairs(&[
                ("compression", "zstd"),
                ("compression_level", "9"),
                ("order_by", "b")
            ])
        );
    }
}
