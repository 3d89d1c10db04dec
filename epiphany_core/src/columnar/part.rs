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

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Date32Type, Float32Type, Float64Type, Int16Type, Int32Type, Int64Type, Time64MicrosecondType,
};
use std::sync::{Arc, OnceLock};

use arrow_array::{Array, ArrayRef, RecordBatch, UInt32Array};
use arrow_ord::sort::{lexsort_to_indices, SortColumn};
use arrow_schema::{DataType, Field, Schema};
use bytes::Bytes;
use parquet::arrow::arrow_reader::statistics::StatisticsConverter;
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReader,
    ParquetRecordBatchReaderBuilder, RowSelection, RowSelector,
};
use parquet::arrow::{parquet_to_arrow_field_levels, ArrowWriter, FieldLevels, ProjectionMask};
use parquet::basic::{Compression as PqCompression, Encoding, ZstdLevel};
use parquet::file::metadata::{PageIndexPolicy, ParquetMetaData};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::file::reader::ChunkReader;
use parquet::schema::types::ColumnPath;

use crate::columnar::options::{Compression, TableOptions};
use crate::columnar::page_window;
use crate::columnar::prune::{GranuleStats, Scalar};
use crate::columnar::types::{date_from_arrow, ColumnType, TableSchema, Value};
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

/// Reads a part: from all of its bytes ([`Bytes`]) or from the ranges a scan fetched
/// ([`crate::columnar::fetch::SparsePart`]).
pub struct PartReader<R: ChunkReader + Clone + 'static = Bytes> {
    schema: TableSchema,
    source: R,
    metadata: ArrowReaderMetadata,
    /// First stored position of each granule, then the part's rows: fetches locate
    /// rows by binary search.
    starts: Vec<u64>,
    /// Each column's reading plan for Parquet's array reader, made on first use.
    levels: Vec<OnceLock<FieldLevels>>,
    /// The table's type of each column stored with another type and no value: such a
    /// column is not decoded but read as nulls of this type.
    nulls_for: Vec<Option<DataType>>,
    /// Dictionary pages [`PartReader::read_column`] decompressed.
    dictionaries: page_window::Dictionaries,
}

impl<R: ChunkReader + Clone + 'static> PartReader<R> {
    pub fn open(schema: &TableSchema, source: R) -> Result<Self> {
        Self::open_with(schema, source, ArrowReaderOptions::new())
    }

    /// As [`PartReader::open`], also loading the offset index (where each data page of
    /// each column chunk starts), so [`PartReader::read_rows`] decodes only the pages it
    /// needs. The source must hold the index bytes (see `SparsePart::fetch_offset_indexes`).
    pub fn open_with_offsets(schema: &TableSchema, source: R) -> Result<Self> {
        let options = ArrowReaderOptions::new().with_offset_index_policy(PageIndexPolicy::Optional);
        Self::open_with(schema, source, options)
    }

    fn open_with(schema: &TableSchema, source: R, options: ArrowReaderOptions) -> Result<Self> {
        let load = || ArrowReaderMetadata::load(&source, options);
        let metadata = std::panic::catch_unwind(std::panic::AssertUnwindSafe(load))
            .unwrap_or_else(|panic| {
                Err(parquet::errors::ParquetError::General(panic_message(
                    &panic,
                )))
            })
            .map_err(|e| format_error("reading a part's footer", e))?;
        let found = metadata.schema();
        let expected = part_arrow_schema(schema);
        // A text column may be stored as bytes (text that is not UTF-8).
        let compatible =
            |a: &DataType, b: &DataType| a == b || (*a == DataType::Binary && *b == DataType::Utf8);
        // A column with no value in the part may have been written with another type: a
        // virtual generated column (PostgreSQL 18) stores only nulls, and changing its
        // type rewrites nothing. It is read as nulls of the table's type.
        let all_null = |c: usize| {
            metadata.metadata().row_groups().iter().all(|rg| {
                rg.columns()
                    .get(c)
                    .and_then(|chunk| chunk.statistics())
                    .and_then(|s| s.null_count_opt())
                    == u64::try_from(rg.num_rows()).ok()
            })
        };
        let mut nulls_for = vec![None; expected.fields().len()];
        let matches = found.fields().len() == expected.fields().len()
            && found
                .fields()
                .iter()
                .zip(expected.fields())
                .enumerate()
                .all(|(c, (a, b))| {
                    compatible(a.data_type(), b.data_type()) || {
                        let substitute = all_null(c);
                        if substitute {
                            nulls_for[c] = Some(b.data_type().clone());
                        }
                        substitute
                    }
                });
        if !matches {
            return Err(Error::Corrupted(format!(
                "part columns {:?} do not match the table's {:?}",
                found
                    .fields()
                    .iter()
                    .map(|f| f.data_type())
                    .collect::<Vec<_>>(),
                expected
                    .fields()
                    .iter()
                    .map(|f| f.data_type())
                    .collect::<Vec<_>>()
            )));
        }
        check_chunk_ranges(metadata.metadata(), source.len())?;
        let mut starts = Vec::with_capacity(metadata.metadata().num_row_groups() + 1);
        let mut start = 0u64;
        starts.push(0);
        for rg in metadata.metadata().row_groups() {
            start += u64::try_from(rg.num_rows())
                .map_err(|_| Error::Corrupted("a granule of negative rows".into()))?;
            starts.push(start);
        }
        let columns = metadata.parquet_schema().num_columns();
        Ok(PartReader {
            schema: schema.clone(),
            source,
            metadata,
            starts,
            levels: (0..columns).map(|_| OnceLock::new()).collect(),
            nulls_for,
            dictionaries: Default::default(),
        })
    }

    /// Bytes of decompressed dictionary pages the reader keeps (besides its source's).
    pub fn dictionary_bytes(&self) -> u64 {
        self.dictionaries.bytes()
    }

    pub fn metadata(&self) -> &ParquetMetaData {
        self.metadata.metadata()
    }

    pub fn source(&self) -> &R {
        &self.source
    }

    pub fn rows(&self) -> u64 {
        self.metadata().file_metadata().num_rows() as u64
    }

    /// Position of the hidden column of row offsets at each stored position.
    pub fn row_column(&self) -> usize {
        self.schema.columns.len()
    }

    /// Position of the hidden column of stored positions of each row offset.
    pub fn pos_column(&self) -> usize {
        self.schema.columns.len() + 1
    }

    pub fn granules(&self) -> usize {
        self.metadata().num_row_groups()
    }

    /// Rows in granule `g`.
    pub fn granule_len(&self, g: usize) -> Option<u64> {
        Some(self.starts.get(g + 1)? - self.starts[g])
    }

    /// The granule holding stored position `pos`, and the position within it.
    pub fn locate(&self, pos: u64) -> Option<(usize, usize)> {
        if pos >= *self.starts.last()? {
            return None;
        }
        // The last granule starting at or before `pos` (empty granules are skipped).
        let g = self.starts.partition_point(|&s| s <= pos) - 1;
        Some((g, (pos - self.starts[g]) as usize))
    }

    /// First stored position of each granule.
    pub fn granule_starts(&self) -> Vec<u64> {
        self.starts[..self.starts.len() - 1].to_vec()
    }

    /// Min, max and null count of every column in every granule.
    pub fn granule_stats(&self) -> Result<Vec<GranuleStats>> {
        // The part's own types (a text column may be stored as bytes).
        let arrow_schema = self.metadata.schema().clone();
        let parquet_schema = self.metadata().file_metadata().schema_descr();
        let row_groups = self.metadata().row_groups();
        let mut per_column = Vec::new();
        for column in &self.schema.columns {
            let conv = StatisticsConverter::try_new(&column.name, &arrow_schema, parquet_schema)
                .map_err(|e| format_error("granule statistics", e))?;
            let mins = conv
                .row_group_mins(row_groups.iter())
                .map_err(|e| format_error("granule minimums", e))?;
            let maxes = conv
                .row_group_maxes(row_groups.iter())
                .map_err(|e| format_error("granule maximums", e))?;
            let nulls = conv
                .row_group_null_counts(row_groups.iter())
                .map_err(|e| format_error("granule null counts", e))?;
            per_column.push((column.ty, mins, maxes, nulls));
        }
        Ok((0..row_groups.len())
            .map(|g| GranuleStats {
                rows: row_groups[g].num_rows() as u64,
                columns: per_column
                    .iter()
                    .map(
                        |(ty, mins, maxes, nulls)| crate::columnar::prune::ColumnStats {
                            min: if ty.prunable() {
                                scalar_at(mins, g)
                            } else {
                                None
                            },
                            max: if ty.prunable() {
                                scalar_at(maxes, g)
                            } else {
                                None
                            },
                            nulls: if nulls.is_null(g) {
                                None
                            } else {
                                Some(nulls.value(g))
                            },
                        },
                    )
                    .collect(),
            })
            .collect())
    }

    /// Rows `first .. first + count` of granule `g`, columns `columns`, in one batch. With
    /// the offset index loaded only the data pages holding them are decompressed.
    pub fn read_rows(
        &self,
        columns: &[usize],
        g: usize,
        first: usize,
        count: usize,
    ) -> Result<RecordBatch> {
        let rows = self
            .granule_len(g)
            .ok_or_else(|| Error::Corrupted(format!("granule {g} does not exist")))?
            as usize;
        if count == 0 || first + count > rows {
            return Err(Error::Internal(format!(
                "rows {first}+{count} of a granule of {rows}"
            )));
        }
        let selectors: Vec<RowSelector> = [
            RowSelector::skip(first),
            RowSelector::select(count),
            RowSelector::skip(rows - first - count),
        ]
        .into_iter()
        .filter(|s| s.row_count > 0)
        .collect();
        let builder = ParquetRecordBatchReaderBuilder::new_with_metadata(
            self.source.clone(),
            self.metadata.clone(),
        );
        let splice = self.splice(columns);
        let decoded = splice.as_ref().map_or(columns, |s| &s.decoded);
        let mask = ProjectionMask::roots(builder.parquet_schema(), decoded.iter().copied());
        let mut reader = builder
            .with_projection(mask)
            .with_row_groups(vec![g])
            .with_row_selection(RowSelection::from(selectors))
            .with_batch_size(count)
            .build()
            .map_err(|e| format_error("reading a part", e))?;
        let batch = reader
            .next()
            .ok_or_else(|| Error::Corrupted(format!("granule {g}: rows {first}+{count} missing")))?
            .map_err(|e| format_error("reading a part", e))?;
        if batch.num_rows() != count {
            return Err(Error::Corrupted(format!(
                "granule {g}: {} rows read, expected {count}",
                batch.num_rows()
            )));
        }
        match splice {
            Some(splice) => splice.apply(batch),
            None => Ok(batch),
        }
    }

    /// How to read `columns` when some of them are read as nulls (see `nulls_for`);
    /// `None` when all are decoded.
    fn splice(&self, columns: &[usize]) -> Option<NullSplice> {
        if !columns
            .iter()
            .any(|&c| self.nulls_for.get(c).is_some_and(Option::is_some))
        {
            return None;
        }
        let expected = part_arrow_schema(&self.schema);
        let decoded = columns
            .iter()
            .copied()
            .filter(|&c| self.nulls_for[c].is_none())
            .collect();
        Some(NullSplice {
            schema: Arc::new(Schema::new(
                columns
                    .iter()
                    .map(|&c| expected.field(c).clone())
                    .collect::<Vec<_>>(),
            )),
            nulls: columns.iter().map(|&c| self.nulls_for[c].clone()).collect(),
            decoded,
        })
    }

    /// Rows `first .. first + count` of one column of granule `g`, decoded from just the
    /// pages holding them with a reused zstd context (`page_window`); through
    /// [`PartReader::read_rows`] when the part has no offset index or pages of a kind that
    /// module leaves to Parquet. The source must hold the pages (`SparsePart::fetch_pages`).
    pub fn read_column(
        &self,
        column: usize,
        g: usize,
        first: usize,
        count: usize,
    ) -> Result<ArrayRef> {
        let rows = self
            .granule_len(g)
            .ok_or_else(|| Error::Corrupted(format!("granule {g} does not exist")))?
            as usize;
        if count == 0 || first + count > rows || column >= self.levels.len() {
            return Err(Error::Internal(format!(
                "column {column} rows {first}+{count} of a granule of {rows}"
            )));
        }
        if let Some(ty) = &self.nulls_for[column] {
            return Ok(arrow_array::new_null_array(ty, count));
        }
        let metadata = self.metadata.metadata();
        let Some(pages) = page_window::window_pages(
            &self.source,
            metadata,
            &self.dictionaries,
            g,
            column,
            first..first + count,
        )?
        else {
            return Ok(self
                .read_rows(&[column], g, first, count)?
                .column(0)
                .clone());
        };
        let skip = first - pages.first_row;
        if first < pages.first_row || skip + count > pages.rows {
            return Err(Error::Corrupted(format!(
                "granule {g} column {column}: pages of rows {}+{} for rows {first}+{count}",
                pages.first_row, pages.rows
            )));
        }
        let levels = match self.levels[column].get() {
            Some(levels) => levels,
            None => {
                let mask = ProjectionMask::leaves(self.metadata.parquet_schema(), [column]);
                let levels = parquet_to_arrow_field_levels(
                    self.metadata.parquet_schema(),
                    mask,
                    Some(self.metadata.schema().fields()),
                )
                .map_err(|e| format_error("reading a part's schema", e))?;
                self.levels[column].get_or_init(|| levels)
            }
        };
        let served = pages.rows;
        let groups = page_window::WindowRowGroups {
            metadata,
            granule: g,
            column,
            pages: std::sync::Mutex::new(Some(pages)),
            rows: served,
        };
        let selection: Vec<RowSelector> = [
            RowSelector::skip(skip),
            RowSelector::select(count),
            RowSelector::skip(served - skip - count),
        ]
        .into_iter()
        .filter(|s| s.row_count > 0)
        .collect();
        // As in `PartBatches`: a decoder's assertion on damaged bytes is a corruption.
        let read = || -> Result<RecordBatch> {
            let mut reader = ParquetRecordBatchReader::try_new_with_row_groups(
                levels,
                &groups,
                count,
                Some(RowSelection::from(selection)),
            )
            .map_err(|e| format_error("reading a part", e))?;
            reader
                .next()
                .ok_or_else(|| {
                    Error::Corrupted(format!("granule {g}: rows {first}+{count} missing"))
                })?
                .map_err(|e| format_error("decoding a part", e))
        };
        let batch = std::panic::catch_unwind(std::panic::AssertUnwindSafe(read))
            .unwrap_or_else(|panic| Err(Error::Corrupted(panic_message(&panic))))?;
        if batch.num_rows() != count || batch.num_columns() != 1 {
            return Err(Error::Corrupted(format!(
                "granule {g}: {} rows read, expected {count}",
                batch.num_rows()
            )));
        }
        Ok(batch.column(0).clone())
    }

    /// Batches of the chosen `columns` (positions) from the chosen `granules`, in order.
    /// The iteration ends after the first error (Parquet's reader repeats it forever).
    pub fn read(
        &self,
        columns: &[usize],
        granules: &[usize],
        batch_rows: usize,
    ) -> Result<PartBatches> {
        if let Some(&g) = granules.iter().find(|&&g| g >= self.granules()) {
            return Err(Error::Corrupted(format!("granule {g} does not exist")));
        }
        let builder = ParquetRecordBatchReaderBuilder::new_with_metadata(
            self.source.clone(),
            self.metadata.clone(),
        );
        let splice = self.splice(columns);
        let decoded = splice.as_ref().map_or(columns, |s| &s.decoded);
        let mask = ProjectionMask::roots(builder.parquet_schema(), decoded.iter().copied());
        builder
            .with_projection(mask)
            .with_row_groups(granules.to_vec())
            .with_batch_size(batch_rows.max(1))
            .build()
            .map(|inner| PartBatches {
                inner,
                failed: false,
                splice,
            })
            .map_err(|e| format_error("reading a part", e))
    }
}

/// Every column chunk must lie inside the part: Parquet's reader asserts (panics) on
/// negative offsets or sizes, and reads garbage past them.
fn check_chunk_ranges(metadata: &ParquetMetaData, len: u64) -> Result<()> {
    for (g, rg) in metadata.row_groups().iter().enumerate() {
        for (c, chunk) in rg.columns().iter().enumerate() {
            let start = chunk
                .dictionary_page_offset()
                .unwrap_or(chunk.data_page_offset());
            let size = chunk.compressed_size();
            let fits = start >= 0
                && chunk.data_page_offset() >= 0
                && size >= 0
                && (start as u64)
                    .checked_add(size as u64)
                    .is_some_and(|end| end <= len);
            if !fits {
                return Err(Error::Corrupted(format!(
                    "granule {g}, column {c}: chunk at {start}+{size} is outside the part of {len} bytes"
                )));
            }
        }
    }
    Ok(())
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    let text = panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown".into());
    format!("malformed part ({text})")
}

/// Record batches of a part; stops after the first error.
pub struct PartBatches {
    inner: ParquetRecordBatchReader,
    failed: bool,
    splice: Option<NullSplice>,
}

/// Batches of some columns decoded, the others all nulls of the table's type.
struct NullSplice {
    /// The columns decoded, in order.
    decoded: Vec<usize>,
    /// For each requested column in order: `None` when decoded, else its type.
    nulls: Vec<Option<DataType>>,
    schema: Arc<Schema>,
}

impl NullSplice {
    fn apply(&self, batch: RecordBatch) -> Result<RecordBatch> {
        let rows = batch.num_rows();
        let mut decoded = batch.columns().iter();
        let columns = self
            .nulls
            .iter()
            .map(|ty| match ty {
                Some(ty) => Ok(arrow_array::new_null_array(ty, rows)),
                None => decoded
                    .next()
                    .cloned()
                    .ok_or_else(|| Error::Internal("a decoded column is missing".into())),
            })
            .collect::<Result<Vec<_>>>()?;
        RecordBatch::try_new_with_options(
            self.schema.clone(),
            columns,
            &arrow_array::RecordBatchOptions::new().with_row_count(Some(rows)),
        )
        .map_err(|e| Error::Internal(format!("splicing null columns: {e}")))
    }
}

impl Iterator for PartBatches {
    type Item = Result<RecordBatch>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        // Parquet's decoders assert on some malformed pages instead of returning errors;
        // damaged bytes are caught by the extent checksums first, and whatever gets past
        // them must still end as a corruption error, not a panic.
        let inner = &mut self.inner;
        let item = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| inner.next())) {
            Ok(None) => return None,
            Ok(Some(item)) => item
                .map_err(|e| format_error("decoding a part", e))
                .and_then(|batch| match &self.splice {
                    Some(splice) => splice.apply(batch),
                    None => Ok(batch),
                }),
            Err(panic) => Err(Error::Corrupted(panic_message(&panic))),
        };
        self.failed = item.is_err();
        Some(item)
    }
}

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
fn scalar_at(array: &ArrayRef, i: usize) -> Option<Scalar> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::columnar::prune::{may_match, Op, Predicate};
    use crate::columnar::RowBuffer;

    /// A small deterministic generator, so failures reproduce.
    struct Lcg(u64);
    impl Lcg {
        fn next(&mut self) -> u64 {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            self.0 >> 33
        }
    }

    fn schema() -> TableSchema {
        TableSchema::new([
            ("b", ColumnType::Bool),
            ("i2", ColumnType::Int16),
            ("i4", ColumnType::Int32),
            ("i8", ColumnType::Int64),
            ("f4", ColumnType::Float32),
            ("f8", ColumnType::Float64),
            ("d", ColumnType::Date),
            ("t", ColumnType::Time),
            ("ts", ColumnType::Timestamp),
            ("tz", ColumnType::TimestampTz),
            ("s", ColumnType::Text),
            ("by", ColumnType::Bytes),
            ("u", ColumnType::Uuid),
            ("n", ColumnType::Opaque),
        ])
    }

    /// One row as owned strings (so rows can be compared and sorted in the test).
    type Row = Vec<String>;

    fn rows(n: usize, seed: u64) -> Vec<Row> {
        let mut g = Lcg(seed);
        (0..n)
            .map(|i| {
                let null = |g: &mut Lcg| g.next().is_multiple_of(10);
                let mut row = Vec::new();
                let r = g.next();
                row.push(if null(&mut g) {
                    "N".into()
                } else {
                    format!("b{}", r % 2)
                });
                row.push(if null(&mut g) {
                    "N".into()
                } else {
                    format!("i2{}", (r % 60000) as i64 - 30000)
                });
                row.push(format!("i4{}", (g.next() % 50) as i64 - 25));
                row.push(format!("i8{}", i as i64 * 7 - 3000));
                row.push(if null(&mut g) {
                    "N".into()
                } else {
                    format!("f4{}", (r % 1000) as f32 / 8.0)
                });
                row.push(format!("f8{}", (r % 100000) as f64 / 3.0));
                row.push(if null(&mut g) {
                    "N".into()
                } else {
                    format!("d{}", (g.next() % 20000) as i64 - 10000)
                });
                row.push(format!("t{}", g.next() % 86_400_000_000));
                row.push(format!(
                    "ts{}",
                    (g.next() % 2_000_000_000_000) as i64 - 1_000_000_000_000
                ));
                row.push(format!("tz{}", (g.next() % 2_000_000_000_000) as i64));
                row.push(if null(&mut g) {
                    "N".into()
                } else {
                    format!("s{}", "héllo ".repeat((r % 5) as usize))
                });
                row.push(format!("by{:?}", vec![(r % 256) as u8; (r % 4) as usize]));
                row.push(format!("u{}", r));
                row.push(format!("n{}", r % 13));
                row
            })
            .collect()
    }

    /// Turns a test row back into values (leaking the few bytes a test needs).
    fn values(row: &Row) -> Vec<Value<'static>> {
        row.iter()
            .zip(schema().columns)
            .map(|(cell, col)| {
                if cell == "N" {
                    return Value::Null;
                }
                let strip = |p: &str| cell.strip_prefix(p).unwrap().to_string();
                match col.ty {
                    ColumnType::Bool => Value::Bool(strip("b") == "1"),
                    ColumnType::Int16 => Value::Int16(strip("i2").parse().unwrap()),
                    ColumnType::Int32 => Value::Int32(strip("i4").parse().unwrap()),
                    ColumnType::Int64 | ColumnType::Numeric { .. } => {
                        Value::Int64(strip("i8").parse().unwrap())
                    }
                    ColumnType::Float32 => Value::Float32(strip("f4").parse().unwrap()),
                    ColumnType::Float64 => Value::Float64(strip("f8").parse().unwrap()),
                    ColumnType::Date => Value::Date(strip("d").parse().unwrap()),
                    ColumnType::Time => Value::Time(strip("t").parse().unwrap()),
                    ColumnType::Timestamp => Value::Timestamp(strip("ts").parse().unwrap()),
                    ColumnType::TimestampTz => Value::Timestamp(strip("tz").parse().unwrap()),
                    ColumnType::Text => Value::Text(Box::leak(strip("s").into_boxed_str())),
                    ColumnType::Bytes => {
                        let v: Vec<u8> = strip("by")
                            .trim_matches(|c| c == '[' || c == ']')
                            .split(", ")
                            .filter(|s| !s.is_empty())
                            .map(|s| s.parse().unwrap())
                            .collect();
                        Value::Bytes(Box::leak(v.into_boxed_slice()))
                    }
                    ColumnType::Uuid => {
                        let n: u128 = strip("u").parse().unwrap();
                        Value::Uuid(n.to_be_bytes())
                    }
                    ColumnType::Opaque => {
                        Value::Bytes(Box::leak(strip("n").into_bytes().into_boxed_slice()))
                    }
                }
            })
            .collect()
    }

    fn cell(v: &Value<'_>, ty: ColumnType) -> String {
        match (v, ty) {
            (Value::Null, _) => "N".into(),
            (Value::Bool(b), _) => format!("b{}", *b as u8),
            (Value::Int16(x), _) => format!("i2{x}"),
            (Value::Int32(x), _) => format!("i4{x}"),
            (Value::Int64(x), _) => format!("i8{x}"),
            (Value::Float32(x), _) => format!("f4{x}"),
            (Value::Float64(x), _) => format!("f8{x}"),
            (Value::Date(x), _) => format!("d{x}"),
            (Value::Time(x), _) => format!("t{x}"),
            (Value::Timestamp(x), ColumnType::Timestamp) => format!("ts{x}"),
            (Value::Timestamp(x), _) => format!("tz{x}"),
            (Value::Text(s), _) => format!("s{s}"),
            (Value::Bytes(b), ColumnType::Opaque) => format!("n{}", String::from_utf8_lossy(b)),
            (Value::Bytes(b), _) => format!("by{:?}", b.to_vec()),
            (Value::Uuid(u), _) => format!("u{}", u128::from_be_bytes(*u)),
        }
    }

    fn encode(rows: &[Row], order_by: &str, granule_rows: u32) -> EncodedPart {
        let schema = schema();
        let mut buffer = RowBuffer::new(schema.clone());
        for row in rows {
            buffer.push_row(&values(row)).unwrap();
        }
        let granule_rows = granule_rows.to_string();
        let mut pairs = vec![("granule_rows", granule_rows.as_str())];
        if !order_by.is_empty() {
            pairs.push(("order_by", order_by));
        }
        let options = TableOptions::parse(pairs).unwrap();
        let key = options.resolve_order_by(&schema.names()).unwrap();
        encode_part(&schema, &buffer.take_batch().unwrap(), &key, &options).unwrap()
    }

    fn read_all(part: &EncodedPart, columns: &[usize], granules: &[usize]) -> Vec<Row> {
        let schema = schema();
        let reader = PartReader::open(&schema, part.bytes.clone()).unwrap();
        collect_rows(&reader, columns, granules)
    }

    fn collect_rows<R: ChunkReader + Clone + 'static>(
        reader: &PartReader<R>,
        columns: &[usize],
        granules: &[usize],
    ) -> Vec<Row> {
        let schema = schema();
        let mut out = Vec::new();
        for batch in reader.read(columns, granules, 77).unwrap() {
            let batch = batch.unwrap();
            for r in 0..batch.num_rows() {
                out.push(
                    columns
                        .iter()
                        .enumerate()
                        .map(|(k, &c)| {
                            cell(
                                &value_at(batch.column(k), schema.columns[c].ty, r),
                                schema.columns[c].ty,
                            )
                        })
                        .collect(),
                );
            }
        }
        out
    }

    #[test]
    fn every_type_round_trips_sorted_by_the_key() {
        let input = rows(1000, 42);
        let part = encode(&input, "i4, i8", 128);
        assert_eq!(part.rows, 1000);
        assert_eq!(part.granules.len(), 8);
        let all: Vec<usize> = (0..schema().columns.len()).collect();
        let output = read_all(&part, &all, &(0..8).collect::<Vec<_>>());
        let mut expected = input.clone();
        let key =
            |r: &Row| -> (i64, i64) { (r[2][2..].parse().unwrap(), r[3][2..].parse().unwrap()) };
        expected.sort_by_key(key);
        assert_eq!(output, expected);
    }

    /// Reads one hidden column of the whole part.
    fn hidden(reader: &PartReader, column: usize) -> Vec<u32> {
        let granules: Vec<usize> = (0..reader.granules()).collect();
        reader
            .read(&[column], &granules, 100)
            .unwrap()
            .flat_map(|b| {
                b.unwrap()
                    .column(0)
                    .as_primitive::<arrow_array::types::UInt32Type>()
                    .values()
                    .to_vec()
            })
            .collect()
    }

    #[test]
    fn rows_keep_their_offsets_through_the_sort() {
        let input = rows(700, 11);
        let part = encode(&input, "s, i4", 64);
        let reader = PartReader::open(&schema(), part.bytes.clone()).unwrap();
        let row_at = hidden(&reader, reader.row_column());
        let pos_of = hidden(&reader, reader.pos_column());
        assert_eq!(row_at.len(), 700);
        let stored = read_all(
            &part,
            &(0..14).collect::<Vec<_>>(),
            &(0..11).collect::<Vec<_>>(),
        );
        for (offset, original) in input.iter().enumerate() {
            let pos = pos_of[offset] as usize;
            assert_eq!(row_at[pos] as usize, offset);
            assert_eq!(&stored[pos], original, "row offset {offset}");
            let (g, within) = reader.locate(pos as u64).unwrap();
            assert_eq!(reader.granule_starts()[g] as usize + within, pos);
        }
        assert_eq!(reader.locate(700), None);
    }

    #[test]
    fn chunks_fetched_separately_read_like_one_range() {
        use crate::columnar::fetch::SparsePart;
        let part = encode(&rows(600, 21), "i4", 100);
        let bytes = part.bytes.clone();
        let mut fetch =
            |off: u64, len: usize| Ok(bytes.slice(off as usize..off as usize + len).to_vec());
        let sparse = SparsePart::with_tail(bytes.len() as u64, &mut fetch).unwrap();
        let reader = PartReader::open(&schema(), sparse.clone()).unwrap();
        // The hidden position column first, then the table's columns of the same
        // granule: ranges that touch end to end.
        sparse
            .fetch_chunks(reader.metadata(), &[reader.pos_column()], &[2], &mut fetch)
            .unwrap();
        let all: Vec<usize> = (0..14).collect();
        sparse
            .fetch_chunks(reader.metadata(), &all, &[2], &mut fetch)
            .unwrap();
        sparse
            .fetch_chunks(reader.metadata(), &[reader.row_column()], &[2], &mut fetch)
            .unwrap();
        let got = collect_rows(&reader, &all, &[2]);
        assert_eq!(got, read_all(&part, &all, &[2]));
        let mut with_rows = all.clone();
        with_rows.push(reader.row_column());
        assert_eq!(reader.read(&with_rows, &[2], 1000).unwrap().count(), 1);
    }

    #[test]
    fn unsorted_parts_store_the_identity_almost_for_free() {
        let input = rows(5000, 12);
        let plain = encode(&input, "", 1000);
        let reader = PartReader::open(&schema(), plain.bytes.clone()).unwrap();
        assert_eq!(
            hidden(&reader, reader.pos_column()),
            (0..5000).collect::<Vec<u32>>()
        );
        let hidden_bytes: i64 = reader
            .metadata()
            .row_groups()
            .iter()
            .map(|rg| rg.column(14).compressed_size() + rg.column(15).compressed_size())
            .sum();
        assert!(hidden_bytes < 1000, "{hidden_bytes} bytes for the identity");
    }

    #[test]
    fn projection_and_granule_selection_read_only_what_was_asked() {
        let input = rows(500, 7);
        let part = encode(&input, "i8", 100);
        let got = read_all(&part, &[3, 10], &[1, 3]);
        let mut sorted = input.clone();
        sorted.sort_by_key(|r| r[3][2..].parse::<i64>().unwrap());
        let expected: Vec<Row> = sorted[100..200]
            .iter()
            .chain(&sorted[300..400])
            .map(|r| vec![r[3].clone(), r[10].clone()])
            .collect();
        assert_eq!(got, expected);
    }

    #[test]
    fn statistics_bound_every_granule_and_pruning_never_drops_a_match() {
        let input = rows(2000, 3);
        let part = encode(&input, "d", 64);
        let reader = PartReader::open(&schema(), part.bytes.clone()).unwrap();
        assert_eq!(reader.granule_stats().unwrap(), part.granules);
        let all: Vec<usize> = (0..schema().columns.len()).collect();
        let mut g = Lcg(99);
        for (gi, stats) in part.granules.iter().enumerate() {
            let rows = read_all(&part, &all, &[gi]);
            assert_eq!(stats.rows as usize, rows.len());
            let dates: Vec<Option<i64>> = rows
                .iter()
                .map(|r| {
                    if r[6] == "N" {
                        None
                    } else {
                        Some(r[6][1..].parse().unwrap())
                    }
                })
                .collect();
            let nulls = dates.iter().filter(|d| d.is_none()).count() as u64;
            assert_eq!(stats.columns[6].nulls, Some(nulls));
            for _ in 0..40 {
                let v = (g.next() % 24000) as i64 - 12000;
                for op in [Op::Eq, Op::Lt, Op::Le, Op::Gt, Op::Ge] {
                    let pred = Predicate::Compare {
                        column: 6,
                        op,
                        value: Scalar::Int(v),
                    };
                    let any = dates.iter().flatten().any(|&d| match op {
                        Op::Eq => d == v,
                        Op::Lt => d < v,
                        Op::Le => d <= v,
                        Op::Gt => d > v,
                        Op::Ge => d >= v,
                    });
                    if any {
                        assert!(
                            may_match(stats, &pred),
                            "granule {gi} wrongly pruned for {pred:?}"
                        );
                    }
                }
            }
        }
        // Sorted by d, most granules are ruled out by a narrow range.
        let narrow = [
            Predicate::Compare {
                column: 6,
                op: Op::Ge,
                value: Scalar::Int(0),
            },
            Predicate::Compare {
                column: 6,
                op: Op::Lt,
                value: Scalar::Int(500),
            },
        ];
        let kept = part
            .granules
            .iter()
            .filter(|s| crate::columnar::prune::may_match_all(s, &narrow))
            .count();
        assert!(kept <= 3, "{kept} of {} granules kept", part.granules.len());
    }

    #[test]
    fn damaged_bytes_are_an_error_not_a_panic() {
        let part = encode(&rows(300, 5), "i8", 100);
        let schema = schema();
        for cut in [0, 4, 8, part.bytes.len() / 2, part.bytes.len() - 1] {
            assert!(
                PartReader::open(&schema, part.bytes.slice(..cut)).is_err(),
                "cut at {cut}"
            );
        }
        let wrong = TableSchema::new([("x", ColumnType::Int32)]);
        assert!(PartReader::open(&wrong, part.bytes.clone()).is_err());
    }

    #[test]
    fn a_scan_fetches_only_the_footer_and_the_chunks_it_reads() {
        use crate::columnar::fetch::SparsePart;
        use crate::storage::{write_extent, ExtentReader, MemoryPageStore};

        let input = rows(3000, 11);
        let part = encode(&input, "i8", 256);
        let mut store = MemoryPageStore::new(8168);
        let extent = write_extent(&mut store, 1, &part.bytes).unwrap();
        let extent_reader = ExtentReader::new(&store, extent).unwrap();
        let fetched = std::cell::Cell::new(0u64);
        let mut fetch = |off: u64, len: usize| {
            fetched.set(fetched.get() + len as u64);
            extent_reader.read(off, len)
        };
        let sparse = SparsePart::with_tail(extent.len, &mut fetch).unwrap();
        let footer = fetched.get();
        let reader = PartReader::open(&schema(), sparse.clone()).unwrap();
        assert_eq!(reader.granule_stats().unwrap(), part.granules);
        // Two columns of two granules.
        let (columns, granules) = ([3usize, 10], [2usize, 7]);
        reader
            .source()
            .fetch_chunks(reader.metadata(), &columns, &granules, &mut fetch)
            .unwrap();
        assert_eq!(
            collect_rows(&reader, &columns, &granules),
            read_all(&part, &columns, &granules)
        );
        // 2 of 14 columns in 2 of 12 granules: a small fraction of the data.
        let data = part.bytes.len() as u64 - footer;
        let chunks = fetched.get() - footer;
        assert!(chunks * 20 < data, "fetched {chunks} of {data} data bytes");
        // A column that was not fetched is an error, not a panic or a wrong answer.
        let mut batches = reader.read(&[5], &[2], 100).unwrap();
        assert!(matches!(batches.next(), Some(Err(Error::Corrupted(_)))));
        assert!(
            batches.next().is_none(),
            "iteration ends at the first error"
        );
    }

    #[test]
    fn a_column_without_values_reads_as_nulls_of_the_tables_type() {
        // PostgreSQL 18's virtual generated columns store only nulls, and changing such a
        // column's type rewrites nothing: old parts keep the old type.
        let written = TableSchema::new([("k", ColumnType::Int32), ("v", ColumnType::Int32)]);
        let mut buffer = RowBuffer::new(written.clone());
        for k in 0..3000 {
            buffer.push_row(&[Value::Int32(k), Value::Null]).unwrap();
        }
        let options = TableOptions::parse([("granule_rows", "1000")]).unwrap();
        let part = encode_part(&written, &buffer.take_batch().unwrap(), &[], &options).unwrap();
        let now = TableSchema::new([("k", ColumnType::Int32), ("v", ColumnType::Text)]);
        let reader = PartReader::open_with_offsets(&now, part.bytes.clone()).unwrap();
        let check = |batch: &RecordBatch, first: i32| {
            assert_eq!(batch.schema().field(1).data_type(), &DataType::Utf8);
            assert_eq!(batch.column(1).null_count(), batch.num_rows());
            let k = batch.column(0).as_primitive::<Int32Type>();
            assert_eq!(k.value(0), first);
        };
        let batches: Vec<RecordBatch> = reader
            .read(&[0, 1], &[0, 2], 500)
            .unwrap()
            .map(|b| b.unwrap())
            .collect();
        assert_eq!(batches.len(), 4);
        check(&batches[2], 2000);
        check(&reader.read_rows(&[0, 1], 1, 10, 5).unwrap(), 1010);
        // Only the null column, alone and first.
        let only = reader.read_rows(&[1], 1, 10, 5).unwrap();
        assert_eq!(
            (only.num_rows(), only.column(0).data_type()),
            (5, &DataType::Utf8)
        );
        let swapped = reader.read_rows(&[1, 0], 0, 0, 2).unwrap();
        assert_eq!(swapped.column(1).as_primitive::<Int32Type>().value(1), 1);
        let column = reader.read_column(1, 2, 7, 9).unwrap();
        assert_eq!(
            (column.len(), column.null_count(), column.data_type()),
            (9, 9, &DataType::Utf8)
        );

        // A column that has values must still match.
        let changed = TableSchema::new([("k", ColumnType::Text), ("v", ColumnType::Int32)]);
        let err = PartReader::open(&changed, part.bytes.clone())
            .err()
            .unwrap();
        assert!(matches!(err, Error::Corrupted(_)), "{err:?}");
    }

    #[test]
    fn rows_read_by_page_match_the_granule() {
        use crate::columnar::fetch::SparsePart;
        use crate::storage::{write_extent, ExtentReader, MemoryPageStore};

        let input = rows(6000, 5);
        let part = encode(&input, "i8", 5000);
        let mut store = MemoryPageStore::new(8168);
        let extent = write_extent(&mut store, 1, &part.bytes).unwrap();
        let extent_reader = ExtentReader::new(&store, extent).unwrap();
        let mut fetch = |off: u64, len: usize| extent_reader.read(off, len);
        let sparse = SparsePart::with_tail(extent.len, &mut fetch).unwrap();
        sparse.fetch_offset_indexes(&mut fetch).unwrap();
        let reader = PartReader::open_with_offsets(&schema(), sparse).unwrap();
        let columns: Vec<usize> = (0..schema().columns.len()).collect();
        reader
            .source()
            .fetch_chunks(reader.metadata(), &columns, &[0, 1], &mut fetch)
            .unwrap();
        let whole = PartReader::open(&schema(), part.bytes.clone()).unwrap();
        let granule = whole
            .read(&columns, &[0], 5000)
            .unwrap()
            .next()
            .unwrap()
            .unwrap();
        for (first, count) in [(0, 1), (1023, 2), (2048, 1024), (4999, 1), (3000, 2000)] {
            let rows = reader.read_rows(&columns, 0, first, count).unwrap();
            assert_eq!(rows, granule.slice(first, count), "{first}+{count}");
            assert_eq!(whole.read_rows(&columns, 0, first, count).unwrap(), rows);
        }
        let last = reader.read_rows(&columns, 1, 999, 1).unwrap();
        assert_eq!(last.num_rows(), 1);
        assert!(reader.read_rows(&columns, 0, 4999, 2).is_err());
        assert!(reader.read_rows(&columns, 2, 0, 1).is_err());
    }

    #[test]
    fn rows_read_by_page_need_only_their_pages_fetched() {
        use crate::columnar::fetch::SparsePart;
        use crate::storage::{write_extent, ExtentReader, MemoryPageStore};
        use std::cell::Cell;

        let input = rows(6000, 5);
        let part = encode(&input, "i8", 5000);
        let mut store = MemoryPageStore::new(8168);
        let extent = write_extent(&mut store, 1, &part.bytes).unwrap();
        let extent_reader = ExtentReader::new(&store, extent).unwrap();
        let fetched = Cell::new(0u64);
        let mut fetch = |off: u64, len: usize| {
            fetched.set(fetched.get() + len as u64);
            extent_reader.read(off, len)
        };
        let sparse = SparsePart::with_tail(extent.len, &mut fetch).unwrap();
        sparse.fetch_offset_indexes(&mut fetch).unwrap();
        let reader = PartReader::open_with_offsets(&schema(), sparse).unwrap();
        let whole = PartReader::open(&schema(), part.bytes.clone()).unwrap();
        let columns: Vec<usize> = (0..schema().columns.len()).collect();
        let before = fetched.get();
        let all: Vec<usize> = (0..columns.len() + 2).collect();
        for (g, first, count) in [(0, 2048, 1024), (0, 1023, 2), (1, 0, 1000), (0, 4999, 1)] {
            reader
                .source()
                .fetch_pages(reader.metadata(), &all, g, first..first + count, &mut fetch)
                .unwrap();
            let got = reader.read_rows(&all, g, first, count).unwrap();
            assert_eq!(got, whole.read_rows(&all, g, first, count).unwrap());
            // One column at a time from its pages, as fetches decode them.
            for &c in &all {
                let column = reader.read_column(c, g, first, count).unwrap();
                assert_eq!(&column, got.column(c), "column {c} rows {first}+{count}");
            }
        }
        // The windows of granule 0 span 4 of its 5 pages, granule 1's all: less than the
        // chunks, and a page fetched twice is held once.
        let data = part.bytes.len() as u64 - before;
        assert!(
            fetched.get() - before < data,
            "{} of {data}",
            fetched.get() - before
        );
        let held = reader.source().bytes_held();
        reader
            .source()
            .fetch_pages(reader.metadata(), &columns, 0, 2048..3072, &mut fetch)
            .unwrap();
        assert_eq!(reader.source().bytes_held(), held);
        // A page that was not fetched is an error, not a wrong answer.
        let fresh = SparsePart::with_tail(extent.len, &mut fetch).unwrap();
        fresh.fetch_offset_indexes(&mut fetch).unwrap();
        let fresh = PartReader::open_with_offsets(&schema(), fresh).unwrap();
        fresh
            .source()
            .fetch_pages(fresh.metadata(), &columns, 0, 0..10, &mut fetch)
            .unwrap();
        assert!(fresh.read_rows(&columns, 0, 2048, 10).is_err());
        assert!(fresh.read_rows(&columns, 0, 0, 10).is_ok());
        assert!(fresh.read_column(3, 0, 2048, 10).is_err());
        assert!(fresh.read_column(3, 0, 0, 10).is_ok());
        assert!(fresh.read_column(3, 0, 4990, 20).is_err());
    }

    #[test]
    fn columns_read_from_their_pages_match_the_reader_for_every_codec() {
        for codec in ["none", "lz4", "zstd"] {
            let schema = schema();
            let mut buffer = RowBuffer::new(schema.clone());
            for row in rows(3000, 9) {
                buffer.push_row(&values(&row)).unwrap();
            }
            let options =
                TableOptions::parse([("granule_rows", "2500"), ("compression", codec)]).unwrap();
            let part = encode_part(&schema, &buffer.take_batch().unwrap(), &[], &options).unwrap();
            let reader = PartReader::open_with_offsets(&schema, part.bytes.clone()).unwrap();
            for c in 0..schema.columns.len() + 2 {
                for (g, first, count) in [(0, 0, 1024), (0, 1500, 1000), (1, 10, 490)] {
                    let want = reader.read_rows(&[c], g, first, count).unwrap();
                    let got = reader.read_column(c, g, first, count).unwrap();
                    assert_eq!(
                        &got,
                        want.column(0),
                        "{codec}: column {c} {g}:{first}+{count}"
                    );
                    // Read by this module's pages, not Parquet's reader (but for LZ4).
                    let window = page_window::window_pages(
                        reader.source(),
                        reader.metadata(),
                        &Default::default(),
                        g,
                        c,
                        first..first + count,
                    )
                    .unwrap();
                    assert_eq!(window.is_some(), codec != "lz4", "{codec}: column {c}");
                }
            }
            // Windows after the first of a chunk decoded with its kept dictionary (and
            // matched the reader above).
            assert_eq!(reader.dictionary_bytes() > 0, codec != "lz4", "{codec}");
        }
    }

    #[test]
    fn a_damaged_footer_is_an_error() {
        use crate::columnar::fetch::SparsePart;
        let part = encode(&rows(100, 1), "i8", 50);
        let mut bytes = part.bytes.to_vec();
        let n = bytes.len();
        bytes[n - 8..n - 4].copy_from_slice(&u32::MAX.to_le_bytes());
        let mut fetch = |off: u64, len: usize| Ok(bytes[off as usize..off as usize + len].to_vec());
        assert!(SparsePart::with_tail(n as u64, &mut fetch).is_err());
        assert!(SparsePart::with_tail(4, &mut fetch).is_err());
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            // Each case encodes and reads a whole part: a sixteenth of the cases asked
            // for (PROPTEST_CASES, as the fuzz tier sets it), at least 64.
            #![proptest_config(ProptestConfig::with_cases(
                std::env::var("PROPTEST_CASES").ok().and_then(|n| n.parse::<u32>().ok()).map_or(64, |n| (n / 16).max(64))
            ))]
            /// Extent checksums catch damage before Parquet sees it; still, damaged part
            /// bytes must give an error or rows, never a panic.
            #[test]
            fn a_damaged_part_never_panics(at in any::<prop::sample::Index>(), xor in 1u8..=255) {
                let part = encode(&rows(200, 4), "i8", 64);
                let mut bytes = part.bytes.to_vec();
                let i = at.index(bytes.len());
                bytes[i] ^= xor;
                let outcome = std::panic::catch_unwind(|| {
                    let Ok(reader) = PartReader::open(&schema(), Bytes::from(bytes)) else { return };
                    let _ = reader.granule_stats();
                    let all: Vec<usize> = (0..schema().columns.len()).collect();
                    let granules: Vec<usize> = (0..reader.granules()).collect();
                    if let Ok(batches) = reader.read(&all, &granules, 50) {
                        for batch in batches.flatten() {
                            for (c, col) in schema().columns.iter().enumerate() {
                                for r in 0..batch.num_rows() {
                                    let _ = value_at(batch.column(c), col.ty, r);
                                }
                            }
                        }
                    }
                });
                prop_assert!(outcome.is_ok(), "flipping byte {} panicked", i);
            }
        }
    }
}
