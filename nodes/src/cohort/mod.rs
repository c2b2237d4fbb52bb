//! A cohort's results in one place: every subject's `metrics` tables gathered into one long
//! table, a per-class summary a paper can quote (n, mean, median, IQR, a bootstrap 95% CI of
//! the mean, failures and empty masks) and a per-class strip plot of Dice and HD95. The engine
//! (`src/cohort/`) runs the subjects; this module only turns their tables into these.

pub mod gather;
pub mod plot;
pub mod stats;
pub mod summary;

pub use gather::{LongRow, LongTable};
pub use summary::{summarise, SummaryRow};
