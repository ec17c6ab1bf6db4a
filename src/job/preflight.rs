//! The preflight: one list of every workspace before a run sends anything, so that names
//! that exist cost no `POST`, and an unknown outcome can be settled by what existed before.

use std::time::Duration;

use super::shared::{Mode, Shared, StopReason};
use crate::api::retry::is_retryable_status;
use crate::api::{Listed, Listing, NoAnswer};
use crate::pacing::{Next, Seen};

/// Lists the workspaces now, unless the job has stopped; what it lists is the job's
/// listing from then on.
pub(crate) async fn list_now(shared: &Shared) {
    if shared.stopped().is_some() {
        return;
    }
    let mut requests = 0;
    let listing = list(shared, &mut requests).await;
    shared
        .list_requests
        .fetch_add(requests, std::sync::atomic::Ordering::Relaxed);
    if let Some(listing) = listing {
        *shared.listing.lock().unwrap_or_else(|e| e.into_inner()) = Some(listing);
    }
}

/// Lists every workspace through the pacer (the list counts against the rate limit),
/// with the job's retries. `None`, with a warning, when the list cannot be had: the job
/// goes on without it. A refused key stops the job, as it would on the first write.
///
/// `requests` counts the list requests sent.
async fn list(shared: &Shared, requests: &mut u64) -> Option<Listing> {
    let failure = match fetch(shared, None, requests).await {
        Err(Failed::Stopped) => return None,
        Err(Failed::Because(why)) => why,
        Ok(listing) if listing.entries() == PAGE => match fetch(shared, Some(2), requests).await {
            Err(Failed::Stopped) => return None,
            // A whole list of ten has an empty second page. One that is not empty (even
            // one that repeats the first: an API that ignores the page asked for) says the
            // list was paged whatever it was asked.
            Ok(second) if !second.is_empty() => {
                "it held exactly one page of names, and the API gives a second page too: it pages the list whatever it is asked, so the list may not be all there is".to_owned()
            }
            // Empty (or it cannot be had: the API documents the list as whole, and a
            // failure here says nothing against it).
            Ok(_) | Err(Failed::Because(_)) => return Some(trusted(listing)),
        },
        Ok(listing) => return Some(trusted(listing)),
    };
    match &shared.mode {
        Mode::Plan(_) => tracing::warn!("preflight: the list of workspaces failed ({failure})"),
        _ => tracing::warn!(
            "preflight: the list of workspaces failed ({failure}), so every row is sent; names that exist are found by their POST, and a name found taken after a lost answer is recorded exists, not created, since nobody can tell whether it was there before (--no-preflight skips the list)"
        ),
    }
    None
}

fn trusted(listing: Listing) -> Listing {
    tracing::info!(
        "preflight: {} workspaces exist; rows of those names are not sent again",
        listing.len()
    );
    listing
}

/// Why a list could not be had.
enum Failed {
    /// The job stopped (Ctrl-C, a 401, pacing gave up) meanwhile.
    Stopped,
    /// It failed, for this reason, as many times as a row may.
    Because(String),
}

/// One list (the whole of it, or one page of ten), retried as a row would be.
async fn fetch(shared: &Shared, page: Option<u32>, requests: &mut u64) -> Result<Listing, Failed> {
    let sender = shared.mode.sender().ok_or(Failed::Stopped)?;
    // A list of many workspaces is one long answer: more time than one write.
    let timeout = sender.timeout.max(LIST_TIMEOUT);
    let mut tries = 0;
    let deadline = tokio::time::Instant::now() + LIST_BUDGET;
    loop {
        let ticket = shared.permit().await.map_err(|_| Failed::Stopped)?;
        // No try runs past the budget: the last one gets what is left of it.
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        if left < std::time::Duration::from_secs(1) {
            shared.pacer().release(ticket);
            return Err(Failed::Because(format!(
                "no list within {}",
                humantime::format_duration(LIST_BUDGET)
            )));
        }
        *requests += 1;
        // A GET is safe to abandon: Ctrl-C does not wait for a long list.
        let listed = tokio::select! {
            biased;
            _ = shared.until_stopped() => return Err(Failed::Stopped),
            listed = sender.client.list(page, timeout.min(left)) => listed,
        };
        if let Err(NoAnswer::Untrusted(problem)) = &listed {
            *requests -= 1; // the handshake failed: nothing was sent
            shared.pacer().release(ticket);
            shared.distrust(problem);
            return Err(Failed::Stopped);
        }
        let seen = match &listed {
            Ok(Listed::Names(_, answer) | Listed::Refused(answer)) => Some(Seen::Answer {
                status: answer.status,
                announced: answer.announced,
                retry_after: answer.retry_after,
            }),
            Err(
                NoAnswer::ConnectFailed(message)
                | NoAnswer::Unbuildable(message)
                | NoAnswer::Untrusted(message),
            ) => Some(Seen::NotConnected(message)),
            // A list that gives no answer in time (or breaks off) says nothing of whether
            // the writes are answered: it does not count towards an outage.
            Err(NoAnswer::Lost(_) | NoAnswer::Timeout) => None,
        };
        tries += 1;
        let not_connected = match &seen {
            Some(Seen::NotConnected(message)) => Some(message.to_string()),
            _ => None,
        };
        let next = match seen {
            Some(seen) => shared.pacer().observe(ticket, seen),
            None => {
                shared.pacer().release(ticket);
                Next::Proceed
            }
        };
        match next {
            Next::Proceed => {}
            // A 429 (or a connection never made) is sent again after the pause, as for
            // a row, but only as many times as a row may try: the list is worth less than
            // the rows waiting behind it.
            Next::Again if tries < sender.retry.max_attempts => continue,
            Next::Again => {
                return Err(Failed::Because(match not_connected {
                    Some(message) => format!("the API could not be reached: {message}"),
                    None => "the API kept refusing it for now (429)".to_owned(),
                }));
            }
            Next::Halt(halt) => {
                shared.halt(halt);
                return Err(Failed::Stopped);
            }
        }
        let (retry_after, why) = match what_came(shared, listed, timeout) {
            Came::List(listing) => return Ok(listing),
            Came::Final(failed) => return Err(failed),
            Came::Again { retry_after, why } => (retry_after, why),
        };
        if tries >= sender.retry.max_attempts || tokio::time::Instant::now() >= deadline {
            return Err(Failed::Because(why));
        }
        tracing::warn!("preflight: the list failed ({why}); trying again");
        let wait = sender.retry.backoff(tries, retry_after);
        tokio::select! {
            biased;
            _ = shared.until_stopped() => return Err(Failed::Stopped),
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

/// What one list request came to, once the pacer has had its say.
enum Came {
    /// The list.
    List(Listing),
    /// No list, and no point in asking again.
    Final(Failed),
    /// Worth asking again, after `retry_after` at least.
    Again {
        retry_after: Option<Duration>,
        why: String,
    },
}

/// Reads a list request's outcome: the list, a refusal worth another try, or one that is
/// final. A refused key (401, 400 `AUTHENTICATION_ERROR`) stops the job, as it would on
/// the first write.
fn what_came(shared: &Shared, listed: Result<Listed, NoAnswer>, timeout: Duration) -> Came {
    let (retry_after, why) = match listed {
        Ok(Listed::Names(listing, _)) => return Came::List(listing),
        Ok(Listed::Refused(answer)) if answer.refuses_key() => {
            tracing::error!(
                "preflight: the API refused the key ({}) to list the workspaces ({}), so nothing is sent",
                answer.status_and_code(),
                answer.message
            );
            shared.stop(StopReason::Unauthorized);
            return Came::Final(Failed::Stopped);
        }
        Ok(Listed::Refused(answer)) => {
            let why = format!(
                "HTTP {} {}: {}",
                answer.status,
                answer.code.unwrap_or_default(),
                answer.message
            );
            if !is_retryable_status(answer.status) {
                return Came::Final(Failed::Because(why));
            }
            (answer.retry_after, why)
        }
        Err(NoAnswer::Timeout) => (
            None,
            format!("no answer within {}", humantime::format_duration(timeout)),
        ),
        Err(
            NoAnswer::Lost(message)
            | NoAnswer::ConnectFailed(message)
            | NoAnswer::Unbuildable(message)
            | NoAnswer::Untrusted(message),
        ) => (None, message),
    };
    Came::Again { retry_after, why }
}

/// The longest a list may take at least: its answer holds every workspace.
const LIST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// After this long, a list that has not come is given up (no further try starts): the
/// rows wait behind it.
const LIST_BUDGET: std::time::Duration = std::time::Duration::from_secs(150);

/// Names in a page of the paginated list. A list of exactly this many may be a first
/// page that the API gave whatever it was asked: trusted, every name after it would
/// count as absent, and a lost answer for one of them as ours to roll back. So its
/// second page is asked for, and must be empty.
const PAGE: usize = 10;
