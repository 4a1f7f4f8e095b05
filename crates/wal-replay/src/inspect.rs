//! Read-only tools over a data directory, for operators and tooling rather than engines (the
//! `walctl` commands, a point-in-time look at a copy): replaying without changing anything
//! ([`replay_read_only`], reporting what [`crate::recover`] would do, the [`DataDirPlan`] it
//! would execute included), the log's identity
//! ([`read_log_id`]), the names of a data directory's two subdirectories ([`LOG_DIR`],
//! [`SNAPSHOT_DIR`]; [`crate::DataDir`] builds the paths) and the assembler that turns frames
//! into transactions ([`TransactionAssembler`]). Nothing here takes a lock or writes.

pub use crate::logscan::TransactionAssembler;
pub use crate::recover::{
    DataDirPlan, LOG_DIR, SNAPSHOT_DIR, read_log_id, replay_read_only, replay_read_only_with_codec,
};
