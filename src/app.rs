//! Temporary re-exports for the modules outside `commands` that still name `crate::app`.

// temporary: join/run.rs still names crate::app (the lead removes it)
// image.rs (apply, run_one, configure_runtime) returns crate::app::AppError too: it needs the same change
pub use crate::commands::AppError;
