//! Membership changes on the leader: `add-node` (a learner that catches up, then a voter)
//! and `remove-node`, through openraft's `add_learner` and `change_membership`. Both are
//! idempotent, so a client may retry them after a timeout or a leader change.

use crate::server::{App, api_error, bad_request, json, not_leader};
use crate::types::{AddNodeRequest, ApiError, MembershipReply, RemoveNodeRequest};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use openraft::error::{ChangeMembershipError, ClientWriteError, Fatal, ForwardToLeader, RaftError};
use openraft::{BasicNode, ChangeMembers, StoredMembership};
use std::collections::BTreeSet;
use std::future::Future;
use std::sync::Arc;

type ChangeResult<T> = Result<T, RaftError<u64, ClientWriteError<u64, BasicNode>>>;

/// The membership this node knows, and whether it is uniform (not a joint config mid-change).
fn current(app: &App) -> (StoredMembership<u64, BasicNode>, bool) {
    let m = app.raft.metrics().borrow().membership_config.clone();
    let uniform = m.membership().get_joint_config().len() == 1;
    (m.as_ref().clone(), uniform)
}

fn reply(app: &App, already: bool) -> Response {
    let (m, _) = current(app);
    let voters: Vec<u64> = m.membership().voter_ids().collect();
    let learners = m.membership().learner_ids().collect();
    json(
        StatusCode::OK,
        &MembershipReply {
            already,
            voters,
            learners,
        },
    )
}

/// Runs one membership step within the node's time limit, mapping openraft's refusals.
async fn step<T>(
    app: &App,
    what: &str,
    f: impl Future<Output = ChangeResult<T>>,
) -> Result<T, ApiError> {
    match tokio::time::timeout(app.op_timeout, f).await {
        Err(_) => Err(ApiError::Unavailable {
            message: format!(
                "{what} did not finish within {} ms (it may still take effect; retry)",
                app.op_timeout.as_millis()
            ),
        }),
        Ok(Ok(v)) => Ok(v),
        Ok(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f)))) => Err(not_leader(f)),
        // Another change is under way: retrying later is the answer.
        Ok(Err(RaftError::APIError(ClientWriteError::ChangeMembershipError(
            e @ ChangeMembershipError::InProgress(_),
        )))) => Err(ApiError::Unavailable {
            message: e.to_string(),
        }),
        Ok(Err(RaftError::APIError(ClientWriteError::ChangeMembershipError(e)))) => {
            Err(ApiError::Conflict {
                message: e.to_string(),
            })
        }
        Ok(Err(RaftError::Fatal(f))) => Err(ApiError::Stopped {
            message: f.to_string(),
        }),
    }
}

/// `POST /cluster/add-node`: adds the node as a learner, waits (within the time limit) until
/// the leader sees it caught up, then makes it a voter.
pub async fn add_node(State(app): State<Arc<App>>, body: Bytes) -> Response {
    let req: AddNodeRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return bad_request("malformed add-node", e),
    };
    let (m, uniform) = current(&app);
    if let Some(node) = m.membership().get_node(&req.id) {
        if node.addr != req.addr {
            return api_error(&ApiError::Conflict {
                message: format!(
                    "node {} is a member at {} already; remove it before adding it at {}",
                    req.id, node.addr, req.addr
                ),
            });
        }
        if uniform && m.membership().voter_ids().any(|v| v == req.id) {
            return reply(&app, true);
        }
    }
    // A learner already (an earlier try timed out while it caught up): adding it again would
    // commit one more membership entry per retry, so only the wait is repeated.
    let since = if m.membership().get_node(&req.id).is_some() {
        Ok(m.log_id().map_or(0, |l| l.index))
    } else {
        // Not openraft's blocking wait: it calls a learner within `replication_lag_threshold`
        // (5000) entries up to date even when it has nothing, and would make a node that is
        // down a voter.
        let learner = app
            .raft
            .add_learner(req.id, BasicNode::new(&req.addr), false);
        step(&app, "adding the learner", learner)
            .await
            .map(|r| r.log_id.index)
    };
    let caught_up = match since {
        Ok(index) => {
            let wait = wait_caught_up(&app, req.id, index);
            step(&app, "catching up the new learner", wait).await
        }
        Err(e) => Err(e),
    };
    if let Err(e) = caught_up {
        if matches!(e, ApiError::Unavailable { .. }) {
            tracing::info!(node = req.id, "add-node: {e}");
        }
        return api_error(&e);
    }
    change(&app, ChangeMembers::AddVoterIds(BTreeSet::from([req.id]))).await
}

/// Waits until the leader sees learner `id` matched at least up to `index` (the entry that
/// made it a learner: it holds everything before its addition); a node that is not
/// the leader (or stops leading meanwhile) redirects. The caller's time limit bounds the wait.
async fn wait_caught_up(app: &App, id: u64, index: u64) -> ChangeResult<()> {
    let mut metrics = app.raft.metrics();
    loop {
        let matched = {
            let m = metrics.borrow_and_update();
            if let Err(fatal) = &m.running_state {
                return Err(RaftError::Fatal(fatal.clone()));
            }
            if m.current_leader != Some(m.id) {
                let leader_node = m
                    .current_leader
                    .and_then(|l| m.membership_config.membership().get_node(&l).cloned());
                return Err(RaftError::APIError(ClientWriteError::ForwardToLeader(
                    ForwardToLeader {
                        leader_id: m.current_leader,
                        leader_node,
                    },
                )));
            }
            m.replication
                .as_ref()
                .and_then(|r| r.get(&id).copied().flatten())
                .map(|l| l.index)
        };
        if matched.is_some_and(|i| i >= index) {
            return Ok(());
        }
        if metrics.changed().await.is_err() {
            return Err(RaftError::Fatal(Fatal::Stopped));
        }
    }
}

/// `POST /cluster/remove-node`: takes the node out of the membership (a voter or a learner).
pub async fn remove_node(State(app): State<Arc<App>>, body: Bytes) -> Response {
    let req: RemoveNodeRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return bad_request("malformed remove-node", e),
    };
    let (m, uniform) = current(&app);
    let ids = BTreeSet::from([req.id]);
    let members = if m.membership().voter_ids().any(|v| v == req.id) {
        ChangeMembers::RemoveVoters(ids)
    } else if m.membership().get_node(&req.id).is_some() {
        ChangeMembers::RemoveNodes(ids)
    } else if uniform {
        return reply(&app, true);
    } else {
        // Mid-change (joint config): let the change finish, then the client retries.
        return api_error(&ApiError::Unavailable {
            message: "a membership change is under way".to_owned(),
        });
    };
    change(&app, members).await
}

/// Commits `members` (removed voters are dropped, not kept as learners) and answers with the
/// membership after it.
async fn change(app: &App, members: ChangeMembers<u64, BasicNode>) -> Response {
    let commit = app.raft.change_membership(members, false);
    match step(app, "the membership change", commit).await {
        Ok(_) => reply(app, false),
        Err(e) => api_error(&e),
    }
}
