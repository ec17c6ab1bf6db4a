//! Pacing to the window an API announces. A request goes as soon as `--rate` and
//! `--concurrency` allow while the window has some left, and waits for the reset once it is
//! spent: never more requests out than the window has left, so that the answers'
//! `remaining` stays the truth.
//!
//! Several processes behind one address share the window without talking. Each learns from
//! its own answers which share of the window it spends (`remaining` falls by the requests
//! of every client, its own counter by its own), and keeps no more requests out than its
//! share of what is left: together they fill the window and are rarely refused. The share
//! of a few requests is rounded up or down at random, so that the last requests of a window
//! are neither all sent nor all held back. Before the first answer nothing is known of the
//! window and only `--rate` and `--concurrency` bound the requests; from the first answer
//! until a share is known, what may be out doubles with each answer (2, 4, 8, ...).

use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::api::Announced;
use crate::model::Shard;

/// The shortest window assumed when the API never says how long its window is.
const SHORTEST_WINDOW: Duration = Duration::from_millis(100);

/// Requests held back at the end of a shared window, for all of it that is not ours:
/// others' requests already out are not in the `remaining` we know. Measured with 4 shards
/// of one 25-per-2-s window on loopback (bench/window.py): 0 held back met a 429 on 1.3 of
/// every 25 requests, 1 met none but left one of 25 unused, 0.75 met 2 in 400 and filled
/// the windows.
const HELD_BACK: f64 = 0.75;

/// Our requests an estimate of the share needs, counted since a window's first answer.
const SHARE_AFTER: u64 = 2;

/// The smallest share believed: a client that saw others spend nearly all of a window may
/// still send now and then, and learn when they stop.
const SMALLEST_SHARE: f64 = 1.0 / 64.0;

/// What is known of the API's current window, and of our share of it.
#[derive(Debug)]
pub struct Budget {
    current: Option<Window>,
    /// The window's length: as the API announced it, else the longest reset seen.
    length: Option<Duration>,
    length_announced: bool,
    /// Which part of the last window's requests were ours, as its latest answer showed.
    last_share: Option<f64>,
    /// Which part of this window's requests are ours so far.
    share_now: Option<f64>,
    /// Answers that described a window, while no share is known: the slow start.
    answers: u32,
    coins: Coins,
}

/// Where the draws that round a share of what is left come from.
#[derive(Debug)]
enum Coins {
    /// At random.
    Drawn(SmallRng),
    /// Spread over `[0, 1)` by the shard's index: the shards of one job round the same
    /// share of the same window to exactly what is left between them.
    Shard(f64),
}

impl Coins {
    fn next(&mut self) -> f64 {
        match self {
            Coins::Drawn(draws) => draws.random(),
            Coins::Shard(coin) => *coin,
        }
    }
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
    /// The first answer from this window: `remaining` and `counted` then. What fell since
    /// beside what we sent since is our share.
    first: Option<(u64, u64)>,
    /// A draw in [0, 1) that rounds our share of what is left, new with each answer.
    coin: f64,
}

impl Default for Budget {
    fn default() -> Budget {
        Budget::seeded(rand::random())
    }
}

impl Budget {
    /// A budget for one shard of a job (or the whole of it).
    pub fn for_shard(shard: Shard) -> Budget {
        if shard.count <= 1 {
            return Budget::default();
        }
        Budget {
            coins: Coins::Shard((shard.index as f64 + 0.5) / shard.count as f64),
            ..Budget::default()
        }
    }

    /// A budget whose draws follow `seed`.
    pub fn seeded(seed: u64) -> Budget {
        Budget {
            current: None,
            length: None,
            length_announced: false,
            last_share: None,
            share_now: None,
            answers: 0,
            coins: Coins::Drawn(SmallRng::seed_from_u64(seed)),
        }
    }

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
        if self.share().is_none() {
            self.answers = self.answers.saturating_add(1);
        }
        let reset_at = now + announced.reset_after;
        let coin = self.coins.next();
        let fresh = Window {
            limit: announced.limit,
            remaining: announced.remaining,
            counted,
            reset_at,
            first: Some((announced.remaining, counted)),
            coin,
        };
        self.current = match self.current {
            // An answer to an earlier request than the one we know of says less.
            Some(known) if counted <= known.counted => Some(known),
            // Within one window, `remaining` only falls; each answer bounds the reset.
            Some(known) if now < known.reset_at && fresh.remaining < known.remaining => {
                let first = known.first.or(fresh.first);
                self.learn_share(first, &fresh);
                Some(Window {
                    reset_at: known.reset_at.min(reset_at),
                    first,
                    ..fresh
                })
            }
            _ => {
                self.next_window();
                Some(fresh)
            }
        };
    }

    /// Our share of the window: the smaller of the last window's and this one's so far.
    /// Early in a window a client may be alone for a moment, before the others wake up.
    fn share(&self) -> Option<f64> {
        match (self.last_share, self.share_now) {
            (Some(last), Some(now)) => Some(last.min(now)),
            (last, now) => last.or(now),
        }
    }

    /// A window has ended: what was learned of it is the share to start the next with.
    fn next_window(&mut self) {
        if self.share_now.is_some() {
            self.last_share = self.share_now.take();
        }
    }

    /// Our share of the window since its first answer: what we sent beside what it lost.
    fn learn_share(&mut self, first: Option<(u64, u64)>, now: &Window) {
        let Some((remaining_then, counted_then)) = first else {
            return;
        };
        let ours = now.counted.saturating_sub(counted_then);
        // At 0 the window says only that it lost at least what it had.
        if ours < SHARE_AFTER || now.remaining == 0 {
            return;
        }
        let spent = remaining_then.saturating_sub(now.remaining).max(ours);
        self.share_now = Some((ours as f64 / spent as f64).max(SMALLEST_SHARE));
    }

    /// The earliest moment the next request may go; `None` when no window is known or
    /// it may go now. `issued` is how many requests were issued so far.
    pub fn earliest(&mut self, now: Instant, issued: u64) -> Option<Instant> {
        self.roll_over(now, issued);
        let window = self.current?;
        let out = issued.saturating_sub(window.counted);
        (out >= self.allowance(&window)).then_some(window.reset_at)
    }

    /// How many of our requests may be out beyond those the window's `remaining` counts.
    fn allowance(&self, window: &Window) -> u64 {
        let share = self.share();
        let share_or_all = share.unwrap_or(1.0);
        // What others sent since our answer is not in its `remaining` yet: hold back a
        // part of a request for the part of the window that is theirs.
        let ours = (window.remaining as f64 * share_or_all + window.coin
            - HELD_BACK * (1.0 - share_or_all))
            .max(0.0)
            .floor() as u64;
        let slow_start = match share {
            Some(_) => u64::MAX,
            None => 1u64 << self.answers.min(32),
        };
        ours.min(slow_start).min(window.remaining)
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
        let window = *window;
        self.next_window();
        self.current = Some(Window {
            limit: window.limit,
            remaining: window.limit,
            counted: issued,
            reset_at: window.reset_at + length * windows,
            first: None,
            coin: self.coins.next(),
        });
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

    /// A budget that has seen three answers of a 100/10s window it spends alone.
    fn alone(t0: Instant) -> Budget {
        let mut budget = Budget::seeded(1);
        for n in 1..=3 {
            budget.update(n, announced(100, 100 - n, 10, Some(10)), t0);
        }
        assert_eq!(budget.share(), Some(1.0));
        budget
    }

    #[test]
    fn unknown_until_an_answer_says_something() {
        let mut budget = Budget::default();
        let now = Instant::now();
        assert_eq!(budget.earliest(now, 5), None);
    }

    #[test]
    fn what_is_left_goes_at_once_and_then_the_reset_is_awaited() {
        let t0 = Instant::now();
        let mut budget = alone(t0);
        // 97 left after our third request: 96 more may go at once, not the 97th.
        assert_eq!(budget.earliest(t0, 3 + 96), None);
        assert_eq!(budget.earliest(t0, 3 + 97), Some(t0 + 10_000 * MS));
        assert_eq!(budget.left(t0, 3 + 90), Some((7, Duration::from_secs(10))));
    }

    #[test]
    fn no_more_requests_out_than_the_window_has_left() {
        let t0 = Instant::now();
        let mut budget = alone(t0);
        budget.update(97, announced(100, 3, 5, None), t0);
        // Three issued after the one answered: nothing left until the reset.
        assert_eq!(budget.earliest(t0, 97 + 2), None);
        assert_eq!(budget.earliest(t0, 97 + 3), Some(t0 + 5_000 * MS));
    }

    #[test]
    fn until_a_share_is_known_what_may_be_out_doubles_with_each_answer() {
        let t0 = Instant::now();
        let mut budget = Budget::seeded(1);
        budget.update(1, announced(100, 99, 10, Some(10)), t0);
        assert_eq!(budget.earliest(t0, 1 + 1), None);
        assert!(
            budget.earliest(t0, 1 + 2).is_some(),
            "two out after one answer"
        );
        budget.update(2, announced(100, 98, 10, Some(10)), t0);
        assert_eq!(budget.earliest(t0, 2 + 3), None);
        assert!(budget.earliest(t0, 2 + 4).is_some(), "four out after two");
    }

    #[test]
    fn a_client_that_spends_half_of_the_window_keeps_half_of_what_is_left_out() {
        let t0 = Instant::now();
        let mut budget = Budget::seeded(1);
        budget.update(1, announced(100, 99, 10, Some(10)), t0);
        // Two more of ours counted, and the window lost four: someone else sent two.
        budget.update(3, announced(100, 95, 10, Some(10)), t0 + MS);
        assert_eq!(budget.share(), Some(0.5));
        // 47 or 48 of the 95 left, by the draw.
        assert_eq!(budget.earliest(t0 + MS, 3 + 46), None);
        assert!(budget.earliest(t0 + MS, 3 + 48).is_some());
        // An older answer arriving late changes nothing.
        budget.update(2, announced(100, 99, 10, Some(10)), t0 + 2 * MS);
        assert_eq!(budget.left(t0 + 2 * MS, 3).unwrap().0, 95);
    }

    #[test]
    fn the_last_few_requests_of_a_shared_window_are_rounded_at_random() {
        let t0 = Instant::now();
        // A quarter of the window is ours and four are left: one of them, less the part
        // of a request held back for the others' three quarters (0.56), may go 44 % of
        // the time.
        let allowed = (0..400)
            .filter(|&seed| {
                let mut budget = Budget::seeded(seed);
                budget.update(1, announced(100, 12, 10, Some(10)), t0);
                budget.update(3, announced(100, 4, 10, Some(10)), t0);
                assert_eq!(budget.share(), Some(0.25));
                budget.earliest(t0, 3).is_none()
            })
            .count();
        assert!((120..=230).contains(&allowed), "{allowed} of 400");
    }

    #[test]
    fn each_answer_of_one_window_bounds_its_reset() {
        let t0 = Instant::now();
        let mut budget = Budget::seeded(1);
        budget.update(1, announced(100, 99, 10, Some(10)), t0);
        // 900 ms later the reset is still announced as 10 s (rounded up): the first
        // bound is the tighter one.
        budget.update(2, announced(100, 98, 10, Some(10)), t0 + 900 * MS);
        assert_eq!(budget.left(t0, 2).unwrap().1, Duration::from_secs(10));
    }

    #[test]
    fn after_the_reset_a_fresh_window_is_assumed_and_then_learned() {
        let t0 = Instant::now();
        let mut budget = alone(t0);
        budget.update(4, announced(100, 0, 2, Some(10)), t0);
        assert_eq!(budget.earliest(t0, 4), Some(t0 + 2000 * MS));
        // At the reset: the whole limit, at once.
        let at = t0 + 2000 * MS;
        assert_eq!(budget.earliest(at, 4), None);
        assert_eq!(budget.earliest(at, 4 + 99), None);
        assert_eq!(budget.earliest(at, 4 + 100), Some(t0 + 12_000 * MS));
        assert_eq!(budget.left(at, 4), Some((100, Duration::from_secs(10))));
        // An answer from the new window replaces the guess.
        budget.update(5, announced(100, 40, 9, Some(10)), at + MS);
        assert_eq!(budget.left(at + MS, 5).unwrap().0, 40);
    }

    #[test]
    fn a_long_gap_skips_whole_windows() {
        let t0 = Instant::now();
        let mut budget = Budget::seeded(1);
        budget.update(1, announced(5, 0, 1, None), t0);
        let late = t0 + Duration::from_millis(3500);
        budget.earliest(late, 1);
        let (left, reset) = budget.left(late, 1).unwrap();
        assert_eq!(left, 5);
        assert_eq!(reset, Duration::from_millis(500));
    }

    /// A fixed window of `LIMIT` per `WINDOW` shared by `clients` processes on a network
    /// of `LATENCY` each way, in simulated time: each process paces with its own budget, at
    /// most 8 requests out and one issued per millisecond (`--rate 1000/s`), and waits for
    /// the reset after a 429 as the pacer does. Returns how long the rows took and how
    /// many 429s were met.
    fn simulate(clients: u64, rows_each: u64) -> (Duration, u64) {
        const LIMIT: u64 = 25;
        const WINDOW: Duration = Duration::from_secs(2);
        const LATENCY: Duration = Duration::from_micros(300);
        const STEP: Duration = Duration::from_micros(100);
        struct Client {
            budget: Budget,
            issued: u64,
            done: u64,
            out: Vec<(Instant, u64)>,
            last_sent: Option<Instant>,
            paused_until: Option<Instant>,
        }
        let t0 = Instant::now();
        let mut clients: Vec<Client> = (0..clients)
            .map(|index| Client {
                budget: Budget::for_shard(Shard {
                    index,
                    count: clients,
                }),
                issued: 0,
                done: 0,
                out: Vec::new(),
                last_sent: None,
                paused_until: None,
            })
            .collect();
        // Requests on their way: (arrives at the server, client, seq).
        let mut arriving: Vec<(Instant, usize, u64)> = Vec::new();
        // Answers on their way: (arrives at the client, client, seq, status, announced).
        let mut answers: Vec<(Instant, usize, u64, u16, Announced)> = Vec::new();
        let (mut window, mut counted, mut refused) = (0u64, 0u64, 0u64);
        let mut now = t0;
        while clients.iter().any(|c| c.done < rows_each) {
            now += STEP;
            assert!(now - t0 < Duration::from_secs(600), "the rows end");
            // The server counts each request in the window it arrives in.
            arriving.sort_by_key(|a| a.0);
            while arriving.first().is_some_and(|a| a.0 <= now) {
                let (at, client, seq) = arriving.remove(0);
                let since = at - t0;
                let index = since.as_nanos() / WINDOW.as_nanos();
                if index as u64 != window {
                    (window, counted) = (index as u64, 0);
                }
                counted += 1;
                let end = WINDOW * (index as u32 + 1);
                let reset = (end - since).as_secs_f64().ceil() as u64;
                let announced = Announced {
                    limit: LIMIT,
                    remaining: LIMIT.saturating_sub(counted),
                    reset_after: Duration::from_secs(reset),
                    window: Some(WINDOW),
                };
                let status = if counted > LIMIT { 429 } else { 200 };
                answers.push((at + LATENCY, client, seq, status, announced));
            }
            for (i, client) in clients.iter_mut().enumerate() {
                answers.retain(|&(at, to, seq, status, announced)| {
                    if to != i || at > now {
                        return true;
                    }
                    client.out.retain(|o| o.1 != seq);
                    client.budget.update(seq + 1, announced, now);
                    if status == 429 {
                        refused += 1;
                        client.paused_until = Some(now + announced.reset_after);
                    } else {
                        client.done += 1;
                    }
                    false
                });
                let paused = client.paused_until.is_some_and(|until| now < until);
                let rate = client.last_sent.is_none_or(|last| now - last >= STEP * 10);
                let queued = rows_each - client.done - client.out.len() as u64;
                if paused || !rate || queued == 0 || client.out.len() >= 8 {
                    continue;
                }
                if client.budget.earliest(now, client.issued).is_none() {
                    if let Some((left, _)) = client.budget.left(now, client.issued) {
                        assert!(
                            left > 0,
                            "a request goes only while the window has some left"
                        );
                    }
                    client.out.push((now, client.issued));
                    arriving.push((now + LATENCY, i, client.issued));
                    client.issued += 1;
                    client.last_sent = Some(now);
                }
            }
        }
        (now - t0, refused)
    }

    #[test]
    fn one_client_fills_every_window_and_meets_no_429() {
        let (took, refused) = simulate(1, 400);
        assert_eq!(refused, 0);
        // Sixteen windows of 25: the last one begins at 30 s.
        assert!(took < Duration::from_millis(30_100), "{took:?}");
    }

    #[test]
    fn four_clients_share_one_window_and_meet_few_429s() {
        let (took, refused) = simulate(4, 100);
        assert!(refused * 100 <= 3 * 400, "{refused} 429s");
        // At most one window more than sixteen full ones.
        assert!(took < Duration::from_millis(32_100), "{took:?}");
    }
}
