//! `raft-kv serve`: one node. Its data directory holds the identity file, the Raft log
//! (`log/`, a walrus write-ahead log through wal-raft) and the state machine's snapshots
//! (`sm/`). The node leaves service (exits 1, loudly) when its Raft stops on a fatal error,
//! such as a log poisoned by a failed write or fsync.

use crate::auth::Verifier;
use crate::batcher::Batcher;
use crate::identity::{self, Identity};
use crate::mem_log::MemLog;
use crate::network::NetworkFactory;
use crate::peers::Peers;
use crate::secret::Secret;
use crate::server::{self, App};
use crate::state_machine::{KvState, NodeStateMachine};
use crate::types::{Raft, StateMachine};
use crate::{Error, StoreKind};
use openraft::{Config, SnapshotPolicy};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use wal_log::Wal;
use wal_raft::{LogStore, LogStoreOptions};

/// How a node is run.
pub struct ServeOptions {
    /// Its id.
    pub id: u64,
    /// Its data directory.
    pub dir: PathBuf,
    /// The address it listens on.
    pub listen: String,
    /// Every node of the cluster.
    pub peers: Peers,
    /// Where its log lives.
    pub store: StoreKind,
    /// Entries between snapshots.
    pub snapshot_every: u64,
    /// How long a write or read may wait for a majority.
    pub op_timeout: Duration,
    /// Stop when the process that started this one exits.
    pub exit_with_parent: bool,
}

/// How often `--exit-with-parent` looks at the parent process id.
const PARENT_POLL: Duration = Duration::from_millis(100);

/// openraft's configuration for a node: heartbeats every 100 ms, elections after 400-800 ms
/// of silence (a shared 2-core machine delays heartbeats by tens of ms; shorter timeouts
/// made needless elections), a snapshot every `snapshot_every` entries, after which the log
/// is purged but for the newest tenth (so a briefly lagging follower catches up from the log).
fn raft_config(snapshot_every: u64) -> Result<Config, Error> {
    Config {
        cluster_name: "raft-kv".to_owned(),
        heartbeat_interval: 100,
        election_timeout_min: 400,
        election_timeout_max: 800,
        snapshot_policy: SnapshotPolicy::LogsSinceLast(snapshot_every),
        max_in_snapshot_log_to_keep: snapshot_every / 10,
        snapshot_max_chunk_size: 1 << 20,
        ..Config::default()
    }
    .validate()
    .map_err(|e| Error::Usage(format!("bad Raft configuration: {e}")))
}

/// The state machine, durable (snapshots in `dir/sm`) or, for `--store memory`, in a
/// temporary directory removed at exit.
fn open_state_machine(
    dir: &Path,
    kind: StoreKind,
) -> Result<(StateMachine, Option<tempfile::TempDir>), Error> {
    let vfs = Arc::new(wal_log::StdVfs);
    match kind {
        StoreKind::Wal => Ok((
            StateMachine::open(dir.join("sm"), KvState::default(), vfs)?,
            None,
        )),
        StoreKind::Memory => {
            let temp = tempfile::tempdir().map_err(|e| Error::Io {
                op: "create a temporary directory",
                source: e,
            })?;
            let sm = StateMachine::open(temp.path(), KvState::default(), vfs)?;
            Ok((sm, Some(temp)))
        }
    }
}

/// Runs a node until SIGTERM/SIGINT, or until its Raft stops on a fatal error.
///
/// # Errors
/// A refused data directory (exit 2), a listen address that cannot be bound, a store that
/// does not open, a fatal Raft error.
pub async fn serve(opts: ServeOptions, secret: Secret) -> Result<(), Error> {
    // Taken first: a parent that dies while the store opens must count as gone.
    let parent = std::os::unix::process::parent_id();
    if opts.peers.addr(opts.id).is_none() {
        return Err(Error::Usage(format!(
            "--id {} is not one of --peers {}",
            opts.id, opts.peers
        )));
    }
    if opts.snapshot_every == 0 {
        return Err(Error::Usage(
            "--snapshot-every must be at least 1".to_owned(),
        ));
    }
    let want = Identity {
        cluster: secret.cluster_id(),
        node: opts.id,
    };
    identity::check_or_claim(&opts.dir, &want)?;
    // A file-size limit (RLIMIT_FSIZE) reached must be an I/O error (EFBIG) that poisons the
    // log and takes the node out of service loudly, not a silent kill by SIGXFSZ.
    let _xfsz =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::from_raw(libc::SIGXFSZ))
            .map_err(|e| Error::Io {
                op: "handle SIGXFSZ",
                source: e,
            })?;
    // Bound before the store opens: a taken address fails fast, with nothing started.
    let listener = tokio::net::TcpListener::bind(&opts.listen)
        .await
        .map_err(|e| Error::Io {
            op: "bind the listen address",
            source: e,
        })?;
    let local = listener.local_addr().map_err(|e| Error::Io {
        op: "read the listen address",
        source: e,
    })?;
    let secret = Arc::new(secret);
    let (raft, sm, wal, _temp) = start_raft(&opts, secret.clone()).await?;
    let app = Arc::new(App {
        raft: raft.clone(),
        sm,
        wal,
        verifier: Verifier::new((*secret).clone()),
        op_timeout: opts.op_timeout,
        writes: Batcher::start(raft.clone(), opts.op_timeout),
    });
    let (stop_tx, stop_rx) = watch::channel(None::<String>);
    tokio::spawn(watch_fatal(raft.clone(), stop_tx.clone()));
    if opts.exit_with_parent {
        tokio::spawn(watch_parent(parent, stop_tx.clone()));
    }
    tokio::spawn(watch_signals(stop_tx));
    // The harness waits for this line: the socket accepts connections from here on.
    eprintln!("raft-kv: node {} listening on {local}", opts.id);
    let mut stopped = stop_rx.clone();
    let served = axum::serve(
        listener,
        server::router(app).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async move {
        // A closed channel also means stop.
        let _ = stopped.wait_for(Option::is_some).await;
    })
    .await;
    let reason = stop_rx.borrow().clone();
    // Raft's own shutdown error adds nothing to the reason already known.
    let _ = raft.shutdown().await;
    served.map_err(|e| Error::Io {
        op: "serve",
        source: e,
    })?;
    match reason {
        Some(r) if r.starts_with("fatal") => Err(Error::Fatal(r)),
        _ => Ok(()),
    }
}

/// The node's stores and its Raft: the state machine, and the log on `dir/log` (or in
/// memory), whose write-ahead log is returned for its counters; for `--store memory`, the
/// temporary directory that must live as long as the node.
async fn start_raft(
    opts: &ServeOptions,
    secret: Arc<Secret>,
) -> Result<
    (
        Raft,
        StateMachine,
        Option<Arc<Wal>>,
        Option<tempfile::TempDir>,
    ),
    Error,
> {
    let config = Arc::new(raft_config(opts.snapshot_every)?);
    let http = crate::http::client().map_err(|e| Error::Io {
        op: "set up HTTP",
        source: std::io::Error::other(e),
    })?;
    let network = NetworkFactory::new(opts.id, http, secret);
    let (sm, temp) = open_state_machine(&opts.dir, opts.store)?;
    let node_sm = NodeStateMachine {
        inner: sm.clone(),
        id: opts.id,
    };
    let (raft, wal) = match opts.store {
        StoreKind::Wal => {
            let (log, report) = LogStore::open(opts.dir.join("log"), LogStoreOptions::default())?;
            tracing::info!(?report, "opened the Raft log");
            let wal = log.wal_handle();
            let raft = Raft::new(opts.id, config, network, log, node_sm).await?;
            (raft, Some(wal))
        }
        StoreKind::Memory => {
            tracing::warn!(
                "--store memory: the Raft log and state are in memory only, NOT durable"
            );
            let raft = Raft::new(opts.id, config, network, MemLog::default(), node_sm).await?;
            (raft, None)
        }
    };
    Ok((raft, sm, wal, temp))
}

/// Stops the node when its Raft stops on a fatal error (a poisoned log, say): it leaves
/// service loudly instead of answering every request with the same error.
async fn watch_fatal(raft: Raft, stop: watch::Sender<Option<String>>) {
    let mut metrics = raft.metrics();
    loop {
        if let Err(fatal) = &metrics.borrow_and_update().running_state {
            if stop.borrow().is_some() {
                // Stopping already (a signal): Raft's stop is ours, not a failure.
                return;
            }
            tracing::error!(%fatal, "Raft stopped on a fatal error: this node leaves service");
            let _ = stop.send(Some(format!("fatal: {fatal}")));
            return;
        }
        if metrics.changed().await.is_err() {
            return;
        }
    }
}

/// Stops the node gracefully on SIGTERM or SIGINT.
async fn watch_signals(stop: watch::Sender<Option<String>>) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot install signal handlers; stop the node with SIGKILL");
        return;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    tracing::info!("signal received: shutting down");
    let _ = stop.send(Some("signal".to_owned()));
}

/// Stops the node gracefully once `parent`, the process that started it, has exited (the
/// node was handed to another parent): a harness killed by SIGKILL leaves no node running. Without
/// `unsafe` there is no death signal to ask for, so the parent's id is looked at now and then.
async fn watch_parent(parent: u32, stop: watch::Sender<Option<String>>) {
    let mut tick = tokio::time::interval(PARENT_POLL);
    loop {
        tick.tick().await;
        let now = std::os::unix::process::parent_id();
        if now != parent {
            tracing::warn!(
                parent,
                now,
                "the parent process exited (--exit-with-parent): shutting down"
            );
            let _ = stop.send(Some("parent exited".to_owned()));
            return;
        }
    }
}
