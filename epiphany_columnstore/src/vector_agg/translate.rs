//! Postgres's aggregates, their arguments and GROUP BY keys as the core's vectorized
//! aggregation (`epiphany_core::columnar::agg`): what cannot be translated exactly
//! returns `None`, and the plan is left as Postgres made it.
//!
//! Used twice with the same rules: at planning, on the plan's expressions with
//! `OUTER_VAR` references resolved into the scan's target list, to decide; and when the
//! node begins, on the expressions the plan stored, to build the aggregator.

#![allow(unsafe_code)] // glue: calls into Postgres, each block with its SAFETY line

use epiphany_core::columnar::agg::{AggFn, AggSpec, Expr, Kind, Op};
use epiphany_core::columnar::{numeric, ColumnType};
use pgrx::pg_sys;
use pgrx::PgList;

use crate::convert::table::TableInfo;
use crate::custom_scan::quals::{collation_orders_bytes, varlena_bytes};

/// The relation the expressions read.
pub(super) struct Scan<'a> {
    pub info: &'a TableInfo,
    pub scanrelid: pg_sys::Index,
}

/// The most decimal digits of a numeric mantissa the aggregates evaluate (256 bits),
/// and of one min/max compares (128 bits).
const WIDE_DIGITS: u32 = 76;
const NARROW_DIGITS: u32 = 38;

fn oid(o: pg_sys::Oid) -> u32 {
    o.to_u32()
}

/// A plain column of the scanned table: its number and type.
unsafe fn column(node: *mut pg_sys::Node, scan: &Scan<'_>) -> Option<(usize, ColumnType, i32)> {
    // SAFETY: a valid expression node.
    unsafe {
        if (*node).type_ != pg_sys::NodeTag::T_Var {
            return None;
        }
        let var = node as *mut pg_sys::Var;
        if (*var).varno as pg_sys::Index != scan.scanrelid
            || (*var).varattno < 1
            || (*var).varlevelsup != 0
        {
            return None;
        }
        let c = (*var).varattno as usize - 1;
        Some((c, scan.info.columns.get(c)?.ty, (*var).vartypmod))
    }
}

/// A GROUP BY key: a column whose type's equality is byte equality of what we store.
pub(super) unsafe fn key(node: *mut pg_sys::Node, scan: &Scan<'_>) -> Option<(usize, ColumnType)> {
    // SAFETY: a valid expression node.
    unsafe {
        let (c, ty, typmod) = column(node, scan)?;
        let typid = scan.info.types[c];
        let ok = match ty {
            ColumnType::Bool
            | ColumnType::Int16
            | ColumnType::Int32
            | ColumnType::Int64
            | ColumnType::Date
            | ColumnType::Time
            | ColumnType::Timestamp
            | ColumnType::TimestampTz
            | ColumnType::Numeric { .. }
            | ColumnType::Uuid => true,
            // Text and varchar compare bytes under deterministic collations; char(n)
            // also ignores trailing spaces, which a fixed length pads alike.
            ColumnType::Text => {
                let collid = pg_sys::exprCollation(node);
                let bytes_equal = collation_orders_bytes(ty, collid, false);
                bytes_equal && (typid != pg_sys::BPCHAROID || typmod >= 0)
            }
            _ => false,
        };
        ok.then_some((c, ty))
    }
}

/// An aggregate argument.
pub(super) unsafe fn expr(node: *mut pg_sys::Node, scan: &Scan<'_>) -> Option<Expr> {
    // SAFETY: a valid expression node; catalog lookups on the main thread.
    unsafe {
        match (*node).type_ {
            pg_sys::NodeTag::T_Var => {
                let (c, ty, typmod) = column(node, scan)?;
                let digits = match ty {
                    ColumnType::Int16 => 5,
                    ColumnType::Int32 | ColumnType::Date => 10,
                    ColumnType::Int64 | ColumnType::Timestamp | ColumnType::TimestampTz => 19,
                    ColumnType::Numeric { .. } => {
                        let p = ((typmod - pg_sys::VARHDRSZ as i32) >> 16) & 0xffff;
                        p.clamp(1, 18) as u8
                    }
                    _ => return None,
                };
                Some(Expr::Column {
                    column: c,
                    ty,
                    digits,
                })
            }
            pg_sys::NodeTag::T_Const => {
                let k = node as *mut pg_sys::Const;
                if (*k).constisnull {
                    return None;
                }
                let v = (*k).constvalue;
                match (*k).consttype {
                    t if t == pg_sys::INT2OID => Some(Expr::Int {
                        value: v.value() as i16 as i64,
                        kind: Kind::Int16,
                    }),
                    t if t == pg_sys::INT4OID => Some(Expr::Int {
                        value: v.value() as i32 as i64,
                        kind: Kind::Int32,
                    }),
                    t if t == pg_sys::INT8OID => Some(Expr::Int {
                        value: v.value() as i64,
                        kind: Kind::Int64,
                    }),
                    t if t == pg_sys::NUMERICOID => match numeric::decode(varlena_bytes(v)).ok()? {
                        numeric::Decoded::NaN => Some(Expr::Numeric {
                            mantissa: 0,
                            scale: 0,
                            nan: true,
                        }),
                        numeric::Decoded::Number { mantissa, dscale } => Some(Expr::Numeric {
                            mantissa,
                            scale: dscale,
                            nan: false,
                        }),
                        numeric::Decoded::Infinity { .. } => None,
                    },
                    _ => None,
                }
            }
            pg_sys::NodeTag::T_OpExpr => {
                let op = node as *mut pg_sys::OpExpr;
                let args: Vec<*mut pg_sys::Node> = PgList::from_pg((*op).args).iter_ptr().collect();
                call(oid((*op).opfuncid), &args, scan)
            }
            pg_sys::NodeTag::T_FuncExpr => {
                let f = node as *mut pg_sys::FuncExpr;
                if (*f).funcretset || (*f).funcvariadic {
                    return None;
                }
                let args: Vec<*mut pg_sys::Node> = PgList::from_pg((*f).args).iter_ptr().collect();
                call(oid((*f).funcid), &args, scan)
            }
            _ => None,
        }
    }
}

/// A call of function `f` on `args`: the arithmetic and casts the core evaluates.
unsafe fn call(f: u32, args: &[*mut pg_sys::Node], scan: &Scan<'_>) -> Option<Expr> {
    use pg_sys::{
        F_INT24MI, F_INT24MUL, F_INT24PL, F_INT2MI, F_INT2MUL, F_INT2PL, F_INT2UM, F_INT42MI,
        F_INT42MUL, F_INT42PL, F_INT48MI, F_INT48MUL, F_INT48PL, F_INT4MI, F_INT4MUL, F_INT4PL,
        F_INT4UM, F_INT4_INT2, F_INT84MI, F_INT84MUL, F_INT84PL, F_INT8MI, F_INT8MUL, F_INT8PL,
        F_INT8UM, F_INT8_INT2, F_INT8_INT4, F_NUMERIC_ADD, F_NUMERIC_INT2, F_NUMERIC_INT4,
        F_NUMERIC_INT8, F_NUMERIC_MUL, F_NUMERIC_SUB, F_NUMERIC_UMINUS,
    };
    let arith = |op: Op, widen_left: Option<Kind>, widen_right: Option<Kind>| -> Option<Expr> {
        let [a, b] = args else { return None };
        // SAFETY: valid argument nodes.
        let (mut l, mut r) = unsafe { (expr(*a, scan)?, expr(*b, scan)?) };
        if let Some(to) = widen_left {
            l = Expr::Widen {
                arg: Box::new(l),
                to,
            };
        }
        if let Some(to) = widen_right {
            r = Expr::Widen {
                arg: Box::new(r),
                to,
            };
        }
        let e = Expr::Arith {
            op,
            left: Box::new(l),
            right: Box::new(r),
        };
        e.kind().ok()?;
        Some(e)
    };
    let unary = |wrap: fn(Box<Expr>) -> Expr| -> Option<Expr> {
        let [a] = args else { return None };
        // SAFETY: a valid argument node.
        let e = wrap(Box::new(unsafe { expr(*a, scan)? }));
        e.kind().ok()?;
        Some(e)
    };
    let (i4, i8) = (Some(Kind::Int32), Some(Kind::Int64));
    match f {
        F_INT2PL | F_INT4PL | F_INT8PL | F_NUMERIC_ADD => arith(Op::Add, None, None),
        F_INT2MI | F_INT4MI | F_INT8MI | F_NUMERIC_SUB => arith(Op::Sub, None, None),
        F_INT2MUL | F_INT4MUL | F_INT8MUL | F_NUMERIC_MUL => arith(Op::Mul, None, None),
        F_INT24PL => arith(Op::Add, i4, None),
        F_INT42PL => arith(Op::Add, None, i4),
        F_INT48PL => arith(Op::Add, i8, None),
        F_INT84PL => arith(Op::Add, None, i8),
        F_INT24MI => arith(Op::Sub, i4, None),
        F_INT42MI => arith(Op::Sub, None, i4),
        F_INT48MI => arith(Op::Sub, i8, None),
        F_INT84MI => arith(Op::Sub, None, i8),
        F_INT24MUL => arith(Op::Mul, i4, None),
        F_INT42MUL => arith(Op::Mul, None, i4),
        F_INT48MUL => arith(Op::Mul, i8, None),
        F_INT84MUL => arith(Op::Mul, None, i8),
        F_INT2UM | F_INT4UM | F_INT8UM | F_NUMERIC_UMINUS => unary(Expr::Neg),
        F_NUMERIC_INT2 | F_NUMERIC_INT4 | F_NUMERIC_INT8 => unary(Expr::ToNumeric),
        F_INT4_INT2 => unary(|a| Expr::Widen {
            arg: a,
            to: Kind::Int32,
        }),
        F_INT8_INT2 | F_INT8_INT4 => unary(|a| Expr::Widen {
            arg: a,
            to: Kind::Int64,
        }),
        _ => None,
    }
    .filter(|e| e.digits() <= WIDE_DIGITS)
}

/// An aggregate call, as Postgres planned it (simple or partial), or `None`.
pub(super) unsafe fn aggref(a: *mut pg_sys::Aggref, scan: &Scan<'_>) -> Option<AggSpec> {
    use pg_sys::{
        exprType, Node, TargetEntry, F_AVG_INT2, F_AVG_INT4, F_AVG_INT8, F_AVG_NUMERIC, F_COUNT_,
        F_COUNT_ANY, F_MAX_DATE, F_MAX_INT2, F_MAX_INT4, F_MAX_INT8, F_MAX_NUMERIC,
        F_MAX_TIMESTAMP, F_MAX_TIMESTAMPTZ, F_MIN_DATE, F_MIN_INT2, F_MIN_INT4, F_MIN_INT8,
        F_MIN_NUMERIC, F_MIN_TIMESTAMP, F_MIN_TIMESTAMPTZ, F_SUM_INT2, F_SUM_INT4, F_SUM_INT8,
        F_SUM_NUMERIC, TIMESTAMPOID, TIMESTAMPTZOID,
    };
    // SAFETY: a valid Aggref.
    unsafe {
        if !(*a).aggdistinct.is_null()
            || !(*a).aggorder.is_null()
            || !(*a).aggdirectargs.is_null()
            || !(*a).aggfilter.is_null()
            || (*a).agglevelsup != 0
            || (*a).aggvariadic
            || (*a).aggkind as u8 != b'n'
        {
            return None;
        }
        let args: Vec<*mut TargetEntry> = PgList::from_pg((*a).args).iter_ptr().collect();
        if (*a).aggstar {
            return (args.is_empty() && oid((*a).aggfnoid) == F_COUNT_).then_some(AggSpec {
                func: AggFn::CountStar,
                arg: None,
            });
        }
        let [tle] = args[..] else { return None };
        if (*tle).resjunk {
            return None;
        }
        let node = (*tle).expr as *mut Node;
        let f = oid((*a).aggfnoid);
        if f == F_COUNT_ANY {
            // count(x) counts the non-NULL values of any column we can read.
            let arg = expr(node, scan).or_else(|| {
                column(node, scan).map(|(column, ty, _)| Expr::Column {
                    column,
                    ty,
                    digits: 0,
                })
            })?;
            return Some(AggSpec {
                func: AggFn::Count,
                arg: Some(arg),
            });
        }
        let arg = expr(node, scan)?;
        let kind = arg.kind().ok()?;
        let func = match (f, kind) {
            (F_SUM_INT2, Kind::Int16) | (F_SUM_INT4, Kind::Int32) => AggFn::SumInt,
            (F_AVG_INT2, Kind::Int16) | (F_AVG_INT4, Kind::Int32) => AggFn::AvgInt,
            (F_SUM_INT8 | F_AVG_INT8, Kind::Int64) => AggFn::SumInt8,
            (F_SUM_NUMERIC | F_AVG_NUMERIC, Kind::Numeric { .. }) => AggFn::SumNumeric,
            (F_MIN_INT2, Kind::Int16)
            | (F_MIN_INT4, Kind::Int32)
            | (F_MIN_INT8, Kind::Int64)
            | (F_MIN_DATE, Kind::Date)
            | (F_MIN_NUMERIC, Kind::Numeric { .. }) => AggFn::Min,
            (F_MAX_INT2, Kind::Int16)
            | (F_MAX_INT4, Kind::Int32)
            | (F_MAX_INT8, Kind::Int64)
            | (F_MAX_DATE, Kind::Date)
            | (F_MAX_NUMERIC, Kind::Numeric { .. }) => AggFn::Max,
            (
                F_MIN_TIMESTAMP | F_MIN_TIMESTAMPTZ | F_MAX_TIMESTAMP | F_MAX_TIMESTAMPTZ,
                Kind::Timestamp,
            ) => {
                // The two timestamp types share a kind: the column's type decides.
                let want = if matches!(f, F_MIN_TIMESTAMP | F_MAX_TIMESTAMP) {
                    TIMESTAMPOID
                } else {
                    TIMESTAMPTZOID
                };
                if exprType(node) != want {
                    return None;
                }
                if matches!(f, F_MIN_TIMESTAMP | F_MIN_TIMESTAMPTZ) {
                    AggFn::Min
                } else {
                    AggFn::Max
                }
            }
            _ => return None,
        };
        if matches!(func, AggFn::Min | AggFn::Max) && arg.digits() > NARROW_DIGITS {
            return None;
        }
        Some(AggSpec {
            func,
            arg: Some(arg),
        })
    }
}
