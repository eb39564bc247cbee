//! What a server keeps for exec: the installed handler, the upgraded sessions
//! (so that a shutdown ends them), and the handler's recent refusals.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, Instant};

use tokio::task::JoinSet;

use super::{ExecHandler, ExecRequest};
use crate::error::ApiError;

/// kubectl retries a refused WebSocket exec at once over SPDY; the refusal is
/// kept this long so that the retry is answered with it.
const REFUSAL_TTL: Duration = Duration::from_secs(10);
const MAX_REFUSALS: usize = 16;

#[derive(Default)]
pub(crate) struct ExecState {
    handler: RwLock<Option<Arc<dyn ExecHandler>>>,
    /// Upgraded connections outlive their HTTP connection's task.
    sessions: Mutex<JoinSet<()>>,
    refusals: Mutex<VecDeque<(Instant, ExecRequest, ApiError)>>,
}

/// The guarded data stays consistent whatever panicked while holding a lock.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl ExecState {
    pub fn set_handler(&self, handler: Arc<dyn ExecHandler>) {
        *self.handler.write().unwrap_or_else(|p| p.into_inner()) = Some(handler);
    }

    pub fn handler(&self) -> Option<Arc<dyn ExecHandler>> {
        self.handler.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn spawn_session(&self, session: impl Future<Output = ()> + Send + 'static) {
        let mut sessions = lock(&self.sessions);
        while sessions.try_join_next().is_some() {}
        sessions.spawn(session);
    }

    pub fn abort_sessions(&self) {
        lock(&self.sessions).abort_all();
    }

    /// Remembers that the handler refused `exec` before the upgrade.
    pub fn remember_refusal(&self, exec: &ExecRequest, e: &ApiError) {
        let mut refusals = lock(&self.refusals);
        refusals.retain(|(at, _, _)| at.elapsed() < REFUSAL_TTL);
        if refusals.len() == MAX_REFUSALS {
            refusals.pop_front();
        }
        refusals.push_back((Instant::now(), exec.clone(), e.clone()));
    }

    /// The handler's recent refusal of this very exec, once.
    pub fn take_refusal(&self, exec: &ExecRequest) -> Option<ApiError> {
        let mut refusals = lock(&self.refusals);
        refusals.retain(|(at, _, _)| at.elapsed() < REFUSAL_TTL);
        let i = refusals.iter().position(|(_, r, _)| r == exec)?;
        refusals.remove(i).map(|(_, _, e)| e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exec(cmd: &str) -> ExecRequest {
        ExecRequest {
            namespace: "default".into(),
            pod: "p".into(),
            container: Some("c".into()),
            command: vec![cmd.into()],
            stdin: false,
            tty: false,
        }
    }

    #[test]
    fn a_refusal_is_taken_once_and_only_for_the_same_exec() {
        let state = ExecState::default();
        state.remember_refusal(&exec("a"), &ApiError::bad_request("no"));
        assert_eq!(state.take_refusal(&exec("b")), None);
        assert_eq!(state.take_refusal(&exec("a")).map(|e| e.message), Some("no".into()));
        assert_eq!(state.take_refusal(&exec("a")), None);
        for i in 0..(MAX_REFUSALS + 4) {
            state.remember_refusal(&exec(&i.to_string()), &ApiError::bad_request("no"));
        }
        assert_eq!(state.take_refusal(&exec("0")), None, "the oldest went first");
        assert!(state.take_refusal(&exec(&(MAX_REFUSALS + 3).to_string())).is_some());
    }
}
