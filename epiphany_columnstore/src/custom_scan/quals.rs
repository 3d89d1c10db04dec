//! The quals a columnar scan can prune by: comparisons, `IN` lists and null tests of a
//! plain column against constants, turned into the core's pruning predicates. Constants
//! of another type become bounds in the column's units (`epiphany_core::columnar::bounds`);
//! what cannot serve is left to Postgres, which evaluates every qual anyway.

#![allow(unsafe_code)] // glue: calls into Postgres, each block with its SAFETY line

use epiphany_core::columnar::prune::{Op, Predicate, Scalar};
use epiphany_core::columnar::qual::{Cmp, Qual, Test};
use epiphany_core::columnar::{bounds, numeric, ColumnType};
use pgrx::pg_sys;
use pgrx::PgList;

/// The quals that statistics can answer, as pruning predicates on column positions.
pub(super) unsafe fn predicates(
    quals: *mut pg_sys::List,
    scanrelid: pg_sys::Index,
    info: &crate::convert::table::TableInfo,
) -> Vec<Predicate> {
    let mut out = Vec::new();
    // SAFETY: a valid list of expression nodes.
    unsafe {
        for node in PgList::<pg_sys::Node>::from_pg(quals).iter_ptr() {
            if let Some(p) = predicate(node, scanrelid, info, false) {
                out.push(p);
            }
        }
    }
    out
}

/// The table column (0-based) a node reads, looking through binary-compatible casts.
unsafe fn column_of(node: *mut pg_sys::Node, scanrelid: pg_sys::Index) -> Option<usize> {
    // SAFETY: a valid expression node.
    unsafe {
        let mut node = node;
        while (*node).type_ == pg_sys::NodeTag::T_RelabelType {
            node = (*(node as *mut pg_sys::RelabelType)).arg as *mut pg_sys::Node;
        }
        if (*node).type_ != pg_sys::NodeTag::T_Var {
            return None;
        }
        let var = node as *mut pg_sys::Var;
        if (*var).varno as pg_sys::Index != scanrelid
            || (*var).varattno < 1
            || (*var).varlevelsup != 0
        {
            return None;
        }
        Some((*var).varattno as usize - 1)
    }
}

/// One qual as a pruning predicate. With `exact`, only one that means exactly what the
/// qual does (an `IN` list with a NULL does not: its "no" is "unknown").
unsafe fn predicate(
    node: *mut pg_sys::Node,
    scanrelid: pg_sys::Index,
    info: &crate::convert::table::TableInfo,
    exact: bool,
) -> Option<Predicate> {
    // SAFETY: a valid expression node of a plan's qual list.
    unsafe {
        match (*node).type_ {
            pg_sys::NodeTag::T_OpExpr => {
                let op = node as *mut pg_sys::OpExpr;
                let (column, constant, flipped) = column_and_const(op, scanrelid)?;
                let ty = info.columns.get(column)?.ty;
                if !ty.prunable() || !collation_orders_bytes(ty, (*op).inputcollid, false) {
                    return None;
                }
                let mut op_kind = strategy((*op).opno, info.types[column])?;
                if flipped {
                    op_kind = bounds::flip(op_kind);
                }
                if op_kind != Op::Eq && !collation_orders_bytes(ty, (*op).inputcollid, true) {
                    return None;
                }
                let (op_kind, value) =
                    scalar(constant, ty, info.columns[column].char_length, op_kind)?;
                Some(Predicate::Compare {
                    column,
                    op: op_kind,
                    value,
                })
            }
            pg_sys::NodeTag::T_ScalarArrayOpExpr => {
                let saop = node as *mut pg_sys::ScalarArrayOpExpr;
                if !(*saop).useOr {
                    return None;
                }
                let args = PgList::<pg_sys::Node>::from_pg((*saop).args);
                let column = column_of(args.get_ptr(0)?, scanrelid)?;
                let array = args.get_ptr(1)?;
                if (*array).type_ != pg_sys::NodeTag::T_Const
                    || (*(array as *mut pg_sys::Const)).constisnull
                {
                    return None;
                }
                let ty = info.columns.get(column)?.ty;
                if !ty.prunable()
                    || !collation_orders_bytes(ty, (*saop).inputcollid, false)
                    || strategy((*saop).opno, info.types[column])? != Op::Eq
                {
                    return None;
                }
                let arr = pg_sys::pg_detoast_datum(
                    (*(array as *mut pg_sys::Const)).constvalue.cast_mut_ptr(),
                ) as *mut pg_sys::ArrayType;
                let elem = (*arr).elemtype;
                let mut typlen = 0i16;
                let mut byval = false;
                let mut align = 0 as std::ffi::c_char;
                pg_sys::get_typlenbyvalalign(elem, &mut typlen, &mut byval, &mut align);
                let mut values: *mut pg_sys::Datum = std::ptr::null_mut();
                let mut nulls: *mut bool = std::ptr::null_mut();
                let mut n = 0i32;
                pg_sys::deconstruct_array(
                    arr,
                    elem,
                    typlen as i32,
                    byval,
                    align,
                    &mut values,
                    &mut nulls,
                    &mut n,
                );
                let mut scalars = Vec::with_capacity(n as usize);
                for i in 0..n as usize {
                    if *nulls.add(i) {
                        if exact {
                            return None;
                        }
                        continue; // NULL never equals anything
                    }
                    let mut c = pg_sys::Const {
                        xpr: pg_sys::Expr {
                            type_: pg_sys::NodeTag::T_Const,
                        },
                        consttype: elem,
                        consttypmod: -1,
                        constcollid: pg_sys::InvalidOid,
                        constlen: typlen as i32,
                        constvalue: *values.add(i),
                        constisnull: false,
                        constbyval: byval,
                        location: -1,
                    };
                    match scalar(&mut c, ty, info.columns[column].char_length, Op::Eq) {
                        Some((Op::Eq, s)) => scalars.push(s),
                        _ => return None,
                    }
                }
                Some(Predicate::In {
                    column,
                    values: scalars,
                })
            }
            pg_sys::NodeTag::T_NullTest => {
                let test = node as *mut pg_sys::NullTest;
                if (*test).argisrow {
                    return None;
                }
                let column = column_of((*test).arg as *mut pg_sys::Node, scanrelid)?;
                Some(if (*test).nulltesttype == pg_sys::NullTestType::IS_NULL {
                    Predicate::IsNull { column }
                } else {
                    Predicate::IsNotNull { column }
                })
            }
            _ => None,
        }
    }
}

/// Whether comparing under collation `collid` agrees with comparing bytes: always for
/// non-text columns; for text, equality needs a deterministic collation and ordering
/// needs "C" / "POSIX".
pub(crate) fn collation_orders_bytes(ty: ColumnType, collid: pg_sys::Oid, ordering: bool) -> bool {
    if ty != ColumnType::Text {
        return true;
    }
    const C_COLLATION: u32 = 950;
    const POSIX_COLLATION: u32 = 951;
    let c = collid.to_u32() == C_COLLATION || collid.to_u32() == POSIX_COLLATION;
    if ordering {
        return c;
    }
    // SAFETY: a catalog lookup of a valid collation.
    c || (collid != pg_sys::InvalidOid && unsafe { pg_sys::get_collation_isdeterministic(collid) })
}

/// The comparison operator `opno` as a btree strategy of the column type's default
/// operator family (which also holds the cross-type operators, e.g. date < timestamp).
fn strategy(opno: pg_sys::Oid, column_type: pg_sys::Oid) -> Option<Op> {
    // SAFETY: catalog lookups on the main thread.
    unsafe {
        let opclass = pg_sys::GetDefaultOpClass(column_type, pg_sys::BTREE_AM_OID);
        if opclass == pg_sys::InvalidOid {
            return None;
        }
        let family = pg_sys::get_opclass_family(opclass);
        match pg_sys::get_op_opfamily_strategy(opno, family) {
            1 => Some(Op::Lt),
            2 => Some(Op::Le),
            3 => Some(Op::Eq),
            4 => Some(Op::Ge),
            5 => Some(Op::Gt),
            _ => None,
        }
    }
}

/// A constant as a bound in the column's units, with the operator adjusted when the
/// conversion is not exact (a timestamp compared with a date column); `None` when the
/// constant cannot serve.
unsafe fn scalar(
    c: *mut pg_sys::Const,
    ty: ColumnType,
    char_length: Option<u32>,
    op: Op,
) -> Option<(Op, Scalar)> {
    // SAFETY: a valid Const node.
    unsafe {
        if (*c).constisnull {
            return None;
        }
        let word = (*c).constvalue.value();
        let t = (*c).consttype;
        use pg_sys::BuiltinOid as B;
        let builtin = B::from_u32(t.to_u32()).ok();
        let int = |v: i64| Some((op, Scalar::Int(v)));
        match (ty, builtin?) {
            (ColumnType::Bool, B::BOOLOID) => int(i64::from(word != 0)),
            (ColumnType::Int16 | ColumnType::Int32 | ColumnType::Int64, B::INT2OID) => {
                int(word as i16 as i64)
            }
            (ColumnType::Int16 | ColumnType::Int32 | ColumnType::Int64, B::INT4OID) => {
                int(word as i32 as i64)
            }
            (ColumnType::Int16 | ColumnType::Int32 | ColumnType::Int64, B::INT8OID) => {
                int(word as i64)
            }
            (ColumnType::Float32 | ColumnType::Float64, B::FLOAT4OID) => {
                Some((op, Scalar::Float(f64::from(f32::from_bits(word as u32)))))
            }
            (ColumnType::Float32 | ColumnType::Float64, B::FLOAT8OID) => {
                Some((op, Scalar::Float(f64::from_bits(word as u64))))
            }
            (ColumnType::Date, B::DATEOID) => int(word as i32 as i64),
            (ColumnType::Date, B::TIMESTAMPOID) => {
                bounds::date_bound(word as i64, op).map(|(op, day)| (op, Scalar::Int(day)))
            }
            (ColumnType::Timestamp, B::TIMESTAMPOID)
            | (ColumnType::TimestampTz, B::TIMESTAMPTZOID) => int(word as i64),
            (ColumnType::Timestamp, B::DATEOID) => {
                bounds::timestamp_bound(word as i32).and_then(int)
            }
            (ColumnType::Time, B::TIMEOID) => int(word as i64),
            (ColumnType::Numeric { scale }, B::NUMERICOID) => {
                let payload = varlena_bytes((*c).constvalue);
                let numeric::Decoded::Number { mantissa, dscale } =
                    numeric::decode(payload).ok()?
                else {
                    return None; // NaN and infinities: leave them to Postgres
                };
                bounds::numeric_bound(mantissa, dscale, scale, op)
                    .map(|(op, v)| (op, Scalar::Int(v)))
            }
            (ColumnType::Text, B::TEXTOID | B::VARCHAROID) | (ColumnType::Bytes, B::BYTEAOID) => {
                let bytes = varlena_bytes((*c).constvalue);
                Some((op, Scalar::Bytes(bytes.to_vec())))
            }
            // char(n) = constant: the stored values are padded to n characters, so the
            // constant is too (equality ignores trailing spaces). Only equality: padded
            // bytes do not order as Postgres orders char(n).
            (ColumnType::Text, B::BPCHAROID) if op == Op::Eq => {
                let n = char_length? as usize;
                let text = std::str::from_utf8(varlena_bytes((*c).constvalue)).ok()?;
                let stripped = text.trim_end_matches(' ');
                let chars = stripped.chars().count();
                if chars > n {
                    return None; // never equal: left to Postgres
                }
                let mut padded = stripped.to_string();
                padded.extend(std::iter::repeat_n(' ', n - chars));
                Some((op, Scalar::Bytes(padded.into_bytes())))
            }
            (ColumnType::Uuid, B::UUIDOID) => {
                let bytes = std::slice::from_raw_parts((*c).constvalue.cast_mut_ptr::<u8>(), 16);
                Some((op, Scalar::Bytes(bytes.to_vec())))
            }
            _ => None,
        }
    }
}

/// A qual as a vectorized qual (`epiphany_core::columnar::qual`), when its meaning there
/// is exactly Postgres's: tests of plain columns against constants (comparisons, `<>`,
/// `IN`, `IS [NOT] NULL`, `LIKE 'prefix%'`, a boolean column itself) under AND, OR and
/// NOT, on types compared exactly (no floats).
pub(super) unsafe fn vector_qual(
    node: *mut pg_sys::Node,
    scanrelid: pg_sys::Index,
    info: &crate::convert::table::TableInfo,
) -> Option<Qual> {
    // SAFETY: a valid expression node of a plan's qual list.
    let q = unsafe { translate(node, scanrelid, info)? };
    q.evaluable(&info.schema).then_some(q)
}

unsafe fn translate(
    node: *mut pg_sys::Node,
    scanrelid: pg_sys::Index,
    info: &crate::convert::table::TableInfo,
) -> Option<Qual> {
    // SAFETY: a valid expression node.
    unsafe {
        match (*node).type_ {
            pg_sys::NodeTag::T_BoolExpr => {
                let b = node as *mut pg_sys::BoolExpr;
                let args: Option<Vec<Qual>> = PgList::<pg_sys::Node>::from_pg((*b).args)
                    .iter_ptr()
                    .map(|a| translate(a, scanrelid, info))
                    .collect();
                let mut args = args?;
                match (*b).boolop {
                    pg_sys::BoolExprType::AND_EXPR => Some(Qual::And(args)),
                    pg_sys::BoolExprType::OR_EXPR => Some(Qual::Or(args)),
                    pg_sys::BoolExprType::NOT_EXPR if args.len() == 1 => {
                        Some(Qual::Not(Box::new(args.pop()?)))
                    }
                    _ => None,
                }
            }
            pg_sys::NodeTag::T_Var | pg_sys::NodeTag::T_RelabelType => {
                // A boolean column on its own.
                let column = column_of(node, scanrelid)?;
                (info.columns.get(column)?.ty == ColumnType::Bool).then_some(Qual::Test {
                    column,
                    test: Test::Compare(Cmp::Eq, Scalar::Int(1)),
                })
            }
            pg_sys::NodeTag::T_OpExpr => {
                if let Some(q) = like(node as *mut pg_sys::OpExpr, scanrelid, info) {
                    return Some(q);
                }
                if let Some(q) = not_equal(node as *mut pg_sys::OpExpr, scanrelid, info) {
                    return Some(q);
                }
                if let Some(q) = two_columns(node as *mut pg_sys::OpExpr, scanrelid, info) {
                    return Some(q);
                }
                leaf(predicate(node, scanrelid, info, true)?)
            }
            pg_sys::NodeTag::T_ScalarArrayOpExpr | pg_sys::NodeTag::T_NullTest => {
                leaf(predicate(node, scanrelid, info, true)?)
            }
            _ => None,
        }
    }
}

fn leaf(p: Predicate) -> Option<Qual> {
    let cmp = |op| match op {
        Op::Eq => Cmp::Eq,
        Op::Lt => Cmp::Lt,
        Op::Le => Cmp::Le,
        Op::Gt => Cmp::Gt,
        Op::Ge => Cmp::Ge,
    };
    Some(match p {
        Predicate::Compare { column, op, value } => Qual::Test {
            column,
            test: Test::Compare(cmp(op), value),
        },
        Predicate::In { column, values } => Qual::Test {
            column,
            test: Test::In(values),
        },
        Predicate::IsNull { column } => Qual::Test {
            column,
            test: Test::IsNull,
        },
        Predicate::IsNotNull { column } => Qual::Test {
            column,
            test: Test::IsNotNull,
        },
    })
}

/// `column op constant` (or flipped) of a two-argument operator.
unsafe fn column_and_const(
    op: *mut pg_sys::OpExpr,
    scanrelid: pg_sys::Index,
) -> Option<(usize, *mut pg_sys::Const, bool)> {
    // SAFETY: a valid OpExpr.
    unsafe {
        let args = PgList::<pg_sys::Node>::from_pg((*op).args);
        if args.len() != 2 {
            return None;
        }
        let (a, b) = (args.get_ptr(0)?, args.get_ptr(1)?);
        let (column, constant, flipped) = match (column_of(a, scanrelid), column_of(b, scanrelid)) {
            (Some(c), None) => (c, b, false),
            (None, Some(c)) => (c, a, true),
            _ => return None,
        };
        ((*constant).type_ == pg_sys::NodeTag::T_Const).then_some((
            column,
            constant as *mut pg_sys::Const,
            flipped,
        ))
    }
}

/// `column <> constant`: the negator of the type's equality.
unsafe fn not_equal(
    op: *mut pg_sys::OpExpr,
    scanrelid: pg_sys::Index,
    info: &crate::convert::table::TableInfo,
) -> Option<Qual> {
    // SAFETY: a valid OpExpr; catalog lookups on the main thread.
    unsafe {
        let (column, constant, _) = column_and_const(op, scanrelid)?;
        let negator = pg_sys::get_negator((*op).opno);
        if negator == pg_sys::InvalidOid || strategy(negator, info.types[column])? != Op::Eq {
            return None;
        }
        let ty = info.columns.get(column)?.ty;
        if !collation_orders_bytes(ty, (*op).inputcollid, false) {
            return None;
        }
        match scalar(constant, ty, info.columns[column].char_length, Op::Eq)? {
            (Op::Eq, value) => Some(Qual::Test {
                column,
                test: Test::Compare(Cmp::Ne, value),
            }),
            _ => None,
        }
    }
}

/// `column op column` of two columns of one type, `op` a comparison of the type's
/// default btree family or the negator of its equality (`Qual::evaluable` keeps it to
/// types whose stored values order as Postgres orders them).
unsafe fn two_columns(
    op: *mut pg_sys::OpExpr,
    scanrelid: pg_sys::Index,
    info: &crate::convert::table::TableInfo,
) -> Option<Qual> {
    // SAFETY: a valid OpExpr; catalog lookups on the main thread.
    unsafe {
        let args = PgList::<pg_sys::Node>::from_pg((*op).args);
        if args.len() != 2 {
            return None;
        }
        let left = column_of(args.get_ptr(0)?, scanrelid)?;
        let right = column_of(args.get_ptr(1)?, scanrelid)?;
        let ty = *info.types.get(left)?;
        if info.types.get(right) != Some(&ty) {
            return None;
        }
        let cmp = match strategy((*op).opno, ty) {
            Some(Op::Eq) => Cmp::Eq,
            Some(Op::Lt) => Cmp::Lt,
            Some(Op::Le) => Cmp::Le,
            Some(Op::Gt) => Cmp::Gt,
            Some(Op::Ge) => Cmp::Ge,
            None => {
                let negator = pg_sys::get_negator((*op).opno);
                if negator == pg_sys::InvalidOid || strategy(negator, ty)? != Op::Eq {
                    return None;
                }
                Cmp::Ne
            }
        };
        Some(Qual::Columns { left, cmp, right })
    }
}

/// `column LIKE pattern` (or `NOT LIKE`) on text or bytea, with the default escape, for
/// patterns of literals and `%` ([`Test::like`]).
unsafe fn like(
    op: *mut pg_sys::OpExpr,
    scanrelid: pg_sys::Index,
    info: &crate::convert::table::TableInfo,
) -> Option<Qual> {
    // SAFETY: a valid OpExpr; catalog lookups on the main thread.
    unsafe {
        let negated = match pg_sys::get_opcode((*op).opno).to_u32() {
            pg_sys::F_TEXTLIKE | pg_sys::F_BYTEALIKE => false,
            pg_sys::F_TEXTNLIKE | pg_sys::F_BYTEANLIKE => true,
            _ => return None,
        };
        let (column, constant, flipped) = column_and_const(op, scanrelid)?;
        let ty = info.columns.get(column)?.ty;
        if flipped
            || (*constant).constisnull
            || !matches!(ty, ColumnType::Text | ColumnType::Bytes)
            || !collation_orders_bytes(ty, (*op).inputcollid, false)
        {
            return None;
        }
        let test = Test::like(varlena_bytes((*constant).constvalue))?;
        let q = Qual::Test { column, test };
        Some(if negated { Qual::Not(Box::new(q)) } else { q })
    }
}

/// The bytes of a non-null varlena datum (detoasted if need be, in the current memory
/// context).
///
/// # Safety
/// `datum` is a valid non-null varlena, alive while the bytes are used.
pub(crate) unsafe fn varlena_bytes<'a>(datum: pg_sys::Datum) -> &'a [u8] {
    // SAFETY: per the contract.
    unsafe {
        let v = pg_sys::pg_detoast_datum_packed(datum.cast_mut_ptr());
        std::slice::from_raw_parts(
            pgrx::varlena::vardata_any(v) as *const u8,
            pgrx::varlena::varsize_any_exhdr(v),
        )
    }
}
