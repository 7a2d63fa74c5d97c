//! Pending high-risk actions and the decisions people make about them.
//!
//! A high-risk call never acts on the model's word: it records an [`Approval`] bound to the
//! tenant, the tool and the exact arguments (stored, with their digest), with the preview the
//! person will see, and answers with a link to it. Only a person (an approver of the tenant, on
//! the instance's own page, or the operator through the admin API) can move it on:
//!
//! ```text
//! pending ──approve──▶ approved ──claim──▶ running ──finish──▶ done (ok | failed)
//!    │ └──deny──▶ denied
//!    └──(time)──▶ expired
//! ```
//!
//! Every transition is a compare-and-swap made durable before the next step, so among concurrent
//! deciders exactly one wins, an action is claimed (and run) at most once, and after `kill -9`
//! an approval is found in the state it reached: `approved` (nothing was sent upstream: reported
//! as approved, not run), `running` (it may have acted: reported as such, never run again) or
//! `done`. Nothing ever moves an approval back.

use serde::{Deserialize, Serialize};

use super::kv::Tree;
use super::{StoreError, decode, encode};
use crate::domain::TenantId;

/// Where an approval stands.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum State {
    Pending,
    Approved {
        by: String,
        at: u64,
    },
    Denied {
        by: String,
        at: u64,
    },
    /// Claimed for running; the upstream call may have been made.
    Running {
        by: String,
        at: u64,
    },
    Done {
        by: String,
        at: u64,
        ok: bool,
        /// The tool's result (`ok`) or its error text.
        outcome: serde_json::Value,
    },
}

impl State {
    /// Where an approval in this state stands, whatever the time.
    pub fn standing(&self) -> Standing {
        match self {
            State::Pending => Standing::Pending,
            State::Approved { .. } => Standing::Approved,
            State::Denied { .. } => Standing::Denied,
            State::Running { .. } => Standing::Running,
            State::Done { ok: true, .. } => Standing::Done,
            State::Done { ok: false, .. } => Standing::Failed,
        }
    }
}

/// One high-risk action waiting for, or past, a person's decision.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Approval {
    pub id: String,
    pub tenant: TenantId,
    pub tool: String,
    /// The exact arguments the action runs with.
    pub args: serde_json::Map<String, serde_json::Value>,
    pub args_digest: String,
    /// What the person is shown, computed when the action was requested.
    pub preview: serde_json::Value,
    /// Who asked: the person of an OAuth connection, or the static token's tenant.
    #[serde(default)]
    pub requested_by: Option<String>,
    pub created_at: u64,
    /// Orders approvals made within the same second (nanoseconds since the epoch at request).
    #[serde(default)]
    pub seq: u64,
    pub expires_at: u64,
    pub state: State,
    /// Whether the model has been told the outcome (it is told once).
    #[serde(default)]
    pub reported: bool,
    /// The requesting call's trace context (`traceparent`), when it was traced: the decision
    /// and the run link back to it. Absent in records written before traces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace: Option<String>,
}

/// Where an approval stands as of a moment: its [`State`], with a pending one past its time
/// expired.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Standing {
    Pending,
    Expired,
    Approved,
    Denied,
    Running,
    Done,
    Failed,
}

impl Standing {
    /// As the admin API and the audit log spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Standing::Pending => "pending",
            Standing::Expired => "expired",
            Standing::Approved => "approved",
            Standing::Denied => "denied",
            Standing::Running => "running",
            Standing::Done => "done",
            Standing::Failed => "failed",
        }
    }
}

impl Approval {
    /// Where it stands as of `now`: a pending approval past its time is expired.
    pub fn standing(&self, now: u64) -> Standing {
        match self.state {
            State::Pending if self.expires_at <= now => Standing::Expired,
            ref s => s.standing(),
        }
    }
}

/// Why a transition did not happen.
#[derive(Debug, thiserror::Error)]
pub enum ApprovalError {
    #[error("no such approval here (unknown id, or it belongs to another instance)")]
    Unknown,
    #[error("this approval expired before anyone decided; nothing was done")]
    Expired,
    #[error("this approval was already decided ({})", .0.as_str())]
    AlreadyDecided(Standing),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Now in nanoseconds since the epoch: [`Approval::seq`].
pub fn seq_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// A fresh approval id: 16 random bytes, unguessable (the page needs an approver's sign-in too).
pub fn new_id() -> String {
    super::ids::random_text::<16>("apr_")
}

/// The approvals tree.
#[derive(Clone)]
pub struct Approvals {
    tree: Tree,
}

impl Approvals {
    pub fn new(tree: Tree) -> Self {
        Self { tree }
    }

    /// Records a new pending approval, durably.
    pub fn request(&self, approval: &Approval) -> Result<(), StoreError> {
        self.tree
            .insert(approval.id.as_bytes(), encode(approval)?)?;
        self.tree.flush()?;
        Ok(())
    }

    pub fn get(&self, id: &str) -> Result<Option<Approval>, StoreError> {
        if id.len() > 64 {
            return Ok(None);
        }
        self.tree
            .get(id.as_bytes())?
            .map(|v| decode(&v))
            .transpose()
    }

    /// Every approval of `tenant` (or all), newest first.
    pub fn list(&self, tenant: Option<&TenantId>) -> Result<Vec<Approval>, StoreError> {
        let mut all = Vec::new();
        for (_, value) in self.tree.iter()? {
            let a: Approval = decode(&value)?;
            if tenant.is_none_or(|t| &a.tenant == t) {
                all.push(a);
            }
        }
        all.sort_by(|a, b| (b.created_at, b.seq, &b.id).cmp(&(a.created_at, a.seq, &a.id)));
        Ok(all)
    }

    /// The newest approval for exactly this action (tenant, tool, argument digest).
    pub fn latest_for(
        &self,
        tenant: &TenantId,
        tool: &str,
        digest: &str,
    ) -> Result<Option<Approval>, StoreError> {
        Ok(self
            .list(Some(tenant))?
            .into_iter()
            .find(|a| a.tool == tool && a.args_digest == digest))
    }

    /// Applies `change` to the approval with a compare-and-swap, durably; `change` refuses by
    /// returning an error. Concurrent callers: exactly one sees each transition succeed.
    fn transition(
        &self,
        id: &str,
        change: impl Fn(&Approval) -> Result<Approval, ApprovalError>,
    ) -> Result<Approval, ApprovalError> {
        loop {
            let Some(current) = self.tree.get(id.as_bytes())? else {
                return Err(ApprovalError::Unknown);
            };
            let next = change(&decode(&current)?)?;
            let swapped =
                self.tree
                    .compare_and_swap(id.as_bytes(), Some(&current), Some(&encode(&next)?))?;
            if swapped {
                self.tree.flush()?;
                return Ok(next);
            }
        }
    }

    /// A person's (or the operator's) decision on a pending approval.
    pub fn decide(
        &self,
        id: &str,
        approve: bool,
        by: &str,
        now: u64,
    ) -> Result<Approval, ApprovalError> {
        self.transition(id, |a| {
            match a.standing(now) {
                Standing::Pending => {}
                Standing::Expired => return Err(ApprovalError::Expired),
                other => return Err(ApprovalError::AlreadyDecided(other)),
            }
            let mut next = a.clone();
            next.state = if approve {
                State::Approved {
                    by: by.to_owned(),
                    at: now,
                }
            } else {
                State::Denied {
                    by: by.to_owned(),
                    at: now,
                }
            };
            Ok(next)
        })
    }

    /// Claims an approved action for running: exactly once, ever.
    pub fn claim(&self, id: &str, now: u64) -> Result<Approval, ApprovalError> {
        self.transition(id, |a| match &a.state {
            State::Approved { by, .. } => {
                let mut next = a.clone();
                next.state = State::Running {
                    by: by.clone(),
                    at: now,
                };
                Ok(next)
            }
            other => Err(ApprovalError::AlreadyDecided(other.standing())),
        })
    }

    /// Records what running the action gave.
    pub fn finish(
        &self,
        id: &str,
        ok: bool,
        outcome: serde_json::Value,
        now: u64,
    ) -> Result<Approval, ApprovalError> {
        self.transition(id, |a| match &a.state {
            State::Running { by, .. } => {
                let mut next = a.clone();
                next.state = State::Done {
                    by: by.clone(),
                    at: now,
                    ok,
                    outcome: outcome.clone(),
                };
                Ok(next)
            }
            other => Err(ApprovalError::AlreadyDecided(other.standing())),
        })
    }

    /// Marks the outcome as told to the model.
    pub fn mark_reported(&self, id: &str) -> Result<(), ApprovalError> {
        self.transition(id, |a| {
            let mut next = a.clone();
            next.reported = true;
            Ok(next)
        })
        .map(|_| ())
    }

    /// Drops every approval of `tenant` (the tenant is being removed).
    pub fn forget_tenant(&self, tenant: &TenantId) -> Result<(), StoreError> {
        for (key, value) in self.tree.iter()? {
            if decode::<Approval>(&value).is_ok_and(|a| &a.tenant == tenant) {
                self.tree.remove(key)?;
            }
        }
        self.tree.flush()?;
        Ok(())
    }

    /// Deletes approvals finished or expired more than `keep_secs` ago.
    pub fn sweep(&self, now: u64, keep_secs: u64) -> Result<(), StoreError> {
        for (key, value) in self.tree.iter()? {
            let old = decode::<Approval>(&value).is_ok_and(|a| {
                let settled_at = match a.state {
                    State::Pending => a.expires_at,
                    State::Denied { at, .. } | State::Done { at, .. } => at,
                    // Approved-not-run and running stay until the operator has seen them.
                    State::Approved { .. } | State::Running { .. } => return false,
                };
                settled_at.saturating_add(keep_secs) <= now
            });
            if old {
                self.tree.remove(key)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::kv::Db;

    fn approvals() -> (tempfile::TempDir, Approvals) {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::embedded(dir.path()).unwrap();
        (dir, Approvals::new(db.open_tree("a").unwrap()))
    }

    fn pending(id: &str, expires_at: u64) -> Approval {
        Approval {
            id: id.into(),
            tenant: TenantId::parse("acme").unwrap(),
            tool: "dns_create_record".into(),
            args: serde_json::Map::new(),
            args_digest: "d1".into(),
            preview: serde_json::json!({}),
            requested_by: None,
            created_at: 1,
            seq: 0,
            expires_at,
            state: State::Pending,
            reported: false,
            trace: None,
        }
    }

    #[test]
    fn a_record_written_before_traces_still_reads_and_one_after_keeps_its_context() {
        // An approval as the release before trace export wrote it: no `trace` field.
        let mut before = serde_json::to_value(pending("old", 100)).unwrap();
        before.as_object_mut().unwrap().remove("trace");
        let read: Approval = crate::store::decode(&crate::store::encode(&before).unwrap()).unwrap();
        assert_eq!(read.id, "old");
        assert_eq!(read.trace, None);
        let traced = Approval {
            trace: Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into()),
            ..pending("new", 100)
        };
        let read: Approval = crate::store::decode(&crate::store::encode(&traced).unwrap()).unwrap();
        assert_eq!(read.trace, traced.trace);
    }

    #[test]
    fn an_approval_moves_forward_once_and_never_back() {
        let (_d, a) = approvals();
        a.request(&pending("x", 100)).unwrap();
        assert!(matches!(
            a.claim("x", 2),
            Err(ApprovalError::AlreadyDecided(Standing::Pending))
        ));
        a.decide("x", true, "p1", 2).unwrap();
        assert!(matches!(
            a.decide("x", false, "p2", 3),
            Err(ApprovalError::AlreadyDecided(Standing::Approved))
        ));
        a.claim("x", 3).unwrap();
        assert!(matches!(
            a.claim("x", 4),
            Err(ApprovalError::AlreadyDecided(Standing::Running))
        ));
        a.finish("x", true, serde_json::json!({"ok": 1}), 5)
            .unwrap();
        assert_eq!(a.get("x").unwrap().unwrap().standing(6), Standing::Done);
        assert!(matches!(
            a.decide("nope", true, "p", 1),
            Err(ApprovalError::Unknown)
        ));
    }

    #[test]
    fn expired_and_denied_approvals_never_run() {
        let (_d, a) = approvals();
        a.request(&pending("late", 10)).unwrap();
        assert!(matches!(
            a.decide("late", true, "p", 10),
            Err(ApprovalError::Expired)
        ));
        a.request(&pending("no", 10)).unwrap();
        a.decide("no", false, "p", 5).unwrap();
        assert!(matches!(
            a.claim("no", 6),
            Err(ApprovalError::AlreadyDecided(Standing::Denied))
        ));
    }

    #[test]
    fn of_concurrent_claims_exactly_one_wins() {
        let (_d, a) = approvals();
        a.request(&pending("x", 100)).unwrap();
        a.decide("x", true, "p", 2).unwrap();
        let wins = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|_| s.spawn(|| a.claim("x", 3).is_ok()))
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap())
                .filter(|won| *won)
                .count()
        });
        assert_eq!(wins, 1);
    }
}
