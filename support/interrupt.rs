//! The run's interruption: the first SIGINT or SIGTERM asks every wait and
//! tool in flight to stop and every scenario not yet started to fail at once,
//! so that the run still writes whole reports; a second signal exits at once.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

use tokio::sync::watch;

static STATE: OnceLock<watch::Sender<bool>> = OnceLock::new();
static SEEN: AtomicBool = AtomicBool::new(false);

fn state() -> &'static watch::Sender<bool> {
    STATE.get_or_init(|| watch::channel(false).0)
}

/// Whether the run was asked to stop.
pub fn is_interrupted() -> bool {
    SEEN.load(Ordering::SeqCst)
}

/// Ask everything in flight to stop.
pub fn interrupt() {
    SEEN.store(true, Ordering::SeqCst);
    state().send_replace(true);
}

/// Resolves once the run is asked to stop (at once if it already was).
pub async fn interrupted() {
    let mut rx = state().subscribe();
    let _ = rx.wait_for(|v| *v).await;
}

static LAST_WORDS: std::sync::Mutex<Option<String>> = std::sync::Mutex::new(None);

/// What a second signal prints before exiting (the reap line, once a ledger exists).
pub fn set_last_words(text: String) {
    *LAST_WORDS.lock().unwrap_or_else(|p| p.into_inner()) = Some(text);
}

/// Listen for SIGINT and SIGTERM: the first calls `interrupt` and says so; the
/// second prints the last words (e.g. the reap line) and exits with 130 at once.
pub fn install() -> std::io::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::spawn(async move {
        for n in 0.. {
            tokio::select! {
                _ = term.recv() => {},
                _ = int.recv() => {},
            }
            if n == 0 {
                eprintln!(
                    "interrupted: stopping the steps in flight and writing the reports (signal again to exit at once)"
                );
                interrupt();
            } else {
                eprintln!("interrupted again: exiting now; the reports of this run are not written");
                if let Some(words) = LAST_WORDS.lock().unwrap_or_else(|p| p.into_inner()).as_deref() {
                    eprintln!("{words}");
                }
                std::process::exit(130);
            }
        }
    });
    Ok(())
}

/// The panic payload of a scenario refused because the run was interrupted;
/// the panic hook keeps it quiet (it is the run stopping, not a bug).
pub const NOT_STARTED: &str = "not started: the run was interrupted";

/// Keep `NOT_STARTED` panics out of stderr; every other panic is shown as before.
pub fn quiet_panic_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if info.payload().downcast_ref::<&str>() == Some(&NOT_STARTED) {
                return;
            }
            previous(info);
        }));
    });
}
