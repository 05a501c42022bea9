//! What a run means and what a check is: the per-run verdict from thresholds ([`assess`]),
//! the run as every reader sees it ([`record`]), the damped state of a check and its
//! transitions ([`damping`]), cold starts ([`startup`]), and the live picture of all checks ([`board`]).

pub mod assess;
pub mod board;
pub mod damping;
pub mod record;
pub mod startup;

pub use assess::{Assessment, Status, assess};
pub use board::{Board, Entry, Observed, SPARK, Saved, gap_marks};
pub use damping::{CheckState, Tracker, Transition};
pub use record::RunRecord;
pub use startup::StartUp;
