//! The one result of a run, [`RunReport`], and its renderers. Numbers are computed once, here,
//! from the merged measurements; JSON, HTML, terminal and HdrHistogram logs only render them.
//!
//! # Layout
//! - [`compare`]: several runs side by side, changes against the first marked (terminal table).
//! - [`compare_html`]: the same as a page, with the runs' distributions overlaid.
//! - [`model`]: `RunReport` and its parts (the report.json contract, `schema_version` 1).
//! - [`build`]: assembling a `RunReport` from merged snapshots, the ledger's counts and process
//!   figures.
//! - [`slo`]: evaluating the scenario's SLOs on report.json paths; checking paths up front.
//! - [`render`]: report.json, report.html and the terminal summary.
//! - [`hlog`]: histograms.hlog, HdrHistogram's interval log, written and read back.
//! - [`merge`]: the report of a sharded run from its shards' reports and histograms.
//! - [`html`]: the page of one run (report.html), self-contained.
//! - [`charts`]: percentile distributions and timelines as inline SVG (plotters).

pub mod build;
pub mod charts;
pub mod compare;
pub mod compare_html;
pub mod hlog;
pub mod html;
pub mod merge;
pub mod model;
pub mod render;
pub mod slo;

pub use build::Inputs;
pub use model::{ProcessStats, RunReport, SCHEMA_VERSION};

/// Why a report could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// File I/O.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// Serialisation.
    #[error("cannot serialise the report: {0}")]
    Json(#[from] serde_json::Error),
    /// A report.json of another layout.
    #[error(
        "{path}: schema_version {found}, but this pushsim ({}) reads schema_version {}; use the pushsim that wrote it ({writer})",
        env!("CARGO_PKG_VERSION"),
        SCHEMA_VERSION
    )]
    Schema {
        /// The file.
        path: String,
        /// Its schema_version (or what stood there).
        found: String,
        /// The pushsim version that wrote the file.
        writer: String,
    },
    /// Not a report.json at all.
    #[error("{path}: not a pushsim report.json: {why}")]
    NotAReport {
        /// The file.
        path: String,
        /// What is wrong.
        why: String,
    },
    /// A chart of report.html.
    #[error(transparent)]
    Chart(#[from] charts::ChartError),
}
