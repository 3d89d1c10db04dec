//! Reading `shared_preload_libraries` the way the server does.
//!
//! The server splits the setting on commas, trims blanks, honours double quotes, and
//! accepts a library as a bare name, `$libdir/name`, a full path, with or without the
//! `.so` suffix; all of them load the same file, so all of them count as "listed".

#![forbid(unsafe_code)]

/// Splits a `*_preload_libraries` value into its entries.
pub fn split_list(value: &str) -> Vec<String> {
    let mut entries = Vec::new();
    let mut current = String::new();
    let mut in_quotes = false;
    let mut chars = value.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if in_quotes && chars.peek() == Some(&'"') => {
                current.push('"');
                chars.next();
            }
            '"' => in_quotes = !in_quotes,
            ',' if !in_quotes => entries.push(std::mem::take(&mut current)),
            c if !in_quotes && c.is_whitespace() => {}
            c => current.push(c),
        }
    }
    entries.push(current);
    entries.retain(|e| !e.is_empty());
    entries
}

/// Whether `library` (a bare name such as `epiphany_columnstore`) is listed in `value`.
pub fn is_listed(value: &str, library: &str) -> bool {
    split_list(value).iter().any(|entry| {
        let base = entry.rsplit('/').next().unwrap_or(entry);
        base.strip_suffix(".so").unwrap_or(base) == library
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_like_the_server() {
        assert_eq!(split_list(""), Vec::<String>::new());
        assert_eq!(split_list(" a , b,c "), vec!["a", "b", "c"]);
        assert_eq!(split_list("\"my lib\",x"), vec!["my lib", "x"]);
        assert_eq!(split_list("\"a\"\"b\""), vec!["a\"b"]);
        assert_eq!(split_list(",,a,"), vec!["a"]);
    }

    #[test]
    fn every_spelling_of_a_library_counts() {
        let lib = "epiphany_columnstore";
        for value in [
            "epiphany_columnstore",
            "pg_stat_statements, epiphany_columnstore",
            "$libdir/epiphany_columnstore",
            "/opt/pg/lib/epiphany_columnstore.so",
            "\"epiphany_columnstore\"",
        ] {
            assert!(is_listed(value, lib), "{value}");
        }
        for value in [
            "",
            "epiphany_columnstore_extra",
            "pg_stat_statements",
            "epiphany",
        ] {
            assert!(!is_listed(value, lib), "{value}");
        }
    }

    mod properties {
        use super::super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn any_setting_splits_without_panicking(value in "\\PC{0,60}") {
                let _ = split_list(&value);
            }

            #[test]
            fn a_listed_library_is_found_wherever_it_stands(
                others in proptest::collection::vec("[a-z_]{1,10}", 0..4),
                at in any::<prop::sample::Index>(),
            ) {
                let mut entries: Vec<String> = others.into_iter().filter(|o| o != "epiphany_columnstore").collect();
                let i = at.index(entries.len() + 1);
                entries.insert(i, "$libdir/epiphany_columnstore".into());
                prop_assert!(is_listed(&entries.join(" , "), "epiphany_columnstore"));
            }
        }
    }
}
