//! Vectorized quals: a scan's WHERE clause (or the part of it that qualifies) as a tree
//! of column tests under AND / OR / NOT, evaluated on Arrow arrays with SQL's
//! three-valued logic, and judged against granule statistics.
//!
//! Unlike the pruning predicates (`prune`), which only have to keep every row that may
//! match, a [`Qual`] replaces Postgres's own evaluation: the glue builds one only from
//! quals whose meaning here is exactly Postgres's (the column's own type or an exactly
//! converted constant, byte-ordered comparisons only under byte-ordered collations, no
//! floats: Postgres orders NaN above everything and calls -0 equal to 0), and a row is
//! returned when the qual is true — not when it is false or unknown (NULL).
//!
//! Per granule, [`Qual::all_pass`] says from statistics alone that every row passes (the
//! filter is skipped) and [`Qual::may_pass`] that some row may (otherwise the granule is
//! not read).

use std::cmp::Ordering;

use arrow_array::cast::AsArray;
use arrow_array::types::{Date32Type, Int16Type, Int32Type, Int64Type, Time64MicrosecondType};
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_buffer::{BooleanBuffer, NullBuffer};
use arrow_schema::{DataType, TimeUnit};

use crate::columnar::prune::{self, ColumnStats, GranuleStats, Predicate, Scalar};
use crate::columnar::types::{date_to_arrow, ColumnType, TableSchema};
use crate::error::{Error, Result};

/// A comparison operator, as Postgres's btree strategies plus `<>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cmp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl Cmp {
    fn holds(self, o: Ordering) -> bool {
        match self {
            Cmp::Eq => o == Ordering::Equal,
            Cmp::Ne => o != Ordering::Equal,
            Cmp::Lt => o == Ordering::Less,
            Cmp::Le => o != Ordering::Greater,
            Cmp::Gt => o == Ordering::Greater,
            Cmp::Ge => o != Ordering::Less,
        }
    }

    /// The operator with its operands swapped (`c < x` is `x > c`).
    pub fn commuted(self) -> Cmp {
        match self {
            Cmp::Lt => Cmp::Gt,
            Cmp::Le => Cmp::Ge,
            Cmp::Gt => Cmp::Lt,
            Cmp::Ge => Cmp::Le,
            other => other,
        }
    }

    fn symbol(self) -> &'static str {
        match self {
            Cmp::Eq => "=",
            Cmp::Ne => "<>",
            Cmp::Lt => "<",
            Cmp::Le => "<=",
            Cmp::Gt => ">",
            Cmp::Ge => ">=",
        }
    }
}

/// What a leaf tests of its column's value (constants in the column's units, as the
/// pruning [`Scalar`]s are).
#[derive(Debug, Clone, PartialEq)]
pub enum Test {
    Compare(Cmp, Scalar),
    /// `= ANY` of a list without NULLs.
    In(Vec<Scalar>),
    IsNull,
    IsNotNull,
    /// `LIKE 'prefix%'`: the value's bytes start with these.
    Prefix(Vec<u8>),
    /// `LIKE` of literal segments between `%` wildcards, at least two: the value starts
    /// with the first, ends with the last, and holds the others in order between.
    Like(Vec<Vec<u8>>),
}

impl Test {
    /// The test of `LIKE pattern` (default escape `\`) for a pattern of literal bytes and
    /// `%` wildcards: equality without one, a prefix for one at the end, segments
    /// otherwise; `None` for a pattern with `_` or a dangling escape.
    pub fn like(pattern: &[u8]) -> Option<Test> {
        let mut segments = vec![Vec::new()];
        let mut i = 0;
        while i < pattern.len() {
            match pattern[i] {
                b'\\' => {
                    segments.last_mut()?.push(*pattern.get(i + 1)?);
                    i += 2;
                }
                b'%' => {
                    // `%%` is one wildcard.
                    if !segments.last()?.is_empty() || segments.len() == 1 {
                        segments.push(Vec::new());
                    }
                    i += 1;
                }
                b'_' => return None,
                b => {
                    segments.last_mut()?.push(b);
                    i += 1;
                }
            }
        }
        Some(match segments.len() {
            1 => Test::Compare(Cmp::Eq, Scalar::Bytes(segments.pop()?)),
            2 if segments[1].is_empty() => Test::Prefix(segments.swap_remove(0)),
            _ => Test::Like(segments),
        })
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Qual {
    Test {
        column: usize,
        test: Test,
    },
    /// `left cmp right`: two columns of one integer, date, time or timestamp type.
    Columns {
        left: usize,
        cmp: Cmp,
        right: usize,
    },
    And(Vec<Qual>),
    Or(Vec<Qual>),
    Not(Box<Qual>),
}

/// A qual's value for each row of a batch, in three-valued logic: `t` where it is true,
/// `f` where it is false, neither where it is unknown (NULL).
#[derive(Debug, Clone, PartialEq)]
pub struct Truth {
    pub t: BooleanBuffer,
    pub f: BooleanBuffer,
}

impl Truth {
    fn and(self, o: Truth) -> Truth {
        Truth {
            t: &self.t & &o.t,
            f: &self.f | &o.f,
        }
    }

    fn or(self, o: Truth) -> Truth {
        Truth {
            t: &self.t | &o.t,
            f: &self.f & &o.f,
        }
    }

    fn not(self) -> Truth {
        Truth {
            t: self.f,
            f: self.t,
        }
    }
}

/// Whether a column of `ty` can be tested here exactly as Postgres would.
fn exact_type(ty: ColumnType) -> bool {
    !matches!(
        ty,
        ColumnType::Float32 | ColumnType::Float64 | ColumnType::Opaque
    )
}

impl Qual {
    /// The table columns the qual reads, ascending, each once.
    pub fn columns(&self) -> Vec<usize> {
        let mut out = Vec::new();
        self.collect_columns(&mut out);
        out.sort_unstable();
        out.dedup();
        out
    }

    fn collect_columns(&self, out: &mut Vec<usize>) {
        match self {
            Qual::Test { column, .. } => out.push(*column),
            Qual::Columns { left, right, .. } => out.extend([*left, *right]),
            Qual::And(qs) | Qual::Or(qs) => qs.iter().for_each(|q| q.collect_columns(out)),
            Qual::Not(q) => q.collect_columns(out),
        }
    }

    /// Whether every test can be evaluated here on columns of `schema` (types and
    /// constants that fit them); the glue keeps to Postgres's evaluation otherwise.
    pub fn evaluable(&self, schema: &TableSchema) -> bool {
        match self {
            Qual::Test { column, test } => {
                let Some(c) = schema.columns.get(*column) else {
                    return false;
                };
                let ty = c.ty;
                // Integer constants beyond an int2/int4 column's range compare as
                // such; dates must map into Arrow's days.
                let fits = |v: &Scalar| match (ty, v) {
                    (ColumnType::Int16 | ColumnType::Int32, Scalar::Int(_)) => true,
                    (ColumnType::Date, Scalar::Int(d)) => arrow_date(*d).is_some(),
                    _ => v.to_value(ty).is_some(),
                };
                match test {
                    Test::IsNull | Test::IsNotNull => ty != ColumnType::Opaque,
                    _ if !exact_type(ty) => false,
                    Test::Compare(_, v) => fits(v),
                    Test::In(vs) => !vs.is_empty() && vs.iter().all(fits),
                    Test::Prefix(_) | Test::Like(_) => {
                        matches!(ty, ColumnType::Text | ColumnType::Bytes)
                    }
                }
            }
            Qual::Columns { left, right, .. } => {
                let ty = |c: &usize| schema.columns.get(*c).map(|c| c.ty);
                ty(left) == ty(right) && ty(left).is_some_and(ColumnType::integer_ordered)
            }
            Qual::And(qs) | Qual::Or(qs) => {
                !qs.is_empty() && qs.iter().all(|q| q.evaluable(schema))
            }
            Qual::Not(q) => q.evaluable(schema),
        }
    }

    /// The qual over the rows of `batch`, whose column `at(c)` holds table column `c`.
    pub fn eval(&self, batch: &RecordBatch, at: &impl Fn(usize) -> Option<usize>) -> Result<Truth> {
        self.eval_arrays(batch.columns(), at)
    }

    /// The qual over rows held by `arrays`, of which `at(c)` holds table column `c`.
    pub fn eval_arrays(
        &self,
        arrays: &[ArrayRef],
        at: &impl Fn(usize) -> Option<usize>,
    ) -> Result<Truth> {
        match self {
            Qual::Test { column, test } => {
                let array = at(*column).and_then(|k| arrays.get(k)).ok_or_else(|| {
                    Error::Internal(format!(
                        "a vectorized qual reads column {column}, not decoded"
                    ))
                })?;
                test_array(array, test)
            }
            Qual::Columns { left, cmp, right } => {
                let array = |c: &usize| {
                    at(*c)
                        .and_then(|k| arrays.get(k))
                        .ok_or_else(|| {
                            Error::Internal(format!(
                                "a vectorized qual reads column {c}, not decoded"
                            ))
                        })
                        .and_then(|a| crate::columnar::part::plain_array(a.clone()))
                };
                compare_columns(&array(left)?, *cmp, &array(right)?)
            }
            Qual::And(qs) => fold(qs, arrays, at, Truth::and, "AND"),
            Qual::Or(qs) => fold(qs, arrays, at, Truth::or, "OR"),
            Qual::Not(q) => Ok(q.eval_arrays(arrays, at)?.not()),
        }
    }

    /// What of the qual the rows of `granule` still need tested: `None` when its
    /// statistics prove every row passes; else the qual without the conjuncts they prove.
    pub fn for_granule(&self, granule: &GranuleStats) -> Option<Qual> {
        if self.all_pass(granule) {
            return None;
        }
        Some(match self {
            Qual::And(qs) => {
                let mut left: Vec<Qual> = qs
                    .iter()
                    .filter(|q| !q.all_pass(granule))
                    .cloned()
                    .collect();
                if left.len() == 1 {
                    left.pop().expect("one")
                } else {
                    Qual::And(left)
                }
            }
            q => q.clone(),
        })
    }

    /// Whether some row of `granule` may make the qual true.
    pub fn may_pass(&self, granule: &GranuleStats) -> bool {
        match self {
            Qual::Test { column, test } => test_may_pass(granule, *column, test),
            Qual::Columns { .. } => true,
            Qual::And(qs) => qs.iter().all(|q| q.may_pass(granule)),
            Qual::Or(qs) => qs.iter().any(|q| q.may_pass(granule)),
            // NOT x is true only where x is false: impossible when every row makes x true.
            Qual::Not(q) => !q.all_pass(granule),
        }
    }

    /// Whether every row of `granule` makes the qual true (so it need not be evaluated).
    pub fn all_pass(&self, granule: &GranuleStats) -> bool {
        match self {
            Qual::Test { column, test } => test_all_pass(granule, *column, test),
            Qual::Columns { .. } => false,
            Qual::And(qs) => qs.iter().all(|q| q.all_pass(granule)),
            Qual::Or(qs) => qs.iter().any(|q| q.all_pass(granule)),
            // NOT x is true for every row when x is false for every row: no row may make
            // x true, and x is never unknown (its columns have no NULLs).
            Qual::Not(q) => !q.may_pass(granule) && q.never_null(granule),
        }
    }

    /// Whether the qual is known or false for every row of `granule`: its columns hold
    /// no NULLs there.
    fn never_null(&self, granule: &GranuleStats) -> bool {
        self.columns()
            .iter()
            .all(|&c| granule.columns.get(c).is_some_and(|s| s.nulls == Some(0)))
    }

    /// The qual in SQL-like text, for EXPLAIN, with columns named by `name`.
    pub fn describe(&self, name: &impl Fn(usize) -> String) -> String {
        let scalar = |v: &Scalar| match v {
            Scalar::Int(i) => i.to_string(),
            Scalar::Float(f) => f.to_string(),
            Scalar::Bytes(b) => format!("'{}'", String::from_utf8_lossy(b).replace('\'', "''")),
        };
        match self {
            Qual::Test { column, test } => {
                let c = name(*column);
                match test {
                    Test::Compare(op, v) => format!("{c} {} {}", op.symbol(), scalar(v)),
                    Test::In(vs) => format!(
                        "{c} IN ({})",
                        vs.iter().map(scalar).collect::<Vec<_>>().join(", ")
                    ),
                    Test::IsNull => format!("{c} IS NULL"),
                    Test::IsNotNull => format!("{c} IS NOT NULL"),
                    Test::Prefix(p) => format!(
                        "{c} starts with '{}'",
                        String::from_utf8_lossy(p).replace('\'', "''")
                    ),
                    Test::Like(segments) => format!(
                        "{c} LIKE '{}'",
                        segments
                            .iter()
                            .map(|s| like_escaped(s))
                            .collect::<Vec<_>>()
                            .join("%")
                    ),
                }
            }
            Qual::Columns { left, cmp, right } => {
                format!("{} {} {}", name(*left), cmp.symbol(), name(*right))
            }
            Qual::And(qs) => join(qs, " AND ", name),
            Qual::Or(qs) => join(qs, " OR ", name),
            Qual::Not(q) => format!("NOT ({})", q.describe(name)),
        }
    }
}

/// `left cmp right` row by row; unknown where either is NULL.
fn compare_columns(left: &ArrayRef, cmp: Cmp, right: &ArrayRef) -> Result<Truth> {
    use arrow_ord::cmp as k;
    if left.data_type() != right.data_type() || left.len() != right.len() {
        return Err(Error::Internal(format!(
            "a vectorized comparison of a {} column with a {} column",
            left.data_type(),
            right.data_type()
        )));
    }
    let out = match cmp {
        Cmp::Eq => k::eq(left, right),
        Cmp::Ne => k::neq(left, right),
        Cmp::Lt => k::lt(left, right),
        Cmp::Le => k::lt_eq(left, right),
        Cmp::Gt => k::gt(left, right),
        Cmp::Ge => k::gt_eq(left, right),
    }
    .map_err(|e| Error::Internal(format!("comparing two columns: {e}")))?;
    let valid = match NullBuffer::union(
        left.logical_nulls().as_ref(),
        right.logical_nulls().as_ref(),
    ) {
        Some(n) => n.inner().clone(),
        None => BooleanBuffer::new_set(left.len()),
    };
    let values = out.values();
    Ok(Truth {
        t: values & &valid,
        f: &(!values) & &valid,
    })
}

/// The children of an AND or OR, evaluated and combined by `combine`.
fn fold(
    qs: &[Qual],
    arrays: &[ArrayRef],
    at: &impl Fn(usize) -> Option<usize>,
    combine: fn(Truth, Truth) -> Truth,
    what: &str,
) -> Result<Truth> {
    let mut acc: Option<Truth> = None;
    for q in qs {
        let v = q.eval_arrays(arrays, at)?;
        acc = Some(match acc {
            None => v,
            Some(a) => combine(a, v),
        });
    }
    acc.ok_or_else(|| Error::Internal(format!("an empty {what}")))
}

fn join(qs: &[Qual], sep: &str, name: &impl Fn(usize) -> String) -> String {
    qs.iter()
        .map(|q| format!("({})", q.describe(name)))
        .collect::<Vec<_>>()
        .join(sep)
}

fn test_may_pass(granule: &GranuleStats, column: usize, test: &Test) -> bool {
    let pred = |op, value: &Scalar| Predicate::Compare {
        column,
        op,
        value: value.clone(),
    };
    match test {
        Test::Compare(Cmp::Ne, v) => !all_equal(granule.columns.get(column), v),
        Test::Compare(op, v) => {
            let op = match op {
                Cmp::Eq => prune::Op::Eq,
                Cmp::Lt => prune::Op::Lt,
                Cmp::Le => prune::Op::Le,
                Cmp::Gt => prune::Op::Gt,
                Cmp::Ge => prune::Op::Ge,
                Cmp::Ne => unreachable!(),
            };
            prune::may_match(granule, &pred(op, v))
        }
        Test::In(vs) => prune::may_match(
            granule,
            &Predicate::In {
                column,
                values: vs.clone(),
            },
        ),
        Test::IsNull => prune::may_match(granule, &Predicate::IsNull { column }),
        Test::IsNotNull => prune::may_match(granule, &Predicate::IsNotNull { column }),
        // Could only be ruled out from exact string bounds; they may be truncated.
        Test::Prefix(_) | Test::Like(_) => {
            prune::may_match(granule, &Predicate::IsNotNull { column })
        }
    }
}

/// Every value of the column is `v` (and none is NULL).
fn all_equal(stats: Option<&ColumnStats>, v: &Scalar) -> bool {
    let Some(s) = stats else { return false };
    s.nulls == Some(0)
        && matches!(v, Scalar::Int(_))
        && s.min.as_ref() == Some(v)
        && s.max.as_ref() == Some(v)
}

/// Every row satisfies the test, from statistics: only integer-like bounds are trusted
/// as exact (string bounds may be truncated; floats are never tested here).
fn test_all_pass(granule: &GranuleStats, column: usize, test: &Test) -> bool {
    let Some(s) = granule.columns.get(column) else {
        return false;
    };
    match test {
        Test::IsNull => s.nulls == Some(granule.rows),
        Test::IsNotNull => s.nulls == Some(0),
        _ if s.nulls != Some(0) || granule.rows == 0 => false,
        Test::Compare(op, Scalar::Int(v)) => {
            let (Some(Scalar::Int(min)), Some(Scalar::Int(max))) = (&s.min, &s.max) else {
                return false;
            };
            match op {
                Cmp::Eq => min == v && max == v,
                Cmp::Ne => v < min || v > max,
                Cmp::Lt => max < v,
                Cmp::Le => max <= v,
                Cmp::Gt => min > v,
                Cmp::Ge => min >= v,
            }
        }
        Test::In(vs) => vs.iter().any(|v| all_equal(Some(s), v)),
        _ => false,
    }
}

/// All false: the start of an OR of matches.
fn none(len: usize) -> BooleanBuffer {
    BooleanBuffer::new_unset(len)
}

fn valid(array: &ArrayRef) -> BooleanBuffer {
    match array.logical_nulls() {
        Some(n) => n.inner().clone(),
        None => BooleanBuffer::new_set(array.len()),
    }
}

/// `matches` where the value is known, split into true and false.
fn known(array: &ArrayRef, matches: BooleanBuffer) -> Truth {
    let v = valid(array);
    Truth {
        f: &(!&matches) & &v,
        t: &matches & &v,
    }
}

/// `answers[key]` for each row of dictionary keys `keys` (a NULL key's slot holds any
/// value; the caller masks it).
fn by_key(keys: &dyn Array, answers: &BooleanBuffer) -> Result<BooleanBuffer> {
    use arrow_array::types::{Int8Type, UInt16Type, UInt32Type, UInt8Type};
    let n = answers.len();
    let all = answers.count_set_bits();
    if all == 0 || all == n {
        return Ok(if all == 0 {
            BooleanBuffer::new_unset(keys.len())
        } else {
            BooleanBuffer::new_set(keys.len())
        });
    }
    let lut: Vec<bool> = (0..n).map(|k| answers.value(k)).collect();
    // Out-of-range keys (only in NULL slots) answer false.
    let at = |k: usize| lut.get(k).copied().unwrap_or(false);
    macro_rules! lookup {
        ($t:ty) => {{
            let v = keys.as_primitive::<$t>().values();
            BooleanBuffer::collect_bool(v.len(), |i| at(v[i] as usize))
        }};
    }
    Ok(match keys.data_type() {
        DataType::Int8 => lookup!(Int8Type),
        DataType::Int16 => lookup!(Int16Type),
        DataType::Int32 => lookup!(Int32Type),
        DataType::UInt8 => lookup!(UInt8Type),
        DataType::UInt16 => lookup!(UInt16Type),
        DataType::UInt32 => lookup!(UInt32Type),
        other => {
            return Err(Error::Internal(format!(
                "dictionary keys of type {other} in a vectorized qual"
            )))
        }
    })
}

fn test_array(array: &ArrayRef, test: &Test) -> Result<Truth> {
    // A dictionary array: each distinct value tested once, each row taking its value's
    // answer (a NULL key is neither true nor false, as a NULL value).
    if let Some(d) = array.as_any_dictionary_opt() {
        let by_value = test_array(d.values(), test)?;
        let valid = d.keys().logical_nulls();
        // Each row's answer looked up by its key, then a NULL key's answer put in by
        // whole words.
        let row = |answers: &BooleanBuffer, null_answer: bool| -> Result<BooleanBuffer> {
            let looked_up = by_key(d.keys(), answers)?;
            Ok(match &valid {
                None => looked_up,
                Some(v) if null_answer => &looked_up | &!v.inner(),
                Some(v) => &looked_up & v.inner(),
            })
        };
        return Ok(match test {
            // IS [NOT] NULL is decided for a NULL key too.
            Test::IsNull => Truth {
                t: row(&by_value.t, true)?,
                f: row(&by_value.f, false)?,
            },
            Test::IsNotNull => Truth {
                t: row(&by_value.t, false)?,
                f: row(&by_value.f, true)?,
            },
            _ => Truth {
                t: row(&by_value.t, false)?,
                f: row(&by_value.f, false)?,
            },
        });
    }
    match test {
        Test::IsNull => {
            let v = valid(array);
            Ok(Truth { t: !&v, f: v })
        }
        Test::IsNotNull => {
            let v = valid(array);
            Ok(Truth { f: !&v, t: v })
        }
        Test::Compare(op, value) => Ok(known(array, compare(array, *op, value)?)),
        Test::In(values) => {
            let mut any = none(array.len());
            for v in values {
                any = &any | &compare(array, Cmp::Eq, v)?;
            }
            Ok(known(array, any))
        }
        Test::Prefix(prefix) => {
            let bits = bytes_of(array)?
                .map(|b| {
                    b.is_some_and(|b| b.len() >= prefix.len() && same(&b[..prefix.len()], prefix))
                })
                .collect::<Vec<bool>>();
            Ok(known(array, BooleanBuffer::from(bits)))
        }
        Test::Like(segments) => {
            let like = Like::new(segments);
            let bits = bytes_of(array)?
                .map(|b| b.is_some_and(|b| like.matches(b)))
                .collect::<Vec<bool>>();
            Ok(known(array, BooleanBuffer::from(bits)))
        }
    }
}

/// A `%`-only LIKE pattern ready to match: its first and last segments anchored, the
/// ones between searched for left to right (the leftmost match of each leaves the most
/// room for the rest, so it finds a match whenever one exists).
struct Like<'a> {
    first: &'a [u8],
    last: &'a [u8],
    middle: Vec<memchr::memmem::Finder<'a>>,
}

impl<'a> Like<'a> {
    fn new(segments: &'a [Vec<u8>]) -> Like<'a> {
        let n = segments.len();
        Like {
            first: segments.first().map_or(&[][..], |s| s.as_slice()),
            last: if n > 1 { &segments[n - 1] } else { &[] },
            middle: segments
                .get(1..n.saturating_sub(1))
                .unwrap_or(&[])
                .iter()
                .filter(|s| !s.is_empty())
                .map(memchr::memmem::Finder::new)
                .collect(),
        }
    }

    fn matches(&self, v: &[u8]) -> bool {
        let (f, l) = (self.first.len(), self.last.len());
        if v.len() < f + l || !same(&v[..f], self.first) || !same(&v[v.len() - l..], self.last) {
            return false;
        }
        let mut rest = &v[self.first.len()..v.len() - self.last.len()];
        for f in &self.middle {
            match f.find(rest) {
                Some(at) => rest = &rest[at + f.needle().len()..],
                None => return false,
            }
        }
        true
    }
}

/// Whether two byte strings of one length are equal, eight bytes at a time: values are
/// short, and a call to the C library's `memcmp` per value measured 40 times slower
/// than this loop in the scan.
#[inline(always)]
fn same(a: &[u8], b: &[u8]) -> bool {
    debug_assert_eq!(a.len(), b.len());
    let (a8, b8) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail = a8
        .remainder()
        .iter()
        .zip(b8.remainder())
        .all(|(x, y)| x == y);
    tail && a8.zip(b8).all(|(x, y)| {
        u64::from_ne_bytes(x.try_into().expect("8 bytes"))
            == u64::from_ne_bytes(y.try_into().expect("8 bytes"))
    })
}

/// A literal LIKE segment with its wildcards and escapes escaped again (for EXPLAIN).
fn like_escaped(segment: &[u8]) -> String {
    let mut out = String::new();
    for c in String::from_utf8_lossy(segment).chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        if c == '\'' {
            out.push('\'');
        }
        out.push(c);
    }
    out
}

/// The values of a text or bytes column as byte strings (`None` for NULL).
fn bytes_of(array: &ArrayRef) -> Result<Box<dyn Iterator<Item = Option<&[u8]>> + '_>> {
    Ok(match array.data_type() {
        DataType::Utf8 => Box::new(
            array
                .as_string::<i32>()
                .iter()
                .map(|v| v.map(str::as_bytes)),
        ),
        DataType::Binary => Box::new(array.as_binary::<i32>().iter()),
        DataType::FixedSizeBinary(_) => Box::new(array.as_fixed_size_binary().iter()),
        other => {
            return Err(Error::Internal(format!(
                "a byte-string test on a column of {other}"
            )))
        }
    })
}

/// A date constant (Postgres days, ±infinity as `i32::MAX`/`MIN`) in Arrow's days.
fn arrow_date(d: i64) -> Option<i32> {
    let d = i32::try_from(d).ok()?;
    if d == i32::MAX || d == i32::MIN {
        return Some(d);
    }
    let arrow = d.checked_add(crate::columnar::types::PG_EPOCH_DAYS)?;
    (arrow != i32::MAX && arrow != i32::MIN).then(|| date_to_arrow(d))
}

/// Whether `x op value` for each row (NULL rows: whatever; `known` masks them).
fn compare(array: &ArrayRef, op: Cmp, value: &Scalar) -> Result<BooleanBuffer> {
    fn ints<T: arrow_array::ArrowPrimitiveType>(
        array: &ArrayRef,
        op: Cmp,
        v: T::Native,
    ) -> BooleanBuffer
    where
        T::Native: Ord,
    {
        let values = array.as_primitive::<T>().values();
        // A branch-free loop per operator: the compiler vectorizes each.
        match op {
            Cmp::Eq => BooleanBuffer::collect_bool(values.len(), |i| values[i] == v),
            Cmp::Ne => BooleanBuffer::collect_bool(values.len(), |i| values[i] != v),
            Cmp::Lt => BooleanBuffer::collect_bool(values.len(), |i| values[i] < v),
            Cmp::Le => BooleanBuffer::collect_bool(values.len(), |i| values[i] <= v),
            Cmp::Gt => BooleanBuffer::collect_bool(values.len(), |i| values[i] > v),
            Cmp::Ge => BooleanBuffer::collect_bool(values.len(), |i| values[i] >= v),
        }
    }
    let mismatch = || {
        Error::Internal(format!(
            "a vectorized comparison of a {} column with {value:?}",
            array.data_type()
        ))
    };
    // A constant outside the column type's range: every comparison is decided by which
    // side of the range it lies on.
    let out_of_range = |below: bool| {
        let o = if below {
            Ordering::Greater
        } else {
            Ordering::Less
        };
        if op.holds(o) {
            BooleanBuffer::new_set(array.len())
        } else {
            none(array.len())
        }
    };
    Ok(match (array.data_type(), value) {
        (DataType::Boolean, Scalar::Int(v)) => {
            let b = array.as_boolean().values();
            let v = *v != 0;
            BooleanBuffer::collect_bool(b.len(), |i| op.holds(b.value(i).cmp(&v)))
        }
        (DataType::Int16, Scalar::Int(v)) => match i16::try_from(*v) {
            Ok(v) => ints::<Int16Type>(array, op, v),
            Err(_) => out_of_range(*v < 0),
        },
        (DataType::Int32, Scalar::Int(v)) => match i32::try_from(*v) {
            Ok(v) => ints::<Int32Type>(array, op, v),
            Err(_) => out_of_range(*v < 0),
        },
        (DataType::Int64, Scalar::Int(v)) => ints::<Int64Type>(array, op, *v),
        (DataType::Date32, Scalar::Int(v)) => {
            ints::<Date32Type>(array, op, arrow_date(*v).ok_or_else(mismatch)?)
        }
        (DataType::Time64(TimeUnit::Microsecond), Scalar::Int(v)) => {
            ints::<Time64MicrosecondType>(array, op, *v)
        }
        (DataType::Utf8 | DataType::Binary | DataType::FixedSizeBinary(_), Scalar::Bytes(v))
            if matches!(op, Cmp::Eq | Cmp::Ne) =>
        {
            let eq = op == Cmp::Eq;
            let bits: Vec<bool> = bytes_of(array)?
                .map(|b| b.is_some_and(|b| (b.len() == v.len() && same(b, v)) == eq))
                .collect();
            BooleanBuffer::from(bits)
        }
        (DataType::Utf8 | DataType::Binary | DataType::FixedSizeBinary(_), Scalar::Bytes(v)) => {
            let bits: Vec<bool> = bytes_of(array)?
                .map(|b| b.is_some_and(|b| op.holds(b.cmp(v.as_slice()))))
                .collect();
            BooleanBuffer::from(bits)
        }
        _ => return Err(mismatch()),
    })
}

#[cfg(test)]
mod tests;
