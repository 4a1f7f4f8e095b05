//! Read-only tools over a data directory, for operators and tooling rather than engines (the
//! `walctl` commands, a point-in-time look at a copy): replaying without changing anything
//! ([`replay_read_only`], reporting what [`crate::recover`] would do, the [`DataDirPlan`] it
//! would execute included), what a repair of the log alone would do to the snapshots
//! ([`plan_repair`]; [`DataDirPlan::set_aside_snapshots`] carries it out), the log's identity
//! ([`read_log_id`]), the names of a data directory's two subdirectories ([`LOG_DIR`],
//! [`SNAPSHOT_DIR`]; [`crate::DataDir`] builds the paths) and the assembler that turns frames
//! into transactions ([`TransactionAssembler`]). Nothing here takes a lock or writes.

pub use crate::logscan::TransactionAssembler;
pub use crate::recover::{
    DataDirPlan, LOG_DIR, SNAPSHOT_DIR, plan_repair, read_log_id, replay_read_only,
    replay_read_only_with_codec,
};
