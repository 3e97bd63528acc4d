//! The embedded flow store: records buffered in memory, flushed as Parquet
//! files partitioned by hour under a data directory (readable by any Parquet
//! tool), kept by age and size, and queried with the filter language.

mod aggregate;
mod batch;
mod columnar;
mod conversation_batch;
mod files;
mod flow_batch;
mod interrupt;
mod private;
mod read;
mod rollup;
mod schema;
mod space;
mod store;
mod typed_columns;
pub mod wal;

pub use aggregate::{Edge, Metric, SeriesPoint, Stat, TopEntry};
pub use batch::{Columns, Row, to_batch};
pub use files::Table;
pub use flow_batch::flows_to_batch;
pub use interrupt::{Interrupted, QueryControl};
pub use read::{Cursor, FileCache, Order, Page, RecordQuery};
pub use schema::{ID, arrow_schema, columns, table_columns};
pub use store::{Store, StoreCounters, StoreOptions};
