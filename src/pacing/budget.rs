//! Pacing to the window an API announces: never more requests out than the window has
//! left, and once half of it is spent, the rest spread evenly until it resets. Several
//! processes behind one address share the window without talking: each sees what the
//! others took in the `remaining` of its own answers, and slows down as it falls. The
//! first half goes as fast as `--rate` allows, and so does all of it when the job's rows
//! still to do fit in what is left: a job smaller than the window is not slowed at all.

use std::time::{Duration, Instant};

use crate::api::Announced;

/// The shortest window assumed when the API never says how long its window is.
const SHORTEST_WINDOW: Duration = Duration::from_millis(100);

/// What is known of the API's current window.
#[derive(Debug, Default)]
pub struct Budget {
    current: Option<Window>,
    /// The window's length: as the API announced it, else the longest reset seen.
    length: Option<Duration>,
    length_announced: bool,
}

/// One window, as the freshest answer described it.
#[derive(Debug, Clone, Copy)]
struct Window {
    limit: u64,
    /// Requests left, as counted when the answer was written.
    remaining: u64,
    /// Requests of ours that `remaining` already counts: every one issued up to the one
    /// that got this answer. Those issued since are taken off it.
    counted: u64,
    /// When the window resets. Resets are announced in whole seconds, rounded up, so
    /// this is a bound the true reset is never after.
    reset_at: Instant,
    /// An answer described it; `false` for a window assumed after a reset, which is
    /// spread from its start.
    announced: bool,
}

impl Budget {
    /// Takes what the answer to our `counted`-th request (from 1) said at `now`.
    pub fn update(&mut self, counted: u64, announced: Announced, now: Instant) {
        match announced.window {
            Some(length) => {
                self.length = Some(length);
                self.length_announced = true;
            }
            None if !self.length_announced => {
                self.length = self.length.max(Some(announced.reset_after));
            }
            None => {}
        }
        let reset_at = now + announced.reset_after;
        let fresh = Window {
            limit: announced.limit,
            remaining: announced.remaining,
            counted,
            reset_at,
            announced: true,
        };
        self.current = match self.current {
            // An answer to an earlier request than the one we know of says less.
            Some(known) if counted <= known.counted => Some(known),
            // Within one window, `remaining` only falls; each answer bounds the reset.
            Some(known) if now < known.reset_at && fresh.remaining < known.remaining => {
                Some(Window {
                    reset_at: known.reset_at.min(reset_at),
                    ..fresh
                })
            }
            _ => Some(fresh),
        };
    }

    /// The earliest moment the next request may go; `None` when no window is known.
    /// `issued` is how many requests were issued so far, `last_sent` when the last was,
    /// `rows_left` how many rows the job has still to finish, when it knows.
    pub fn earliest(
        &mut self,
        now: Instant,
        issued: u64,
        last_sent: Option<Instant>,
        rows_left: Option<u64>,
    ) -> Option<Instant> {
        self.roll_over(now, issued);
        let window = self.current?;
        let left = window
            .remaining
            .saturating_sub(issued.saturating_sub(window.counted));
        if left == 0 {
            return Some(window.reset_at);
        }
        let fits = rows_left.is_some_and(|rows| rows <= left);
        if window.announced && (left > window.limit / 2 || fits) {
            return None;
        }
        // `left` requests in `left + 1` equal gaps before the reset: the last one goes a
        // gap before it, never after.
        let last = last_sent?;
        let gaps = u32::try_from(left + 1).unwrap_or(u32::MAX);
        Some(last + window.reset_at.saturating_duration_since(last) / gaps)
    }

    /// Requests left in the window and the time until it resets, for the operator.
    pub fn left(&self, now: Instant, issued: u64) -> Option<(u64, Duration)> {
        let window = self.current?;
        let left = window
            .remaining
            .saturating_sub(issued.saturating_sub(window.counted));
        Some((left, window.reset_at.saturating_duration_since(now)))
    }

    /// Once the known window has reset, a new one is assumed with the whole limit, until
    /// an answer from it says more. Only requests issued from now on count against it.
    fn roll_over(&mut self, now: Instant, issued: u64) {
        let Some(window) = &mut self.current else {
            return;
        };
        if now < window.reset_at {
            return;
        }
        let length = self.length.unwrap_or_default().max(SHORTEST_WINDOW);
        let behind = now.duration_since(window.reset_at).as_secs_f64() / length.as_secs_f64();
        let windows = behind.floor() as u32 + 1;
        *window = Window {
            limit: window.limit,
            remaining: window.limit,
            counted: issued,
            reset_at: window.reset_at + length * windows,
            announced: false,
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn announced(limit: u64, remaining: u64, reset_s: u64, window_s: Option<u64>) -> Announced {
        Announced {
            limit,
            remaining,
            reset_after: Duration::from_secs(reset_s),
            window: window_s.map(Duration::from_secs),
        }
    }

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn unknown_until_an_answer_says_something() {
        let mut budget = Budget::default();
        let now = Instant::now();
        assert_eq!(budget.earliest(now, 5, Some(now), None), None);
    }

    #[test]
    fn what_is_left_is_spread_until_the_reset() {
        let mut budget = Budget::default();
        let t0 = Instant::now();
        // The answer to our first request: 5 left of 10, reset in 10 s.
        budget.update(1, announced(10, 5, 10, Some(10)), t0);
        // One sent since then: 4 left, in 5 gaps until t0 + 10 s.
        let next = budget.earliest(t0, 2, Some(t0), None).unwrap();
        assert_eq!(next - t0, Duration::from_secs(10) / 5);
        assert_eq!(budget.left(t0, 2), Some((4, Duration::from_secs(10))));
    }

    #[test]
    fn the_first_half_of_a_window_goes_at_once() {
        let mut budget = Budget::default();
        let t0 = Instant::now();
        budget.update(1, announced(500, 499, 120, Some(120)), t0);
        assert_eq!(budget.earliest(t0, 50, Some(t0), None), None);
        assert!(budget.earliest(t0, 260, Some(t0), None).is_some());
        // Past half of it, a job whose rows still to do fit in what is left goes at once.
        assert_eq!(budget.earliest(t0, 260, Some(t0), Some(200)), None);
        assert!(budget.earliest(t0, 260, Some(t0), Some(300)).is_some());
    }

    #[test]
    fn no_more_requests_out_than_the_window_has_left() {
        let mut budget = Budget::default();
        let t0 = Instant::now();
        budget.update(1, announced(10, 3, 5, None), t0);
        // Three issued after the one answered: nothing left until the reset.
        assert_eq!(
            budget.earliest(t0, 4, Some(t0), None),
            Some(t0 + 5 * 1000 * MS)
        );
    }

    #[test]
    fn other_clients_shrink_what_is_left() {
        let mut budget = Budget::default();
        let t0 = Instant::now();
        budget.update(1, announced(100, 99, 10, Some(10)), t0);
        // Our second request saw 60 left: someone else took 38.
        budget.update(2, announced(100, 60, 10, Some(10)), t0 + MS);
        assert_eq!(budget.left(t0 + MS, 2).unwrap().0, 60);
        // An older answer arriving late changes nothing.
        budget.update(1, announced(100, 99, 10, Some(10)), t0 + 2 * MS);
        assert_eq!(budget.left(t0 + 2 * MS, 2).unwrap().0, 60);
    }

    #[test]
    fn each_answer_of_one_window_bounds_its_reset() {
        let mut budget = Budget::default();
        let t0 = Instant::now();
        budget.update(1, announced(100, 99, 10, Some(10)), t0);
        // 900 ms later the reset is still announced as 10 s (rounded up): the first
        // bound is the tighter one.
        budget.update(2, announced(100, 98, 10, Some(10)), t0 + 900 * MS);
        assert_eq!(budget.left(t0, 2).unwrap().1, Duration::from_secs(10));
    }

    #[test]
    fn after_the_reset_a_fresh_window_is_assumed_and_then_learned() {
        let mut budget = Budget::default();
        let t0 = Instant::now();
        budget.update(1, announced(10, 0, 2, Some(10)), t0);
        assert_eq!(budget.earliest(t0, 1, Some(t0), None), Some(t0 + 2000 * MS));
        // At the reset: the whole limit, spread over the window.
        let at = t0 + 2000 * MS;
        let next = budget.earliest(at, 1, Some(t0), None).unwrap();
        assert_eq!(next, t0 + (12_000 * MS) / 11);
        assert_eq!(budget.left(at, 1), Some((10, Duration::from_secs(10))));
        // An answer from the new window replaces the guess, even with more left.
        budget.update(2, announced(10, 4, 9, Some(10)), at + MS);
        assert_eq!(budget.left(at + MS, 2).unwrap().0, 4);
    }

    #[test]
    fn a_long_gap_skips_whole_windows() {
        let mut budget = Budget::default();
        let t0 = Instant::now();
        budget.update(1, announced(5, 0, 1, None), t0);
        let late = t0 + Duration::from_millis(3500);
        budget.earliest(late, 1, None, None);
        let (left, reset) = budget.left(late, 1).unwrap();
        assert_eq!(left, 5);
        assert_eq!(reset, Duration::from_millis(500));
    }
}
