//! A part: one immutable, sorted batch of rows, encoded as a Parquet file.
//!
//! Each granule (`granule_rows` rows) is one Parquet row group, so the row group
//! statistics are the granule's min/max and reading selected granules is reading selected
//! row groups. The bytes are self-contained: written into an extent, they can be exported
//! as a `.parquet` file as they are.
//!
//! Rows keep the numbers (TIDs) they were given at insert although sorting moves them:
//! a part owns the row numbers `first_row .. first_row + rows`, and two hidden columns
//! after the table's map between them — `_epiphany_row` holds, at each stored position,
//! the row's offset from `first_row`; `_epiphany_pos` holds, at index `i`, the position
//! of row `first_row + i` (so a fetch by TID reads one value of it, then one granule).
//! Both are delta-encoded: for unsorted or presorted input they are the identity and
//! cost almost nothing.

use std::sync::Arc;

use arrow_array::{RecordBatch, UInt32Array};
use arrow_ord::sort::{lexsort_to_indices, SortColumn};
use arrow_schema::{DataType, Field, Schema};
use bytes::Bytes;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression as PqCompression, Encoding, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;

use crate::columnar::options::{Compression, TableOptions};
use crate::columnar::prune::GranuleStats;
use crate::columnar::types::TableSchema;
use crate::error::{Error, Result};

/// `ORDER BY … ASC` as Postgres means it: nulls last.
const POSTGRES_ASC: arrow_schema::SortOptions = arrow_schema::SortOptions {
    descending: false,
    nulls_first: false,
};

/// Text bounds in granule statistics are cut to this many bytes (still valid bounds).
/// Rows per data page (at most; a page also ends at Parquet's byte limit).
pub const PAGE_ROWS: usize = 1024;
/// Largest dictionary page of a column chunk.
const DICTIONARY_BYTES: usize = 16 * 1024;
const STATS_TRUNCATE: usize = 64;

fn format_error(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Corrupted(format!("{what}: {e}"))
}

/// A part ready to be written: its bytes and what the catalog records about it.
#[derive(Debug)]
pub struct EncodedPart {
    pub bytes: Bytes,
    pub rows: u64,
    pub granules: Vec<GranuleStats>,
}

/// Hidden column: row offset (from the part's first row) at each stored position.
pub const ROW_COLUMN: &str = "_epiphany_row";
/// Hidden column: stored position of each row offset.
pub const POS_COLUMN: &str = "_epiphany_pos";

/// The Arrow schema of a part of a table: its columns, then the two hidden ones.
pub fn part_arrow_schema(schema: &TableSchema) -> Arc<Schema> {
    part_schema_of(&schema.arrow_schema())
}

/// A part's schema for table columns of `table` (with the types its rows really have:
/// see [`crate::columnar::types::text_is_bytes`]), then the hidden columns.
fn part_schema_of(table: &Schema) -> Arc<Schema> {
    let mut fields: Vec<Field> = table.fields().iter().map(|f| f.as_ref().clone()).collect();
    fields.push(Field::new(ROW_COLUMN, DataType::UInt32, false));
    fields.push(Field::new(POS_COLUMN, DataType::UInt32, false));
    Arc::new(Schema::new(fields))
}

/// Sorts `batch` by `sort_key` (column positions) and encodes it as a part. Row `i` of
/// `batch` is the part's row offset `i`.
pub fn encode_part(
    schema: &TableSchema,
    batch: &RecordBatch,
    sort_key: &[usize],
    options: &TableOptions,
) -> Result<EncodedPart> {
    let n = batch.num_rows();
    if n > u32::MAX as usize {
        return Err(Error::NotSupported(format!("a part of {n} rows")));
    }
    let (sorted, order) = if sort_key.is_empty() || n < 2 {
        (batch.clone(), UInt32Array::from_iter_values(0..n as u32))
    } else {
        let columns: Vec<SortColumn> = sort_key
            .iter()
            .map(|&i| SortColumn {
                values: batch.column(i).clone(),
                options: Some(POSTGRES_ASC),
            })
            .collect();
        let indices: UInt32Array =
            lexsort_to_indices(&columns, None).map_err(|e| format_error("sorting a part", e))?;
        let sorted = arrow_select::take::take_record_batch(batch, &indices)
            .map_err(|e| format_error("sorting a part", e))?;
        (sorted, indices)
    };
    let mut positions = vec![0u32; n];
    for (pos, &row) in order.values().iter().enumerate() {
        positions[row as usize] = pos as u32;
    }
    let mut columns = sorted.columns().to_vec();
    columns.push(Arc::new(order));
    columns.push(Arc::new(UInt32Array::from(positions)));
    let table = crate::columnar::types::schema_of(schema, sorted.columns());
    let sorted = RecordBatch::try_new(part_schema_of(&table), columns)
        .map_err(|e| format_error("assembling a part", e))?;
    let compression = match options.compression {
        Compression::None => PqCompression::UNCOMPRESSED,
        Compression::Lz4 => PqCompression::LZ4_RAW,
        Compression::Zstd { level } => PqCompression::ZSTD(
            ZstdLevel::try_new(level).map_err(|e| format_error("zstd level", e))?,
        ),
    };
    let props = WriterProperties::builder()
        .set_compression(compression)
        .set_max_row_group_row_count(Some(options.granule_rows as usize))
        // Pages of PAGE_ROWS rows: a fetch by TID decodes one page per column, not the
        // whole granule.
        .set_write_batch_size(PAGE_ROWS)
        .set_data_page_row_count_limit(PAGE_ROWS)
        // A column with many distinct values gives up its dictionary early (zstd
        // compresses the plain values as well): a fetch then decompresses a small
        // dictionary page, not one as large as the granule.
        .set_dictionary_page_size_limit(DICTIONARY_BYTES)
        .set_statistics_enabled(EnabledStatistics::Chunk)
        .set_statistics_truncate_length(Some(STATS_TRUNCATE))
        .set_created_by(format!("EpiphanyDB {}", crate::SUITE_VERSION));
    let props = [ROW_COLUMN, POS_COLUMN]
        .into_iter()
        .fold(props, |props, name| {
            let path = ColumnPath::from(name);
            props
                .set_column_dictionary_enabled(path.clone(), false)
                .set_column_encoding(path.clone(), Encoding::DELTA_BINARY_PACKED)
                .set_column_statistics_enabled(path, EnabledStatistics::None)
        })
        .build();
    let mut writer = ArrowWriter::try_new(Vec::new(), sorted.schema(), Some(props))
        .map_err(|e| format_error("starting a part", e))?;
    writer
        .write(&sorted)
        .map_err(|e| format_error("writing a part", e))?;
    let bytes = writer
        .into_inner()
        .map_err(|e| format_error("finishing a part", e))?;
    let bytes = Bytes::from(bytes);
    let granules = PartReader::open(schema, bytes.clone())?.granule_stats()?;
    Ok(EncodedPart {
        bytes,
        rows: sorted.num_rows() as u64,
        granules,
    })
}

mod reader;
#[cfg(test)]
mod tests;
mod values;

pub use reader::{plain_array, PartBatches, PartReader};
pub use values::value_at;
