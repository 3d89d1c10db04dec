//! The components of the suite, what each needs from the server, and how healthy an
//! installed one is.
//!
//! `epiphany.status()` reports one row per installed component from this table; keeping
//! it here (and not in SQL) means a component's background workers are declared once,
//! next to the name they are registered under.

#![forbid(unsafe_code)]

use std::fmt;

use crate::error::{Error, Result};

/// One extension of the suite.
#[derive(Debug, PartialEq, Eq)]
pub struct Component {
    /// Extension name, as in `CREATE EXTENSION`.
    pub name: &'static str,
    pub summary: &'static str,
    /// Shared library the extension loads; `None` for a SQL-only extension.
    pub library: Option<&'static str>,
    /// SQL function (in schema `epiphany`) that returns the version of the loaded library.
    pub version_function: Option<&'static str>,
    /// `bgw_type` of each background worker the library starts when it is listed in
    /// `shared_preload_libraries`.
    pub background_workers: &'static [&'static str],
}

/// `bgw_type` of the columnstore maintenance launcher.
pub const COLUMNSTORE_LAUNCHER: &str = "epiphany_columnstore launcher";

/// Every component, in dependency order (a component only requires earlier ones).
pub const COMPONENTS: &[Component] = &[
    Component {
        name: "epiphany_core",
        summary: "schema epiphany, shared by the suite",
        library: None,
        version_function: None,
        background_workers: &[],
    },
    Component {
        name: "epiphany_columnstore",
        summary: "columnar MergeTree table access method",
        library: Some("epiphany_columnstore"),
        version_function: Some("columnstore_version"),
        background_workers: &[COLUMNSTORE_LAUNCHER],
    },
    Component {
        name: "epiphany_timestore",
        summary: "time-series table access method",
        library: Some("epiphany_timestore"),
        version_function: Some("timestore_version"),
        background_workers: &[],
    },
    Component {
        name: "epiphany_vectorstore",
        summary: "vector type, HNSW and IVF-PQ indexes",
        library: Some("epiphany_vectorstore"),
        version_function: Some("vectorstore_version"),
        background_workers: &[],
    },
    Component {
        name: "epiphany_unified_api",
        summary: "one SQL surface over the suite",
        library: Some("epiphany_unified_api"),
        version_function: Some("version"),
        background_workers: &[],
    },
];

pub fn component(name: &str) -> Result<&'static Component> {
    COMPONENTS
        .iter()
        .find(|c| c.name == name)
        .ok_or_else(|| Error::UnknownComponent(name.to_string()))
}

/// Libraries that must be in `shared_preload_libraries` for every worker to run.
pub fn preload_libraries() -> impl Iterator<Item = &'static str> {
    COMPONENTS
        .iter()
        .filter(|c| !c.background_workers.is_empty())
        .filter_map(|c| c.library)
}

/// What the server says about one installed component.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    pub installed_version: String,
    /// Its library is listed in `shared_preload_libraries`.
    pub preloaded: bool,
    /// Its background workers found in `pg_stat_activity`.
    pub workers_running: usize,
    /// The server is a standby: workers that write start only after promotion.
    pub in_recovery: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    Ok,
    /// The SQL objects are older (or newer) than the library that serves them.
    VersionMismatch {
        installed: String,
        library: String,
    },
    /// Workers cannot run: the library is not preloaded.
    NotPreloaded {
        library: &'static str,
    },
    /// Preloaded, but fewer workers than expected are alive.
    WorkersDown {
        expected: usize,
        running: usize,
    },
}

impl Component {
    pub fn health(&self, observed: &Observed, library_version: &str) -> Health {
        if observed.installed_version != library_version {
            return Health::VersionMismatch {
                installed: observed.installed_version.clone(),
                library: library_version.to_string(),
            };
        }
        let expected = self.background_workers.len();
        if expected == 0 || observed.in_recovery {
            return Health::Ok;
        }
        match self.library {
            Some(library) if !observed.preloaded => Health::NotPreloaded { library },
            _ if observed.workers_running < expected => Health::WorkersDown {
                expected,
                running: observed.workers_running,
            },
            _ => Health::Ok,
        }
    }
}

impl fmt::Display for Health {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Health::Ok => write!(f, "ok"),
            Health::VersionMismatch { installed, library } => write!(
                f,
                "SQL objects at version {installed}, library at {library}: run ALTER EXTENSION ... UPDATE"
            ),
            Health::NotPreloaded { library } => write!(
                f,
                "background workers not running: add {library} to shared_preload_libraries and restart"
            ),
            Health::WorkersDown { expected, running } => write!(
                f,
                "{running} of {expected} background workers running: see the server log"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(version: &str, preloaded: bool, running: usize) -> Observed {
        Observed {
            installed_version: version.into(),
            preloaded,
            workers_running: running,
            in_recovery: false,
        }
    }

    #[test]
    fn components_are_in_dependency_order_and_named_uniquely() {
        assert_eq!(COMPONENTS[0].name, "epiphany_core");
        assert_eq!(COMPONENTS.last().unwrap().name, "epiphany_unified_api");
        let mut names: Vec<_> = COMPONENTS.iter().map(|c| c.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), COMPONENTS.len());
        assert!(component("epiphany_nothing").is_err());
        assert_eq!(
            component("epiphany_columnstore").unwrap().library,
            Some("epiphany_columnstore")
        );
    }

    #[test]
    fn only_components_with_workers_need_preloading() {
        assert_eq!(
            preload_libraries().collect::<Vec<_>>(),
            vec!["epiphany_columnstore"]
        );
    }

    #[test]
    fn health_reports_the_first_thing_a_user_must_fix() {
        let cs = component("epiphany_columnstore").unwrap();
        assert_eq!(cs.health(&seen("0.1.0", true, 1), "0.1.0"), Health::Ok);
        assert_eq!(
            cs.health(&seen("0.1.0", false, 0), "0.1.0"),
            Health::NotPreloaded {
                library: "epiphany_columnstore"
            }
        );
        assert_eq!(
            cs.health(&seen("0.1.0", true, 0), "0.1.0"),
            Health::WorkersDown {
                expected: 1,
                running: 0
            }
        );
        assert!(matches!(
            cs.health(&seen("0.0.9", true, 1), "0.1.0"),
            Health::VersionMismatch { .. }
        ));
        // On a standby the workers wait for promotion.
        let standby = Observed {
            in_recovery: true,
            ..seen("0.1.0", true, 0)
        };
        assert_eq!(cs.health(&standby, "0.1.0"), Health::Ok);
        // A component without workers is healthy whether or not it is preloaded.
        let vs = component("epiphany_vectorstore").unwrap();
        assert_eq!(vs.health(&seen("0.1.0", false, 0), "0.1.0"), Health::Ok);
        assert!(cs
            .health(&seen("0.1.0", false, 0), "0.1.0")
            .to_string()
            .contains("shared_preload_libraries"));
    }
}
