//! Aggregate arguments as expressions over a batch's columns: integer and exact numeric
//! arithmetic (`+ - *`, unary minus, integer → numeric casts) evaluated a batch at a time.
//!
//! Integers follow Postgres's overflow rules (an error naming the type, never a wrapped
//! value). A numeric is an integer mantissa at a scale fixed per expression, which is
//! what Postgres computes too: every value of a `numeric(p, s)` column has display scale
//! `s`, a sum's scale is the larger of its operands', a product's their sum. Mantissas
//! are 128-bit; a batch where one overflows is evaluated again in 256 bits, and the
//! planner only accepts expressions whose bound (from the columns' precisions) fits
//! those. `NaN` propagates as in Postgres.

use std::borrow::Cow;

use arrow_array::cast::AsArray;
use arrow_array::types::{Date32Type, Int16Type, Int32Type, Int64Type};
use arrow_array::{Array, RecordBatch};
use arrow_buffer::{i256, NullBuffer};

use crate::columnar::numeric;
use crate::columnar::types::{date_from_arrow, ColumnType};
use crate::error::{Error, Result};

/// The SQL type an expression yields, as far as evaluation cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Int16,
    Int32,
    Int64,
    /// Every value has this display scale.
    Numeric {
        scale: u16,
    },
    /// Days since 2000-01-01.
    Date,
    /// Microseconds since 2000-01-01 (both timestamp types).
    Timestamp,
}

impl Kind {
    pub fn scale(self) -> u16 {
        match self {
            Kind::Numeric { scale } => scale,
            _ => 0,
        }
    }

    fn int_range(self) -> Option<(i64, i64, &'static str)> {
        match self {
            Kind::Int16 => Some((i16::MIN.into(), i16::MAX.into(), "smallint out of range")),
            Kind::Int32 => Some((i32::MIN.into(), i32::MAX.into(), "integer out of range")),
            Kind::Int64 => Some((i64::MIN, i64::MAX, "bigint out of range")),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Add,
    Sub,
    Mul,
}

/// An aggregate's argument.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// A table column (by its number in the table) of a natively stored type; `digits`
    /// bounds its values' mantissas (a numeric's precision; 5, 10, 19 for the integers).
    Column {
        column: usize,
        ty: ColumnType,
        digits: u8,
    },
    /// An integer constant of kind `kind` (one of the integer kinds).
    Int {
        value: i64,
        kind: Kind,
    },
    /// A numeric constant `mantissa / 10^scale`, or NaN.
    Numeric {
        mantissa: i128,
        scale: u16,
        nan: bool,
    },
    Arith {
        op: Op,
        left: Box<Expr>,
        right: Box<Expr>,
    },
    Neg(Box<Expr>),
    /// An integer as a numeric (scale 0).
    ToNumeric(Box<Expr>),
    /// A smaller integer as a larger one (`int4 → int8`).
    Widen {
        arg: Box<Expr>,
        to: Kind,
    },
}

/// The stored `NaN` of a 128-bit mantissa: above every bounded value (all are below
/// 10^38), as `NaN` sorts above every number in Postgres.
pub const NAN128: i128 = i128::MAX;

/// Values of an evaluated expression, one per row of the batch.
#[derive(Debug, Clone)]
pub enum Vals<'a> {
    /// Integers, dates, timestamps, and numerics of a column (`numeric::NAN` is NaN).
    I64(Cow<'a, [i64]>),
    /// Numeric mantissas (`NAN128` is NaN).
    I128(Vec<i128>),
    /// Numeric mantissas of a batch too large for 128 bits (`i256::MAX` is NaN).
    I256(Vec<i256>),
}

#[derive(Debug, Clone)]
pub struct Evaluated<'a> {
    pub vals: Vals<'a>,
    pub nulls: Option<NullBuffer>,
    pub kind: Kind,
}

impl Evaluated<'_> {
    pub fn is_valid(&self, row: usize) -> bool {
        self.nulls.as_ref().is_none_or(|n| n.is_valid(row))
    }
}

fn nan256() -> i256 {
    i256::MAX
}

impl Expr {
    /// The kind of value the expression yields; an error for a combination the planner
    /// must not have built (integers with numerics: Postgres casts first).
    pub fn kind(&self) -> Result<Kind> {
        Ok(match self {
            Expr::Column { ty, .. } => match ty {
                ColumnType::Int16 => Kind::Int16,
                ColumnType::Int32 => Kind::Int32,
                ColumnType::Int64 => Kind::Int64,
                ColumnType::Numeric { scale } => Kind::Numeric { scale: *scale },
                ColumnType::Date => Kind::Date,
                ColumnType::Timestamp | ColumnType::TimestampTz => Kind::Timestamp,
                other => {
                    return Err(Error::Internal(format!(
                        "no vectorized aggregate argument of column type {other:?}"
                    )))
                }
            },
            Expr::Int { kind, .. } => *kind,
            Expr::Numeric { scale, .. } => Kind::Numeric { scale: *scale },
            Expr::Arith { op, left, right } => match (left.kind()?, right.kind()?) {
                (Kind::Numeric { scale: a }, Kind::Numeric { scale: b }) => Kind::Numeric {
                    scale: match op {
                        Op::Add | Op::Sub => a.max(b),
                        Op::Mul => a
                            .checked_add(b)
                            .ok_or_else(|| Error::Internal("numeric scale overflow".into()))?,
                    },
                },
                (a, b) if a == b && a.int_range().is_some() => a,
                (a, b) => {
                    return Err(Error::Internal(format!(
                        "no vectorized arithmetic of {a:?} and {b:?}"
                    )))
                }
            },
            Expr::Neg(arg) => match arg.kind()? {
                k @ (Kind::Numeric { .. } | Kind::Int16 | Kind::Int32 | Kind::Int64) => k,
                k => return Err(Error::Internal(format!("no vectorized negation of {k:?}"))),
            },
            Expr::ToNumeric(_) => Kind::Numeric { scale: 0 },
            Expr::Widen { to, .. } => *to,
        })
    }

    /// An upper bound on the decimal digits of any value's mantissa: what decides whether
    /// the expression can be evaluated at all (≤ 76: 256 bits) and in 128 bits (≤ 38).
    pub fn digits(&self) -> u32 {
        match self {
            Expr::Column { digits, .. } => u32::from(*digits),
            Expr::Int { value, .. } => decimal_digits(i128::from(*value)),
            Expr::Numeric { mantissa, .. } => decimal_digits(*mantissa),
            Expr::Arith { op, left, right } => {
                let (a, b) = (left.digits(), right.digits());
                match op {
                    Op::Mul => a + b,
                    Op::Add | Op::Sub => {
                        let (sa, sb) = (scale_of(left), scale_of(right));
                        let s = sa.max(sb);
                        (a + s - sa).max(b + s - sb) + 1
                    }
                }
            }
            Expr::Neg(arg) | Expr::ToNumeric(arg) => arg.digits(),
            Expr::Widen { arg, .. } => arg.digits(),
        }
    }

    /// The number of nodes of the expression.
    pub fn size(&self) -> usize {
        1 + match self {
            Expr::Column { .. } | Expr::Int { .. } | Expr::Numeric { .. } => 0,
            Expr::Arith { left, right, .. } => left.size() + right.size(),
            Expr::Neg(a) | Expr::ToNumeric(a) | Expr::Widen { arg: a, .. } => a.size(),
        }
    }

    /// The table columns the expression reads.
    pub fn columns(&self, out: &mut Vec<usize>) {
        match self {
            Expr::Column { column, .. } => out.push(*column),
            Expr::Int { .. } | Expr::Numeric { .. } => {}
            Expr::Arith { left, right, .. } => {
                left.columns(out);
                right.columns(out);
            }
            Expr::Neg(a) | Expr::ToNumeric(a) | Expr::Widen { arg: a, .. } => a.columns(out),
        }
    }

    /// The expression's values for every row of `batch`; `at` gives a table column's
    /// position in the batch.
    pub fn eval<'b>(
        &self,
        batch: &'b RecordBatch,
        at: &impl Fn(usize) -> Option<usize>,
    ) -> Result<Evaluated<'b>> {
        self.eval_memo(batch, at, &Memo::default())
    }

    /// As [`Expr::eval`], taking the values of an operand that `memo` holds from there:
    /// `sum(a * b)` and `sum(a * b * c)` multiply `a * b` once.
    pub fn eval_memo<'b>(
        &self,
        batch: &'b RecordBatch,
        at: &impl Fn(usize) -> Option<usize>,
        memo: &Memo<'_, 'b>,
    ) -> Result<Evaluated<'b>> {
        let kind = self.kind()?;
        match self.eval_narrow(batch, at, memo)? {
            Some(e) => Ok(e),
            // A 128-bit overflow somewhere in the batch: all of it again, in 256 bits.
            None => {
                let (vals, nulls) = self.eval_wide(batch, at)?;
                Ok(Evaluated {
                    vals: Vals::I256(vals),
                    nulls,
                    kind,
                })
            }
        }
    }

    /// Evaluation in 64 bits (integers) and 128 bits (numerics); `None` when a numeric
    /// mantissa overflowed 128 bits.
    fn eval_narrow<'b>(
        &self,
        batch: &'b RecordBatch,
        at: &impl Fn(usize) -> Option<usize>,
        memo: &Memo<'_, 'b>,
    ) -> Result<Option<Evaluated<'b>>> {
        let rows = batch.num_rows();
        let kind = self.kind()?;
        Ok(Some(match self {
            Expr::Column { column, ty, .. } => {
                let k = at(*column).ok_or_else(|| {
                    Error::Internal(format!("an aggregate reads column {column}, not decoded"))
                })?;
                let array = batch.column(k);
                let nulls = array.logical_nulls();
                let vals: Cow<'b, [i64]> = match ty {
                    ColumnType::Int16 => Cow::Owned(
                        array
                            .as_primitive::<Int16Type>()
                            .values()
                            .iter()
                            .map(|&v| i64::from(v))
                            .collect(),
                    ),
                    ColumnType::Int32 => Cow::Owned(
                        array
                            .as_primitive::<Int32Type>()
                            .values()
                            .iter()
                            .map(|&v| i64::from(v))
                            .collect(),
                    ),
                    ColumnType::Date => Cow::Owned(
                        array
                            .as_primitive::<Date32Type>()
                            .values()
                            .iter()
                            .map(|&v| i64::from(date_from_arrow(v)))
                            .collect(),
                    ),
                    _ => Cow::Borrowed(&array.as_primitive::<Int64Type>().values()[..]),
                };
                Evaluated {
                    vals: Vals::I64(vals),
                    nulls,
                    kind,
                }
            }
            Expr::Int { value, .. } => Evaluated {
                vals: Vals::I64(Cow::Owned(vec![*value; rows])),
                nulls: None,
                kind,
            },
            Expr::Numeric { mantissa, nan, .. } => Evaluated {
                vals: Vals::I128(vec![if *nan { NAN128 } else { *mantissa }; rows]),
                nulls: None,
                kind,
            },
            Expr::Widen { arg, .. } => {
                let Some(mut e) = arg.eval_narrow(batch, at, memo)? else {
                    return Ok(None);
                };
                e.kind = kind;
                e
            }
            Expr::ToNumeric(arg) => {
                let Some(e) = arg.eval_narrow(batch, at, memo)? else {
                    return Ok(None);
                };
                Evaluated {
                    vals: Vals::I128(to_i128(&e.vals, false)),
                    nulls: e.nulls,
                    kind,
                }
            }
            Expr::Neg(arg) => {
                let Some(e) = arg.eval_narrow(batch, at, memo)? else {
                    return Ok(None);
                };
                let vals = match (kind, &e.vals) {
                    (Kind::Numeric { .. }, v) => Vals::I128(
                        to_i128(v, true)
                            .into_iter()
                            .map(|x| if x == NAN128 { x } else { -x })
                            .collect(),
                    ),
                    (_, Vals::I64(v)) => {
                        let (lo, hi, msg) = kind.int_range().expect("an integer kind");
                        let mut out = Vec::with_capacity(rows);
                        for (r, &x) in v.iter().enumerate() {
                            let n = x.checked_neg().filter(|n| (lo..=hi).contains(n));
                            match n {
                                Some(n) => out.push(n),
                                None if !e.is_valid(r) => out.push(0),
                                None => return Err(Error::OutOfRange(msg.into())),
                            }
                        }
                        Vals::I64(Cow::Owned(out))
                    }
                    _ => return Err(Error::Internal("negation of a wide integer".into())),
                };
                Evaluated {
                    vals,
                    nulls: e.nulls,
                    kind,
                }
            }
            Expr::Arith { op, left, right } => {
                // A constant operand is read as one value, not a column of copies.
                let operand = |e: &Expr| -> Result<Option<Cow<'_, Evaluated<'b>>>> {
                    match e {
                        Expr::Numeric { .. } | Expr::Int { .. } => {
                            Ok(Some(Cow::Owned(Evaluated {
                                vals: Vals::I64(Cow::Owned(Vec::new())),
                                nulls: None,
                                kind: e.kind()?,
                            })))
                        }
                        _ => match memo.get(e) {
                            Some(v) => Ok(Some(Cow::Borrowed(v))),
                            None => Ok(e.eval_narrow(batch, at, memo)?.map(Cow::Owned)),
                        },
                    }
                };
                let (Some(a), Some(b)) = (operand(left)?, operand(right)?) else {
                    return Ok(None);
                };
                let nulls = NullBuffer::union(a.nulls.as_ref(), b.nulls.as_ref());
                match kind {
                    Kind::Numeric { scale } => {
                        let (fx, fy) = match op {
                            Op::Mul => (1, 1),
                            _ => (
                                10i128.pow(u32::from(scale - a.kind.scale())),
                                10i128.pow(u32::from(scale - b.kind.scale())),
                            ),
                        };
                        let (x, y) = (Src::of(left, &a), Src::of(right, &b));
                        // Most batches' values are far below their declared precision:
                        // where no result of this batch overflows 64 bits (and no NaN is
                        // among the operands), 64-bit arithmetic is exact.
                        if let Some(out) = narrow64(*op, &x, &y, fx, fy, rows) {
                            return Ok(Some(Evaluated {
                                vals: Vals::I64(Cow::Owned(out)),
                                nulls,
                                kind,
                            }));
                        }
                        // Within its bound the result cannot overflow: no checks.
                        let out = if self.digits() <= 38 {
                            let nc = |v: i128| (v, false);
                            match op {
                                Op::Add => dispatch(&x, &y, rows, |x, y| {
                                    nc(x.wrapping_mul(fx).wrapping_add(y.wrapping_mul(fy)))
                                }),
                                Op::Sub => dispatch(&x, &y, rows, |x, y| {
                                    nc(x.wrapping_mul(fx).wrapping_sub(y.wrapping_mul(fy)))
                                }),
                                Op::Mul => dispatch(&x, &y, rows, |x, y| nc(x.wrapping_mul(y))),
                            }
                        } else {
                            match op {
                                Op::Add => dispatch(&x, &y, rows, |x, y| {
                                    scaled(x, fx, y, fy, i128::overflowing_add)
                                }),
                                Op::Sub => dispatch(&x, &y, rows, |x, y| {
                                    scaled(x, fx, y, fy, i128::overflowing_sub)
                                }),
                                Op::Mul => dispatch(&x, &y, rows, |x, y| x.overflowing_mul(y)),
                            }
                        };
                        let Some(out) = out else {
                            return Ok(None);
                        };
                        Evaluated {
                            vals: Vals::I128(out),
                            nulls,
                            kind,
                        }
                    }
                    _ => {
                        fn ints<'v>(
                            e: &Expr,
                            v: &'v Evaluated<'_>,
                            rows: usize,
                        ) -> Result<Cow<'v, [i64]>> {
                            match (e, &v.vals) {
                                (Expr::Int { value, .. }, _) => Ok(Cow::Owned(vec![*value; rows])),
                                (_, Vals::I64(x)) => Ok(Cow::Borrowed(&x[..])),
                                _ => {
                                    Err(Error::Internal("integer arithmetic on wide values".into()))
                                }
                            }
                        }
                        let (x, y) = (ints(left, &a, rows)?, ints(right, &b, rows)?);
                        let (lo, hi, msg) = kind.int_range().ok_or_else(|| {
                            Error::Internal(format!("no vectorized arithmetic on {kind:?}"))
                        })?;
                        let mut out = Vec::with_capacity(rows);
                        for (r, (&x, &y)) in x.iter().zip(y.iter()).enumerate() {
                            let v = match op {
                                Op::Add => x.checked_add(y),
                                Op::Sub => x.checked_sub(y),
                                Op::Mul => x.checked_mul(y),
                            };
                            match v.filter(|v| (lo..=hi).contains(v)) {
                                Some(v) => out.push(v),
                                // A NULL row's stored value is anything: no error for it.
                                None if nulls.as_ref().is_some_and(|n| n.is_null(r)) => out.push(0),
                                None => return Err(Error::OutOfRange(msg.into())),
                            }
                        }
                        Evaluated {
                            vals: Vals::I64(Cow::Owned(out)),
                            nulls,
                            kind,
                        }
                    }
                }
            }
        }))
    }

    /// Numeric evaluation in 256 bits (only reached for numerics).
    fn eval_wide(
        &self,
        batch: &RecordBatch,
        at: &impl Fn(usize) -> Option<usize>,
    ) -> Result<(Vec<i256>, Option<NullBuffer>)> {
        let widen = |e: Evaluated<'_>| -> (Vec<i256>, Option<NullBuffer>) {
            let numeric = matches!(e.kind, Kind::Numeric { .. });
            let v = to_i128(&e.vals, numeric)
                .into_iter()
                .map(|x| {
                    if x == NAN128 && numeric {
                        nan256()
                    } else {
                        i256::from_i128(x)
                    }
                })
                .collect();
            (v, e.nulls)
        };
        match self {
            Expr::Arith { op, left, right } => {
                let (x, nx) = left.eval_wide(batch, at)?;
                let (y, ny) = right.eval_wide(batch, at)?;
                let scale = self.kind()?.scale();
                let (sa, sb) = (left.kind()?.scale(), right.kind()?.scale());
                let pow = |d: u16| i256::from_i128(10).wrapping_pow(u32::from(d));
                let (fx, fy) = match op {
                    Op::Mul => (i256::ONE, i256::ONE),
                    _ => (pow(scale - sa), pow(scale - sb)),
                };
                let nan = nan256();
                let mut out = Vec::with_capacity(x.len());
                for (&x, &y) in x.iter().zip(&y) {
                    if x == nan || y == nan {
                        out.push(nan);
                        continue;
                    }
                    let v = match op {
                        Op::Add => x
                            .checked_mul(fx)
                            .zip(y.checked_mul(fy))
                            .and_then(|(x, y)| x.checked_add(y)),
                        Op::Sub => x
                            .checked_mul(fx)
                            .zip(y.checked_mul(fy))
                            .and_then(|(x, y)| x.checked_sub(y)),
                        Op::Mul => x.checked_mul(y),
                    };
                    out.push(v.filter(|&v| v != nan).ok_or_else(|| {
                        Error::Internal("a numeric expression exceeded its planned bound".into())
                    })?);
                }
                Ok((out, NullBuffer::union(nx.as_ref(), ny.as_ref())))
            }
            Expr::Neg(arg) => {
                let (x, n) = arg.eval_wide(batch, at)?;
                let nan = nan256();
                Ok((
                    x.into_iter()
                        .map(|v| if v == nan { v } else { v.wrapping_neg() })
                        .collect(),
                    n,
                ))
            }
            Expr::ToNumeric(arg) | Expr::Widen { arg, .. } => {
                let e = arg
                    .eval_narrow(batch, at, &Memo::default())?
                    .ok_or_else(|| {
                        Error::Internal("an integer expression overflowed 128 bits".into())
                    })?;
                let (v, n) = widen(e);
                Ok((v, n))
            }
            _ => {
                let e = self
                    .eval_narrow(batch, at, &Memo::default())?
                    .ok_or_else(|| {
                        Error::Internal("a leaf expression overflowed 128 bits".into())
                    })?;
                Ok(widen(e))
            }
        }
    }
}

/// Expressions already evaluated over a batch, and their values.
#[derive(Default)]
pub struct Memo<'m, 'b> {
    pub exprs: &'m [&'m Expr],
    pub vals: &'m [Evaluated<'b>],
}

impl<'m, 'b> Memo<'m, 'b> {
    fn get(&self, e: &Expr) -> Option<&'m Evaluated<'b>> {
        let i = self.exprs.iter().position(|x| *x == e)?;
        self.vals.get(i)
    }
}

fn scale_of(e: &Expr) -> u32 {
    e.kind().map_or(0, |k| u32::from(k.scale()))
}

/// Decimal digits of |v| (1 for 0).
pub fn decimal_digits(v: i128) -> u32 {
    let mut a = v.unsigned_abs();
    let mut d = 1;
    while a >= 10 {
        a /= 10;
        d += 1;
    }
    d
}

/// Values as 128-bit mantissas; with `numeric`, a column's NaN becomes [`NAN128`].
fn to_i128(v: &Vals<'_>, numeric: bool) -> Vec<i128> {
    match v {
        Vals::I64(v) => v
            .iter()
            .map(|&x| {
                if numeric && x == numeric::NAN {
                    NAN128
                } else {
                    i128::from(x)
                }
            })
            .collect(),
        Vals::I128(v) => v.clone(),
        Vals::I256(_) => unreachable!("narrow evaluation never holds wide values"),
    }
}

/// One operand of a numeric kernel: a column's 64-bit values (NaN-able when numeric),
/// 128-bit mantissas, or one constant.
enum Src<'s> {
    I64(&'s [i64], bool),
    I128(&'s [i128]),
    Const(i128),
}

impl<'s> Src<'s> {
    fn of(e: &Expr, v: &'s Evaluated<'_>) -> Src<'s> {
        match e {
            Expr::Numeric { nan: true, .. } => Src::Const(NAN128),
            Expr::Numeric { mantissa, .. } => Src::Const(*mantissa),
            Expr::Int { value, .. } => Src::Const(i128::from(*value)),
            _ => match &v.vals {
                Vals::I64(x) => Src::I64(x, matches!(v.kind, Kind::Numeric { .. })),
                Vals::I128(x) => Src::I128(x),
                Vals::I256(_) => unreachable!("narrow evaluation never holds wide values"),
            },
        }
    }
}

trait Lane {
    fn lane(&self, i: usize) -> i128;
}

struct L64<'s>(&'s [i64], bool);
struct L128<'s>(&'s [i128]);
struct LConst(i128);

impl Lane for L64<'_> {
    #[inline(always)]
    fn lane(&self, i: usize) -> i128 {
        let x = self.0[i];
        if self.1 && x == numeric::NAN {
            NAN128
        } else {
            i128::from(x)
        }
    }
}

impl Lane for L128<'_> {
    #[inline(always)]
    fn lane(&self, i: usize) -> i128 {
        self.0[i]
    }
}

impl Lane for LConst {
    #[inline(always)]
    fn lane(&self, _: usize) -> i128 {
        self.0
    }
}

impl Src<'_> {
    /// A constant as a 64-bit value, `None` for NaN or one that does not fit.
    fn const64(c: i128) -> Option<i64> {
        i64::try_from(c).ok().filter(|&c| c != numeric::NAN)
    }
}

/// `x * fx op y * fy` (`x * y` for `Mul`) in 64 bits, for operands that are 64-bit
/// values or constants; `None` when an operand is a NaN or any result (or intermediate)
/// overflows or lands on `i64::MAX`, the NaN of a 64-bit numeric. One pass: the results
/// and the overflow flags together.
fn narrow64(op: Op, x: &Src<'_>, y: &Src<'_>, fx: i128, fy: i128, rows: usize) -> Option<Vec<i64>> {
    let (fx, fy) = (i64::try_from(fx).ok()?, i64::try_from(fy).ok()?);
    #[inline(always)]
    fn apply(op: Op, a: i64, fx: i64, b: i64, fy: i64) -> (i64, bool) {
        match op {
            Op::Mul => a.overflowing_mul(b),
            Op::Add | Op::Sub => {
                let (a, o1) = a.overflowing_mul(fx);
                let (b, o2) = b.overflowing_mul(fy);
                let (v, o3) = if op == Op::Add {
                    a.overflowing_add(b)
                } else {
                    a.overflowing_sub(b)
                };
                (v, o1 | o2 | o3)
            }
        }
    }
    let mut bad = false;
    let nan = numeric::NAN;
    // Collected from exact-size iterators: no capacity test per row.
    let out: Vec<i64> = match (x, y) {
        (Src::I64(a, _), Src::I64(b, _)) => a
            .iter()
            .zip(b.iter())
            .map(|(&a, &b)| {
                let (v, o) = apply(op, a, fx, b, fy);
                bad |= o | (a == nan) | (b == nan) | (v == nan);
                v
            })
            .collect(),
        (Src::Const(c), Src::I64(b, _)) => {
            let a = Src::const64(*c)?;
            b.iter()
                .map(|&b| {
                    let (v, o) = apply(op, a, fx, b, fy);
                    bad |= o | (b == nan) | (v == nan);
                    v
                })
                .collect()
        }
        (Src::I64(a, _), Src::Const(c)) => {
            let b = Src::const64(*c)?;
            a.iter()
                .map(|&a| {
                    let (v, o) = apply(op, a, fx, b, fy);
                    bad |= o | (a == nan) | (v == nan);
                    v
                })
                .collect()
        }
        _ => return None,
    };
    debug_assert_eq!(out.len(), rows);
    (!bad).then_some(out)
}

/// `x * fx op y * fy`, and whether anything overflowed.
#[inline(always)]
fn scaled(
    x: i128,
    fx: i128,
    y: i128,
    fy: i128,
    op: fn(i128, i128) -> (i128, bool),
) -> (i128, bool) {
    let (a, o1) = x.overflowing_mul(fx);
    let (b, o2) = y.overflowing_mul(fy);
    let (v, o3) = op(a, b);
    (v, o1 | o2 | o3)
}

/// `f` over every row; NaN in, NaN out; `None` when a result overflowed 128 bits (or
/// landed on the NaN sentinel).
#[inline(always)]
fn run<A: Lane, B: Lane>(
    a: A,
    b: B,
    rows: usize,
    f: impl Fn(i128, i128) -> (i128, bool),
) -> Option<Vec<i128>> {
    let mut out = Vec::with_capacity(rows);
    let mut bad = false;
    for i in 0..rows {
        let (x, y) = (a.lane(i), b.lane(i));
        if x == NAN128 || y == NAN128 {
            out.push(NAN128);
            continue;
        }
        let (v, o) = f(x, y);
        bad |= o | (v == NAN128);
        out.push(v);
    }
    (!bad).then_some(out)
}

fn dispatch(
    a: &Src<'_>,
    b: &Src<'_>,
    rows: usize,
    f: impl Fn(i128, i128) -> (i128, bool),
) -> Option<Vec<i128>> {
    match (a, b) {
        (Src::I64(x, n), Src::I64(y, m)) => run(L64(x, *n), L64(y, *m), rows, f),
        (Src::I64(x, n), Src::I128(y)) => run(L64(x, *n), L128(y), rows, f),
        (Src::I64(x, n), Src::Const(c)) => run(L64(x, *n), LConst(*c), rows, f),
        (Src::I128(x), Src::I64(y, m)) => run(L128(x), L64(y, *m), rows, f),
        (Src::I128(x), Src::I128(y)) => run(L128(x), L128(y), rows, f),
        (Src::I128(x), Src::Const(c)) => run(L128(x), LConst(*c), rows, f),
        (Src::Const(c), Src::I64(y, m)) => run(LConst(*c), L64(y, *m), rows, f),
        (Src::Const(c), Src::I128(y)) => run(LConst(*c), L128(y), rows, f),
        (Src::Const(c), Src::Const(d)) => run(LConst(*c), LConst(*d), rows, f),
    }
}
