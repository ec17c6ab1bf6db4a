//! What a job shows while it runs, besides the counts the writer moves: the pace on the
//! bar, redrawn on a clock; and without a drawn bar, a log line every so often.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use indicatif::ProgressBar;
use tokio::task::JoinHandle;

use super::shared::Shared;
use crate::report::progress;

/// Starts the tasks that show the pace (when requests are sent) and, every `every`, the
/// progress as a log line.
pub(super) fn show(
    shared: &Arc<Shared>,
    bar: &ProgressBar,
    every: Option<Duration>,
) -> Vec<JoinHandle<()>> {
    let mut tasks = Vec::new();
    // The pace, and any pause, beside the counts: a pause finishes no row to redraw them.
    if shared.pacer.is_some() {
        let (bar, shared) = (bar.clone(), shared.clone());
        tasks.push(tokio::spawn(async move {
            // Requests issued at each of the last ten ticks: the rate of the last 5 s.
            let mut issued = VecDeque::from([(Instant::now(), 0)]);
            let mut ticks = tokio::time::interval(Duration::from_millis(500));
            loop {
                ticks.tick().await;
                let pacer = shared.pacer();
                let (now, count) = (Instant::now(), pacer.issued());
                if issued.len() > 10 {
                    issued.pop_front();
                }
                let (then, before) = issued.front().copied().unwrap_or((now, count));
                issued.push_back((now, count));
                // Less than half a second says nothing of a rate.
                let seconds = now.duration_since(then).as_secs_f64();
                let per_second = (seconds >= 0.4).then(|| (count - before) as f64 / seconds);
                progress::show_pace(&bar, per_second, pacer.describe());
            }
        }));
    }
    if let Some(every) = every {
        let bar = bar.clone();
        tasks.push(tokio::spawn(async move {
            let mut ticks = tokio::time::interval(every);
            ticks.tick().await;
            loop {
                ticks.tick().await;
                tracing::info!("{}", progress::progress_line(&bar));
            }
        }));
    }
    tasks
}

/// Stops those tasks, and waits for them: a line one of them was writing is out before
/// anything after the job (the summary last of all).
pub(super) async fn stop(tasks: Vec<JoinHandle<()>>) {
    for task in tasks {
        task.abort();
        let _ = task.await;
    }
}
