//! Cost-anomaly engine for Vietnam's social health insurance (BHYT).
//!
//! The data flow is the module layout:
//! [`ingest`] (claims files → validated, pseudonymised rows) →
//! [`store`] (partitioned Parquet + SQLite manifest) →
//! [`features`] (indicators per facility and period, case mix, peers,
//! budget) → [`detect`] (calibrated detectors, ensemble, saved models) →
//! [`alerts`] (the weekly list, reasons, lifecycle) → [`forecast`]
//! (budgets: forecasts, projection, backtest) → report (next issue);
//! [`evaluate`] measures a ranking against labels; [`generate`] writes
//! synthetic claims for tests and demos.
//! [`schema`] declares the canonical tables and their data dictionary;
//! [`reference`] holds the reference tables kept as data; [`privacy`] the
//! keyed hashing of personal fields.

pub mod aggregate;
pub mod alerts;
#[cfg(feature = "cluster")]
pub mod cluster;
pub mod detect;
pub mod evaluate;
pub mod features;
pub mod forecast;
pub mod format;
pub mod generate;
pub mod ingest;
pub mod privacy;
pub mod project;
pub mod qd130;
pub mod reference;
pub mod report;
pub mod schema;
#[cfg(feature = "serve")]
pub mod serve;
pub mod store;
