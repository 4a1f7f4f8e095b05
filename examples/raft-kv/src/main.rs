//! `raft-kv`: the kv example's ordered map replicated by openraft over HTTP, three (or more)
//! processes, each keeping its Raft log in walrus (wal-raft). See the README for the
//! commands; in short:
//!
//! ```text
//! raft-kv gen-secret PATH
//! raft-kv serve --id N --dir D --listen HOST:PORT --peers 1=H:P,2=H:P,3=H:P --secret-file F
//!               [--store wal|memory] [--snapshot-every ENTRIES] [--op-timeout-ms MS]
//!               [--exit-with-parent]
//! raft-kv init | put K V | get K | del K | scan | status [--json] | local-scan --node N
//!        | load --count N [--start S] [--value-size B] [--clients C]
//!        | add-node --id N --addr HOST:PORT | remove-node --id N
//!        (all with --peers ... --secret-file F [--timeout SECS])
//! ```
//!
//! Exit codes: 0 ok, 1 operational error (unreachable, timeout, no leader, a node leaving
//! service), 2 bad usage, a refused data directory, or an authentication/secret problem.
#![forbid(unsafe_code)]

use clap::{Args, Parser, Subcommand};
use kv::store::KvEvent;
use raft_kv::client::{Client, ClientError};
use raft_kv::peers::Peers;
use raft_kv::server::paths;
use raft_kv::types::{
    AddNodeRequest, GetReply, GetRequest, InitReply, InitRequest, MembershipReply,
    RemoveNodeRequest, ScanReply, WriteReply,
};
use raft_kv::{Error, StoreKind, load, node, secret, status};
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

#[derive(Parser, Debug)]
#[command(
    name = "raft-kv",
    version,
    about = "A replicated ordered key-value store: openraft over HTTP, walrus underneath"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// The flags every command that talks to the cluster takes.
#[derive(Args, Debug)]
struct Conn {
    /// Every node: `1=HOST:PORT,2=HOST:PORT,3=HOST:PORT`.
    #[arg(long, global = true)]
    peers: Option<Peers>,
    /// The file holding the cluster secret (`raft-kv gen-secret` makes one).
    #[arg(long, global = true)]
    secret_file: Option<PathBuf>,
    /// Give up on a request after this many seconds (per key for `load`).
    #[arg(long, global = true, default_value_t = 10.0)]
    timeout: f64,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Write a new cluster secret (32 random bytes, hex) to PATH, mode 0600.
    GenSecret { path: PathBuf },
    /// Run a node until SIGTERM/SIGINT.
    Serve {
        /// This node's id (one of --peers).
        #[arg(long)]
        id: u64,
        /// Its data directory (created when missing).
        #[arg(long)]
        dir: PathBuf,
        /// The address to listen on, HOST:PORT (use 127.0.0.1 unless told otherwise).
        #[arg(long)]
        listen: String,
        /// Where the Raft log lives.
        #[arg(long, value_enum, default_value_t = StoreKind::Wal)]
        store: StoreKind,
        /// Log entries between snapshots (the log is purged after each).
        #[arg(long, default_value_t = 10_000)]
        snapshot_every: u64,
        /// How long a write or linearizable read waits for a majority, in milliseconds.
        #[arg(long, default_value_t = 3000)]
        op_timeout_ms: u64,
        /// Shut down (as on SIGTERM) when the process that started this one exits, so a
        /// harness that is killed leaves no node running.
        #[arg(long)]
        exit_with_parent: bool,
        #[command(flatten)]
        conn: Conn,
    },
    /// Initialise the membership to every node of --peers (once).
    Init {
        #[command(flatten)]
        conn: Conn,
    },
    /// Add node ID at ADDR: a learner until it caught up, then a voter (run `serve` on it
    /// first; retry with a longer --timeout while it catches up).
    AddNode {
        /// The new node's id.
        #[arg(long)]
        id: u64,
        /// Its listen address, HOST:PORT.
        #[arg(long)]
        addr: String,
        #[command(flatten)]
        conn: Conn,
    },
    /// Take node ID out of the membership (then stop it).
    RemoveNode {
        /// The node's id.
        #[arg(long)]
        id: u64,
        #[command(flatten)]
        conn: Conn,
    },
    /// Set KEY to VALUE (answered once committed).
    Put {
        key: String,
        value: String,
        #[command(flatten)]
        conn: Conn,
    },
    /// Print KEY's value (a linearizable read); exit 1 when absent.
    Get {
        key: String,
        #[command(flatten)]
        conn: Conn,
    },
    /// Remove KEY (answered once committed).
    Del {
        key: String,
        #[command(flatten)]
        conn: Conn,
    },
    /// Print every key and value, sorted, as KEY<TAB>VALUE lines (linearizable).
    Scan {
        #[command(flatten)]
        conn: Conn,
    },
    /// Print the leader, term, commit index and each node's matched and applied index.
    Status {
        /// One JSON object instead of text.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        conn: Conn,
    },
    /// Print node N's own applied state: `applied INDEX`, then KEY<TAB>VALUE lines.
    LocalScan {
        /// The node to ask (only it: no leader, no redirect).
        #[arg(long)]
        node: u64,
        #[command(flatten)]
        conn: Conn,
    },
    /// Put keys k<i> for i in START..START+COUNT from CLIENTS concurrent tasks; print
    /// `ack k<i>` once each is committed.
    Load {
        #[command(flatten)]
        keys: kv::LoadKeys,
        /// Concurrent client tasks.
        #[arg(long, default_value_t = 1)]
        clients: u64,
        #[command(flatten)]
        conn: Conn,
    },
}

impl Conn {
    fn client(self) -> Result<Client, Error> {
        let secret = self.secret()?;
        let peers = self
            .peers
            .ok_or_else(|| Error::Usage("--peers is required".to_owned()))?;
        if !(self.timeout.is_finite() && self.timeout > 0.0) {
            return Err(Error::Usage(format!(
                "--timeout {}: must be a positive number of seconds",
                self.timeout
            )));
        }
        Ok(Client::new(
            peers,
            secret,
            Duration::from_secs_f64(self.timeout),
        )?)
    }

    fn secret(&self) -> Result<secret::Secret, Error> {
        let path = self.secret_file.as_ref().ok_or_else(|| {
            Error::Usage("--secret-file is required (the cluster is closed: make a secret with `raft-kv gen-secret PATH`)".to_owned())
        })?;
        Ok(secret::Secret::load(path)?)
    }
}

/// Writes `text` to stdout; a closed stdout is an error, not a panic.
fn print(text: &str) -> Result<(), Error> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|e| Error::Io {
            op: "write to stdout",
            source: e,
        })
}

fn scan_text(entries: &[(String, String)]) -> String {
    entries.iter().map(|(k, v)| format!("{k}\t{v}\n")).collect()
}

async fn run(cli: Cli) -> Result<ExitCode, Error> {
    match cli.command {
        Command::GenSecret { path } => secret::generate(&path)?,
        Command::Serve {
            id,
            dir,
            listen,
            store,
            snapshot_every,
            op_timeout_ms,
            exit_with_parent,
            conn,
        } => {
            let secret = conn.secret()?;
            let peers = conn
                .peers
                .ok_or_else(|| Error::Usage("--peers is required".to_owned()))?;
            let op_timeout = Duration::from_millis(op_timeout_ms.max(1));
            let opts = node::ServeOptions {
                id,
                dir,
                listen,
                peers,
                store,
                snapshot_every,
                op_timeout,
                exit_with_parent,
            };
            node::serve(opts, secret).await?;
        }
        Command::Init { conn } => {
            let client = conn.client()?;
            let req = InitRequest {
                nodes: client.peers().map().clone(),
            };
            let r: InitReply = client.call(paths::INIT, &req).await?;
            let members: Vec<String> = client.peers().ids().map(|i| i.to_string()).collect();
            let what = if r.already {
                "was initialised already with"
            } else {
                "initialised with"
            };
            eprintln!(
                "raft-kv: the cluster {what} members {{{}}}",
                members.join(",")
            );
        }
        Command::AddNode { id, addr, conn } => {
            // The same checks as a --peers entry.
            format!("{id}={addr}")
                .parse::<Peers>()
                .map_err(Error::Usage)?;
            let req = AddNodeRequest { id, addr };
            let r: MembershipReply = conn.client()?.call(paths::ADD_NODE, &req).await?;
            eprintln!("raft-kv: node {id} {}", membership_text(&r, "is a voter"));
        }
        Command::RemoveNode { id, conn } => {
            let req = RemoveNodeRequest { id };
            let r: MembershipReply = conn.client()?.call(paths::REMOVE_NODE, &req).await?;
            eprintln!("raft-kv: node {id} {}", membership_text(&r, "is no member"));
        }
        Command::Put { key, value, conn } => {
            let r: WriteReply = conn
                .client()?
                .call(paths::WRITE, &KvEvent::Put { key, value })
                .await?;
            eprintln!("committed at index {}", r.index);
        }
        Command::Del { key, conn } => {
            let r: WriteReply = conn
                .client()?
                .call(paths::WRITE, &KvEvent::Del { key })
                .await?;
            eprintln!("committed at index {}", r.index);
        }
        Command::Get { key, conn } => {
            let r: GetReply = conn.client()?.call(paths::GET, &GetRequest { key }).await?;
            match r.value {
                Some(v) => print(&format!("{v}\n"))?,
                None => return Ok(ExitCode::from(1)),
            }
        }
        Command::Scan { conn } => {
            let r: ScanReply = conn.client()?.call(paths::SCAN, &()).await?;
            print(&scan_text(&r.entries))?;
        }
        Command::LocalScan { node, conn } => local_scan(node, conn).await?,
        Command::Status { json, conn } => print_status(json, conn).await?,
        Command::Load {
            keys,
            clients,
            conn,
        } => {
            let client = Arc::new(conn.client()?);
            let opts = load::LoadOptions {
                count: keys.count,
                start: keys.start,
                value_size: keys.value_size,
                clients,
            };
            let summary = load::run(client, &opts).await?;
            eprintln!("{}", summary.line());
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn membership_text(r: &MembershipReply, done: &str) -> String {
    let ids = |v: &[u64]| v.iter().map(u64::to_string).collect::<Vec<_>>().join(",");
    let already = if r.already { " already" } else { "" };
    format!(
        "{done}{already}: voters {{{}}}, learners {{{}}}",
        ids(&r.voters),
        ids(&r.learners)
    )
}

/// `local-scan --node N`: node N's own state, asked of it alone.
async fn local_scan(node: u64, conn: Conn) -> Result<(), Error> {
    let client = conn.client()?;
    if client.peers().addr(node).is_none() {
        return Err(Error::Usage(format!("--node {node} is not one of --peers")));
    }
    let r: ScanReply = client.call_node(node, paths::LOCAL_SCAN).await?;
    let applied = r.applied.map_or_else(|| "-".to_owned(), |a| a.to_string());
    print(&format!("applied {applied}\n{}", scan_text(&r.entries)))
}

/// `status [--json]`; an error (exit 1) when no node answered, after printing what it knows.
async fn print_status(json: bool, conn: Conn) -> Result<(), Error> {
    let s = status::gather(&conn.client()?).await;
    let text = if json {
        serde_json::to_string(&s).map_err(|e| Error::Io {
            op: "encode the status",
            source: e.into(),
        })? + "\n"
    } else {
        status::render(&s)
    };
    print(&text)?;
    if s.nodes.iter().all(|n| !n.reachable) {
        return Err(Error::Client(ClientError::Local(
            "no node answered".to_owned(),
        )));
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,openraft=warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("raft-kv: error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            let mut msg = format!("raft-kv: error: {e}");
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                msg.push_str(&format!(": {s}"));
                source = s.source();
            }
            eprintln!("{msg}");
            ExitCode::from(e.exit_code())
        }
    }
}
