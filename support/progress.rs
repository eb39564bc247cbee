//! Progress of long waits, on stderr (never in a report). On a terminal one
//! line is redrawn in place: what is awaited, the last state seen, the time
//! left. Elsewhere (CI logs) plain timestamped lines, rarely. Nothing is shown
//! for waits that end within a few seconds, which is every wait on the twin.
//! `MESHSPEC_PROGRESS=off|lines|terminal` overrides the choice.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Style {
    /// One line redrawn in place with `\r`.
    Terminal,
    /// Plain timestamped lines.
    Lines,
    Off,
}

impl Style {
    /// From MESHSPEC_PROGRESS, else whether stderr is a terminal.
    pub fn detect() -> Style {
        match std::env::var("MESHSPEC_PROGRESS").as_deref() {
            Ok("off") => Style::Off,
            Ok("lines") => Style::Lines,
            Ok("terminal") => Style::Terminal,
            _ if std::io::stderr().is_terminal() => Style::Terminal,
            _ => Style::Lines,
        }
    }

    /// When the first report is due, and how often after it.
    pub fn schedule(self) -> Option<(Duration, Duration)> {
        match self {
            Style::Terminal => Some((Duration::from_secs(3), Duration::from_secs(1))),
            Style::Lines => Some((Duration::from_secs(15), Duration::from_secs(30))),
            Style::Off => None,
        }
    }
}

/// Whether a wait that has lasted `elapsed`, last reported at `last`, is due a report.
pub fn due(style: Style, elapsed: Duration, last: Option<Duration>) -> bool {
    let Some((first, every)) = style.schedule() else { return false };
    match last {
        None => elapsed >= first,
        Some(l) => elapsed >= first && elapsed.saturating_sub(l) >= every,
    }
}

fn one_line(s: &str, max: usize) -> String {
    let flat: String = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() <= max {
        return flat;
    }
    let mut cut: String = flat.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// Where a wait stands.
pub struct Snapshot<'a> {
    pub what: &'a str,
    pub elapsed: Duration,
    pub timeout: Duration,
    pub last_seen: &'a str,
    /// Other waits in progress.
    pub others: usize,
}

/// The report of a wait. On a terminal it fits `width` columns; a line is
/// whole and ends in a newline.
pub fn render(style: Style, now: DateTime<Utc>, s: &Snapshot, width: usize) -> String {
    let Snapshot { what, elapsed, timeout, last_seen, others } = *s;
    let (e, t) = (elapsed.as_secs(), timeout.as_secs());
    let left = timeout.saturating_sub(elapsed).as_secs();
    let last_seen = crate::report::redact::redact_text(last_seen);
    match style {
        Style::Terminal => {
            let more = if others > 0 { format!(" (+{others} more)") } else { String::new() };
            let head = format!("waiting {e}s/{t}s, {left}s left{more}: ");
            // What is awaited gets half the room left, the last state the rest.
            let room = width.saturating_sub(head.chars().count() + 1);
            let what = one_line(what, (room / 2).max(20));
            let tail = one_line(&last_seen, room.saturating_sub(what.chars().count() + 14).max(10));
            format!("\r\x1b[2K{}", one_line(&format!("{head}{what} | last seen: {tail}"), width.saturating_sub(1)))
        }
        Style::Lines => format!(
            "{} waiting {e}s/{t}s for {}; last seen: {}\n",
            now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            one_line(what, 200),
            one_line(&last_seen, 300)
        ),
        Style::Off => String::new(),
    }
}

/// Waits in progress, so that on a terminal only the oldest one draws.
static ACTIVE: Mutex<BTreeMap<u64, Instant>> = Mutex::new(BTreeMap::new());
static NEXT: AtomicU64 = AtomicU64::new(0);

/// The progress of one wait, for as long as it lives.
pub struct Progress {
    id: u64,
    last_seen: Arc<Mutex<String>>,
    task: Option<tokio::task::JoinHandle<()>>,
    drew: Arc<std::sync::atomic::AtomicBool>,
}

impl Progress {
    pub fn start(what: String, timeout: Duration) -> Progress {
        let id = NEXT.fetch_add(1, Ordering::Relaxed);
        let last_seen = Arc::new(Mutex::new(String::from("nothing yet")));
        let drew = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let style = Style::detect();
        let Some((first, _)) = style.schedule() else {
            return Progress { id, last_seen, task: None, drew };
        };
        let start = Instant::now();
        ACTIVE.lock().expect("progress").insert(id, start);
        let (seen, drawn) = (last_seen.clone(), drew.clone());
        let task = tokio::spawn(async move {
            tokio::time::sleep(first).await;
            let mut last: Option<Duration> = None;
            loop {
                let elapsed = start.elapsed();
                if due(style, elapsed, last) {
                    let (oldest, others) = {
                        let active = ACTIVE.lock().expect("progress");
                        (active.iter().min_by_key(|(_, t)| **t).map(|(i, _)| *i) == Some(id), active.len() - 1)
                    };
                    if style == Style::Lines || oldest {
                        let last_seen = seen.lock().expect("progress").clone();
                        let snapshot = Snapshot { what: &what, elapsed, timeout, last_seen: &last_seen, others };
                        let text = render(style, Utc::now(), &snapshot, terminal_width());
                        let mut err = std::io::stderr().lock();
                        let _ = err.write_all(text.as_bytes());
                        let _ = err.flush();
                        drawn.store(style == Style::Terminal, Ordering::Relaxed);
                    }
                    last = Some(elapsed);
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        });
        Progress { id, last_seen, task: Some(task), drew }
    }

    pub fn seen(&self, state: &str) {
        *self.last_seen.lock().expect("progress") = state.to_string();
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
        ACTIVE.lock().expect("progress").remove(&self.id);
        // A redrawn line is cleared, so that what is printed next starts clean.
        if self.drew.load(Ordering::Relaxed) {
            let _ = std::io::stderr().write_all(b"\r\x1b[2K");
        }
    }
}

fn terminal_width() -> usize {
    std::env::var("COLUMNS").ok().and_then(|c| c.parse().ok()).filter(|w| *w >= 40).unwrap_or(100)
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: fn(u64) -> Duration = Duration::from_secs;

    #[test]
    fn short_waits_are_never_reported() {
        assert!(!due(Style::Terminal, S(2), None));
        assert!(!due(Style::Lines, S(14), None));
        assert!(!due(Style::Off, S(600), None));
    }

    #[test]
    fn lines_come_rarely_and_the_terminal_line_often() {
        assert!(due(Style::Lines, S(15), None));
        assert!(!due(Style::Lines, S(40), Some(S(15))));
        assert!(due(Style::Lines, S(45), Some(S(15))));
        assert!(due(Style::Terminal, S(3), None));
        assert!(due(Style::Terminal, S(5), Some(S(4))));
    }

    /// The reporter's loop, ticking every 250 ms as it does, over a 50 s wait.
    #[test]
    fn a_long_wait_reports_on_schedule_as_the_loop_ticks() {
        let ticks = (0..200u64).map(|i| Duration::from_millis(250 * i));
        let mut last = None;
        let mut reports = Vec::new();
        for t in ticks {
            if due(Style::Lines, t, last) {
                reports.push(t.as_secs());
                last = Some(t);
            }
        }
        assert_eq!(reports, vec![15, 45]);
    }

    #[test]
    fn a_plain_line_is_timestamped_and_whole() {
        let now = "2026-12-01T12:00:00Z".parse().unwrap();
        let s =
            Snapshot { what: "X to be ready", elapsed: S(12), timeout: S(300), last_seen: "state\npending", others: 0 };
        let line = render(Style::Lines, now, &s, 100);
        assert_eq!(line, "2026-12-01T12:00:00Z waiting 12s/300s for X to be ready; last seen: state pending\n");
    }

    #[test]
    fn the_terminal_line_fits_the_width_and_redraws_in_place() {
        let now = Utc::now();
        let seen = "x".repeat(500);
        let s = Snapshot {
            what: "every target to be healthy",
            elapsed: S(42),
            timeout: S(600),
            last_seen: &seen,
            others: 2,
        };
        let line = render(Style::Terminal, now, &s, 100);
        assert!(
            line.starts_with(
                "\r\x1b[2Kwaiting 42s/600s, 558s left (+2 more): every target to be healthy | last seen: xxx"
            ),
            "{line}"
        );
        assert_eq!(line.trim_start_matches("\r\x1b[2K").chars().count(), 99, "{line}");
        let narrow = render(Style::Terminal, now, &s, 60);
        assert!(narrow.trim_start_matches("\r\x1b[2K").chars().count() <= 59, "{narrow}");
        assert!(line.ends_with('…') && !line.contains('\n'));
    }

    #[test]
    fn credentials_in_the_last_state_are_not_shown() {
        let s =
            Snapshot { what: "x", elapsed: S(20), timeout: S(60), last_seen: "Authorization: Bearer abc", others: 0 };
        let line = render(Style::Lines, Utc::now(), &s, 100);
        assert!(!line.contains("abc"), "{line}");
    }
}
