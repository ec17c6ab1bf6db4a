//! Standard error, shared by log lines and the progress bar: one bar per process, and
//! every line written with the bar cleared, so that the two never tear.

use std::sync::LazyLock;

use indicatif::ProgressBar;

/// The progress bar. One per process, like stderr: log lines are written through
/// [`hide_bar_while`], so that the two never tear.
static BAR: LazyLock<ProgressBar> = LazyLock::new(ProgressBar::hidden);

/// Runs `write` (a line on stderr) with the bar cleared, and draws the bar again after.
pub fn hide_bar_while(write: impl FnOnce()) {
    BAR.suspend(write);
}

/// The bar of this process (hidden until a job draws it).
pub fn bar() -> ProgressBar {
    BAR.clone()
}
