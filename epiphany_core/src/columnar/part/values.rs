//! Values read out of decoded Arrow arrays in Postgres's units: one cell as the core's
//! [`Value`] (for fetches and tests), one statistics entry as a pruning [`Scalar`].

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Date32Type, Float32Type, Float64Type, Int16Type, Int32Type, Int64Type, Time64MicrosecondType,
};
use arrow_array::{Array, ArrayRef};
use arrow_schema::DataType;

use crate::columnar::prune::Scalar;
use crate::columnar::types::{date_from_arrow, ColumnType, Value};

/// The value at `row` of `array`, in Postgres's units.
pub fn value_at(array: &ArrayRef, ty: ColumnType, row: usize) -> Value<'_> {
    if array.is_null(row) {
        return Value::Null;
    }
    match ty {
        ColumnType::Bool => Value::Bool(array.as_boolean().value(row)),
        ColumnType::Int16 => Value::Int16(array.as_primitive::<Int16Type>().value(row)),
        ColumnType::Int32 => Value::Int32(array.as_primitive::<Int32Type>().value(row)),
        ColumnType::Int64 | ColumnType::Numeric { .. } => {
            Value::Int64(array.as_primitive::<Int64Type>().value(row))
        }
        ColumnType::Float32 => Value::Float32(array.as_primitive::<Float32Type>().value(row)),
        ColumnType::Float64 => Value::Float64(array.as_primitive::<Float64Type>().value(row)),
        ColumnType::Date => Value::Date(date_from_arrow(
            array.as_primitive::<Date32Type>().value(row),
        )),
        ColumnType::Time => Value::Time(array.as_primitive::<Time64MicrosecondType>().value(row)),
        ColumnType::Timestamp | ColumnType::TimestampTz => {
            Value::Timestamp(array.as_primitive::<Int64Type>().value(row))
        }
        ColumnType::Text => match array.data_type() {
            DataType::Binary => Value::Bytes(array.as_binary::<i32>().value(row)),
            _ => Value::Text(array.as_string::<i32>().value(row)),
        },
        ColumnType::Bytes | ColumnType::Opaque => Value::Bytes(array.as_binary::<i32>().value(row)),
        ColumnType::Uuid => Value::Uuid(
            array
                .as_fixed_size_binary()
                .value(row)
                .try_into()
                .expect("16 bytes"),
        ),
    }
}

/// A statistics value as a [`Scalar`] in Postgres's units (dates and times shifted back).
pub(super) fn scalar_at(array: &ArrayRef, i: usize) -> Option<Scalar> {
    if array.is_null(i) {
        return None;
    }
    let ty = array.data_type();
    use arrow_schema::DataType as D;
    Some(match ty {
        D::Boolean => Scalar::Int(array.as_boolean().value(i) as i64),
        D::Int16 => Scalar::Int(array.as_primitive::<Int16Type>().value(i) as i64),
        D::Int32 => Scalar::Int(array.as_primitive::<Int32Type>().value(i) as i64),
        D::Int64 => Scalar::Int(array.as_primitive::<Int64Type>().value(i)),
        D::Float32 => Scalar::Float(array.as_primitive::<Float32Type>().value(i) as f64),
        D::Float64 => Scalar::Float(array.as_primitive::<Float64Type>().value(i)),
        D::Date32 => {
            Scalar::Int(date_from_arrow(array.as_primitive::<Date32Type>().value(i)) as i64)
        }
        D::Time64(_) => Scalar::Int(array.as_primitive::<Time64MicrosecondType>().value(i)),
        D::Utf8 => Scalar::Bytes(array.as_string::<i32>().value(i).as_bytes().to_vec()),
        D::Binary => Scalar::Bytes(array.as_binary::<i32>().value(i).to_vec()),
        D::FixedSizeBinary(_) => Scalar::Bytes(array.as_fixed_size_binary().value(i).to_vec()),
        _ => return None,
    })
}
