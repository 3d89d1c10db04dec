//! The crate's one error type, and the SQLSTATE each error is reported with.
//!
//! Code in this crate never talks to Postgres; it returns an [`Error`] and the extension
//! crate reports it once (see `pg::report`). The SQLSTATE travels with the error so the
//! boundary does not have to guess it.

#![forbid(unsafe_code)]

/// A five-character SQLSTATE code, as in the Postgres documentation's Appendix A.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SqlState(pub &'static str);

impl SqlState {
    pub const SUCCESSFUL_COMPLETION: SqlState = SqlState("00000");
    pub const INVALID_PARAMETER_VALUE: SqlState = SqlState("22023");
    pub const FEATURE_NOT_SUPPORTED: SqlState = SqlState("0A000");
    pub const DATA_CORRUPTED: SqlState = SqlState("XX001");
    pub const INTERNAL_ERROR: SqlState = SqlState("XX000");
    pub const UNDEFINED_OBJECT: SqlState = SqlState("42704");
    pub const UNDEFINED_TABLE: SqlState = SqlState("42P01");
    pub const INVALID_TEXT_REPRESENTATION: SqlState = SqlState("22P02");
    pub const NUMERIC_VALUE_OUT_OF_RANGE: SqlState = SqlState("22003");
    pub const DATA_EXCEPTION: SqlState = SqlState("22000");
    pub const PROGRAM_LIMIT_EXCEEDED: SqlState = SqlState("54000");

    /// The code packed the way Postgres's `MAKE_SQLSTATE` packs it: six bits a character.
    pub fn encoded(self) -> i32 {
        self.0
            .bytes()
            .enumerate()
            .map(|(i, b)| ((i32::from(b) - i32::from(b'0')) & 0x3F) << (6 * i))
            .sum()
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    #[error("invalid value for {name}: {detail}")]
    InvalidParameter { name: String, detail: String },
    #[error("{0} is not supported yet")]
    NotSupported(String),
    #[error("unknown EpiphanyDB component \"{0}\"")]
    UnknownComponent(String),
    /// A relation named by OID that does not exist.
    #[error("relation with OID {0} does not exist")]
    UndefinedTable(u32),
    #[error("data corrupted: {0}")]
    Corrupted(String),
    /// A broken invariant of our own code, not of the data or the input.
    #[error("internal error: {0}")]
    Internal(String),
    /// A literal that does not parse as its type.
    #[error("invalid input syntax for type {ty}: \"{input}\" ({detail})")]
    InvalidText {
        ty: &'static str,
        input: String,
        detail: String,
    },
    #[error("{0}")]
    OutOfRange(String),
    /// A value its operation cannot take (NaN in a vector, mismatched dimensions, …).
    #[error("{0}")]
    Data(String),
    /// Beyond what the implementation supports (too many dimensions, …).
    #[error("{0}")]
    Limit(String),
}

impl Error {
    /// The error as it concerns table `name`: corruption and internal errors say which
    /// table they were met in (errors about a user's input already name what they are
    /// about, and keep their words).
    pub fn in_table(self, name: &str) -> Error {
        match self {
            Error::Corrupted(m) => Error::Corrupted(format!("table \"{name}\": {m}")),
            Error::Internal(m) => Error::Internal(format!("table \"{name}\": {m}")),
            e => e,
        }
    }

    pub fn sqlstate(&self) -> SqlState {
        match self {
            Error::InvalidParameter { .. } => SqlState::INVALID_PARAMETER_VALUE,
            Error::NotSupported(_) => SqlState::FEATURE_NOT_SUPPORTED,
            Error::UnknownComponent(_) => SqlState::UNDEFINED_OBJECT,
            Error::UndefinedTable(_) => SqlState::UNDEFINED_TABLE,
            Error::Corrupted(_) => SqlState::DATA_CORRUPTED,
            Error::Internal(_) => SqlState::INTERNAL_ERROR,
            Error::InvalidText { .. } => SqlState::INVALID_TEXT_REPRESENTATION,
            Error::OutOfRange(_) => SqlState::NUMERIC_VALUE_OUT_OF_RANGE,
            Error::Data(_) => SqlState::DATA_EXCEPTION,
            Error::Limit(_) => SqlState::PROGRAM_LIMIT_EXCEEDED,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn corruption_names_its_table_and_input_errors_keep_their_words() {
        let e = Error::Corrupted("block 2: bad checksum".into()).in_table("t");
        assert_eq!(
            e.to_string(),
            "data corrupted: table \"t\": block 2: bad checksum"
        );
        assert_eq!(e.sqlstate(), SqlState::DATA_CORRUPTED);
        let e = Error::NotSupported("UPDATE".into()).in_table("t");
        assert_eq!(e, Error::NotSupported("UPDATE".into()));
    }

    #[test]
    fn every_sqlstate_is_five_characters_of_the_right_class() {
        let errors = [
            Error::InvalidParameter {
                name: "x".into(),
                detail: "y".into(),
            },
            Error::NotSupported("UPDATE".into()),
            Error::UnknownComponent("nope".into()),
            Error::UndefinedTable(0),
            Error::Corrupted("bad checksum".into()),
            Error::Internal("broken".into()),
            Error::InvalidText {
                ty: "vector",
                input: "[".into(),
                detail: "no end".into(),
            },
            Error::OutOfRange("overflow".into()),
            Error::Data("NaN".into()),
            Error::Limit("too many".into()),
        ];
        for e in errors {
            let code = e.sqlstate().0;
            assert_eq!(code.len(), 5, "{e}");
            assert!(
                code.chars()
                    .all(|c| c.is_ascii_digit() || c.is_ascii_uppercase()),
                "{code}"
            );
        }
        assert_eq!(
            Error::NotSupported("UPDATE".into()).to_string(),
            "UPDATE is not supported yet"
        );
    }

    #[test]
    fn encodes_like_make_sqlstate() {
        // Values of ERRCODE_* in Postgres's generated errcodes.h.
        assert_eq!(SqlState::SUCCESSFUL_COMPLETION.encoded(), 0);
        assert_eq!(SqlState::FEATURE_NOT_SUPPORTED.encoded(), 17 << 6);
        assert_eq!(
            SqlState::INVALID_PARAMETER_VALUE.encoded(),
            2 | (2 << 6) | (2 << 18) | (3 << 24)
        );
        assert_eq!(
            SqlState::DATA_CORRUPTED.encoded(),
            40 | (40 << 6) | (1 << 24)
        );
    }
}
