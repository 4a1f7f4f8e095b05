//! `serve --exit-with-parent`: a node whose parent is SIGKILLed (a harness killed mid-run)
//! shuts down on its own instead of running on as an orphan.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{BIN, free_port, gen_secret, wait_for};
use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::Duration;

/// True once process `pid` has exited: gone, or a zombie nobody reaped yet.
fn exited(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        // The state follows the command name, which is in parentheses.
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z') || rest.starts_with('X')),
    }
}

#[test]
fn a_node_stops_when_its_parent_is_sigkilled() {
    let root = tempfile::tempdir().unwrap();
    let secret = root.path().join("secret");
    gen_secret(&secret);
    let addr = format!("127.0.0.1:{}", free_port());
    let log = root.path().join("node.log");
    // The parent: a shell that starts the node in the background, prints its pid and waits.
    let script = format!(
        "'{BIN}' serve --id 1 --dir '{dir}' --listen {addr} --peers 1={addr} --secret-file '{secret}' --exit-with-parent >/dev/null 2>'{log}' & echo $!; wait",
        dir = root.path().join("n1").display(),
        secret = secret.display(),
        log = log.display(),
    );
    let mut parent = Command::new("sh")
        .arg("-c")
        .arg(&script)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(parent.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let pid: u32 = line.trim().parse().unwrap();
    // The line comes once the node serves (and watches its parent).
    wait_for(Duration::from_secs(30), "the node to listen", || {
        let said = std::fs::read_to_string(&log).unwrap_or_default();
        said.contains("listening on").then_some(())
    });
    assert!(TcpStream::connect(&addr).is_ok());
    assert!(!exited(pid));

    parent.kill().unwrap();
    parent.wait().unwrap();
    wait_for(
        Duration::from_secs(20),
        "the orphaned node to exit and close its port",
        || (exited(pid) && TcpStream::connect(&addr).is_err()).then_some(()),
    );
    let said = std::fs::read_to_string(&log).unwrap();
    assert!(
        said.contains("the parent process exited (--exit-with-parent): shutting down"),
        "{said}"
    );
}
