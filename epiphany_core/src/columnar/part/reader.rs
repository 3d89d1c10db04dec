//! Reading a part: its footer, the granules and columns a scan asks for as Arrow
//! batches, a few rows of a column for a fetch by TID, and one value as the core's
//! [`Value`].

use std::sync::{Arc, OnceLock};

use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_schema::{DataType, Schema};
use bytes::Bytes;
use parquet::arrow::arrow_reader::statistics::StatisticsConverter;
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReader,
    ParquetRecordBatchReaderBuilder, RowSelection, RowSelector,
};
use parquet::arrow::{parquet_to_arrow_field_levels, FieldLevels, ProjectionMask};
use parquet::file::metadata::{PageIndexPolicy, ParquetMetaData};
use parquet::file::reader::ChunkReader;

use crate::columnar::page_window;
use crate::columnar::prune::GranuleStats;

use super::values::scalar_at;
use crate::columnar::types::TableSchema;
use crate::error::{Error, Result};

use super::*;

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
    /// The same for a text or bytes column read as a dictionary array.
    coded_levels: Vec<OnceLock<FieldLevels>>,
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
            coded_levels: (0..columns).map(|_| OnceLock::new()).collect(),
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
        if first < pages.first_row || first - pages.first_row + count > pages.rows {
            return Err(Error::Corrupted(format!(
                "granule {g} column {column}: pages of rows {}+{} for rows {first}+{count}",
                pages.first_row, pages.rows
            )));
        }
        let skip = first - pages.first_row;
        let selection: Vec<RowSelector> = [
            RowSelector::skip(skip),
            RowSelector::select(count),
            RowSelector::skip(pages.rows - skip - count),
        ]
        .into_iter()
        .filter(|s| s.row_count > 0)
        .collect();
        let served = pages.rows;
        self.decode_pages(
            column,
            g,
            served,
            Box::new(pages),
            Some(RowSelection::from(selection)),
            count,
            false,
        )
    }

    /// Columns `columns` of granule `g` as arrays: every row, or only the rows
    /// `selection` selects. Each column is decoded from its chunk's pages with the
    /// thread's zstd context (`page_window::chunk_pages`), and pages the selection skips
    /// are not even decompressed; a column whose pages that module leaves to Parquet goes
    /// through Parquet's reader. The source must hold the chunks
    /// (`SparsePart::fetch_chunks`).
    pub fn read_granule(
        &self,
        columns: &[usize],
        g: usize,
        selection: Option<&RowSelection>,
    ) -> Result<Vec<ArrayRef>> {
        let rows = self
            .granule_len(g)
            .ok_or_else(|| Error::Corrupted(format!("granule {g} does not exist")))?
            as usize;
        let selected = selection.map_or(rows, RowSelection::row_count);
        columns
            .iter()
            .map(|&column| {
                if column >= self.levels.len() {
                    return Err(Error::Internal(format!("no column {column} in a part")));
                }
                if let Some(ty) = &self.nulls_for[column] {
                    return Ok(arrow_array::new_null_array(ty, selected));
                }
                let metadata = self.metadata.metadata();
                match page_window::chunk_pages(
                    &self.source,
                    metadata,
                    &self.dictionaries,
                    g,
                    column,
                )? {
                    Some(pages) => self.decode_pages(
                        column,
                        g,
                        rows,
                        Box::new(pages),
                        selection.cloned(),
                        selected,
                        false,
                    ),
                    None => self.granule_by_parquet(column, g, selection, selected),
                }
            })
            .collect()
    }

    /// Columns `columns` of granule `g`, every row, as [`PartReader::read_granule`] reads
    /// them, except that a text or bytes column whose every data page in the granule is
    /// dictionary-encoded comes as a dictionary array: a test of its values then looks
    /// at each distinct value once, and no string is copied (see
    /// [`plain_array`] for the values themselves).
    pub fn read_granule_coded(&self, columns: &[usize], g: usize) -> Result<Vec<ArrayRef>> {
        let rows = self
            .granule_len(g)
            .ok_or_else(|| Error::Corrupted(format!("granule {g} does not exist")))?
            as usize;
        let fields = self.metadata.schema().fields();
        columns
            .iter()
            .map(|&column| {
                let coded = self.nulls_for.get(column).is_some_and(Option::is_none)
                    && fields.get(column).is_some_and(|f| {
                        matches!(f.data_type(), DataType::Utf8 | DataType::Binary)
                    })
                    && self.dictionary_coded(g, column);
                if coded {
                    let metadata = self.metadata.metadata();
                    if let Some(pages) = page_window::chunk_pages(
                        &self.source,
                        metadata,
                        &self.dictionaries,
                        g,
                        column,
                    )? {
                        return self.decode_pages(
                            column,
                            g,
                            rows,
                            Box::new(pages),
                            None,
                            rows,
                            true,
                        );
                    }
                }
                Ok(self.read_granule(&[column], g, None)?.remove(0))
            })
            .collect()
    }

    /// Whether every data page of column `column` in granule `g` is dictionary-encoded.
    fn dictionary_coded(&self, g: usize, column: usize) -> bool {
        use parquet::basic::Encoding;
        let Some(chunk) = self
            .metadata
            .metadata()
            .row_groups()
            .get(g)
            .and_then(|rg| rg.columns().get(column))
        else {
            return false;
        };
        chunk.dictionary_page_offset().is_some()
            && chunk.page_encoding_stats_mask().is_some_and(|mask| {
                mask.is_only(Encoding::PLAIN_DICTIONARY) || mask.is_only(Encoding::RLE_DICTIONARY)
            })
    }

    /// Column `column` of granule `g` through Parquet's own reader.
    fn granule_by_parquet(
        &self,
        column: usize,
        g: usize,
        selection: Option<&RowSelection>,
        selected: usize,
    ) -> Result<ArrayRef> {
        let builder = ParquetRecordBatchReaderBuilder::new_with_metadata(
            self.source.clone(),
            self.metadata.clone(),
        );
        let mask = ProjectionMask::roots(builder.parquet_schema(), [column]);
        let mut builder = builder
            .with_projection(mask)
            .with_row_groups(vec![g])
            .with_batch_size(selected.max(1));
        if let Some(selection) = selection {
            builder = builder.with_row_selection(selection.clone());
        }
        let reader = builder
            .build()
            .map_err(|e| format_error("reading a part", e))?;
        let batches = PartBatches {
            inner: reader,
            failed: false,
            splice: None,
        };
        let arrays = batches
            .map(|b| b.map(|b| b.column(0).clone()))
            .collect::<Result<Vec<_>>>()?;
        one_array(arrays, g, selected)
    }

    /// The rows `selection` selects (all without one) of the `served` rows `pages` hold
    /// of column `column` of granule `g`, decoded by Parquet's array reader; `expect` of
    /// them.
    #[allow(clippy::too_many_arguments)]
    fn decode_pages(
        &self,
        column: usize,
        g: usize,
        served: usize,
        pages: Box<dyn parquet::column::page::PageReader>,
        selection: Option<RowSelection>,
        expect: usize,
        coded: bool,
    ) -> Result<ArrayRef> {
        let cell = if coded {
            &self.coded_levels[column]
        } else {
            &self.levels[column]
        };
        let levels = match cell.get() {
            Some(levels) => levels,
            None => {
                let mask = ProjectionMask::leaves(self.metadata.parquet_schema(), [column]);
                let fields = self.metadata.schema().fields();
                let hint: arrow_schema::Fields = if coded {
                    fields
                        .iter()
                        .map(|f| {
                            let d = DataType::Dictionary(
                                Box::new(DataType::Int32),
                                Box::new(f.data_type().clone()),
                            );
                            Arc::new(f.as_ref().clone().with_data_type(d))
                        })
                        .collect()
                } else {
                    fields.clone()
                };
                let levels = parquet_to_arrow_field_levels(
                    self.metadata.parquet_schema(),
                    mask,
                    Some(&hint),
                )
                .map_err(|e| format_error("reading a part's schema", e))?;
                cell.get_or_init(|| levels)
            }
        };
        let metadata = self.metadata.metadata();
        let groups = page_window::WindowRowGroups {
            metadata,
            granule: g,
            pages: std::sync::Mutex::new(vec![(column, pages)]),
            rows: served,
        };
        // As in `PartBatches`: a decoder's assertion on damaged bytes is a corruption.
        let read = || -> Result<Vec<ArrayRef>> {
            let reader = ParquetRecordBatchReader::try_new_with_row_groups(
                levels,
                &groups,
                expect.max(1),
                selection,
            )
            .map_err(|e| format_error("reading a part", e))?;
            reader
                .map(|b| {
                    b.map(|b| b.column(0).clone())
                        .map_err(|e| format_error("decoding a part", e))
                })
                .collect()
        };
        let arrays = std::panic::catch_unwind(std::panic::AssertUnwindSafe(read))
            .unwrap_or_else(|panic| Err(Error::Corrupted(panic_message(&panic))))?;
        one_array(arrays, g, expect)
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

/// The one array `arrays` holds (or their concatenation): `expect` rows of granule `g`.
/// `array` with its values in place: a dictionary array (of
/// [`PartReader::read_granule_coded`]) as the plain array of its values, any other as
/// it is.
pub fn plain_array(array: ArrayRef) -> Result<ArrayRef> {
    use arrow_array::cast::AsArray;
    match array.data_type() {
        DataType::Dictionary(..) => {
            let d = array.as_dictionary::<arrow_array::types::Int32Type>();
            arrow_select::take::take(d.values().as_ref(), d.keys(), None)
                .map_err(|e| Error::Internal(format!("expanding a dictionary: {e}")))
        }
        _ => Ok(array),
    }
}

fn one_array(mut arrays: Vec<ArrayRef>, g: usize, expect: usize) -> Result<ArrayRef> {
    let array = match arrays.len() {
        1 => arrays.pop().expect("one"),
        0 => {
            return Err(Error::Corrupted(format!(
                "granule {g}: no rows read, expected {expect}"
            )))
        }
        _ => {
            let parts: Vec<&dyn Array> = arrays.iter().map(|a| a.as_ref()).collect();
            arrow_select::concat::concat(&parts)
                .map_err(|e| Error::Internal(format!("joining decoded batches: {e}")))?
        }
    };
    if array.len() != expect {
        return Err(Error::Corrupted(format!(
            "granule {g}: {} rows read, expected {expect}",
            array.len()
        )));
    }
    Ok(array)
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
