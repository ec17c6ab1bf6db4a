//! The list of every workspace (`GET /api/v2/workspace`), read straight into a compact set
//! of names: the only way to learn which names exist.

use std::fmt;
use std::hash::{BuildHasher, RandomState};
use std::time::{Duration, SystemTime};

use reqwest::header::{LOCATION, RETRY_AFTER};
use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::announced;
use super::answer::{Answer, NoAnswer, UNEXPECTED_RESPONSE, classify, parse_retry_after};
use super::client::{Client, no_answer, redirected};
use super::request::Verb;
use super::text::{clean, clean_code};
use super::workspace::ApiError;

/// The names of every workspace that existed when the run began, as 128-bit keyed
/// hashes in a sorted array: 16 bytes a workspace rather than the name itself. A name
/// taken for listed by chance (two hashes alike) is about one in 10^26 for a run of a
/// million rows against a million workspaces.
#[derive(Debug)]
pub struct Listing {
    /// Sorted, without repeats, once the list is read.
    names: Vec<u128>,
    /// Entries in the answer, repeats included: a page is ten entries.
    entries: usize,
    keys: (RandomState, RandomState),
}

impl Default for Listing {
    fn default() -> Listing {
        Listing {
            names: Vec::new(),
            entries: 0,
            keys: (RandomState::new(), RandomState::new()),
        }
    }
}

impl Listing {
    fn key(&self, name: &str) -> u128 {
        (u128::from(self.keys.0.hash_one(name)) << 64) | u128::from(self.keys.1.hash_one(name))
    }

    fn push(&mut self, name: &str) {
        let key = self.key(name);
        self.names.push(key);
    }

    /// Sorts what was pushed, for [`Listing::contains`].
    fn finish(mut self) -> Listing {
        self.entries = self.names.len();
        self.names.sort_unstable();
        self.names.dedup();
        self.names.shrink_to_fit();
        self
    }

    /// Whether a workspace of this exact name was listed.
    pub fn contains(&self, name: &str) -> bool {
        self.names.binary_search(&self.key(name)).is_ok()
    }

    /// Entries in the answer, repeats included (a page is ten entries).
    pub fn entries(&self) -> usize {
        self.entries
    }

    /// How many workspaces were listed.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// Whether none was.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
}

/// The most of a list's body that is read (some 5 million names): only the names are
/// kept, but an endless answer (or one name of a gigabyte) must end.
pub const MAX_LIST_BODY: usize = 256 * 1024 * 1024;

/// What a list of every workspace came back as.
#[derive(Debug)]
pub enum Listed {
    /// The names, and the answer's status and headers (for the pacer).
    Names(Listing, Answer),
    /// Any other answer: an error, or a 2xx whose body is not the list.
    Refused(Answer),
}

impl Client {
    /// Lists every workspace in one answer (`isPagination=false`), or only the page `page`
    /// of ten, within `timeout`.
    pub async fn list(&self, page: Option<u32>, timeout: Duration) -> Result<Listed, NoAnswer> {
        let request = match page {
            None => self.http.get(&self.url).query(&[("isPagination", "false")]),
            Some(page) => self
                .http
                .get(&self.url)
                .query(&[("isPagination", "true"), ("pageNumber", &page.to_string())]),
        };
        let response = match request.timeout(timeout).send().await {
            Ok(response) => response,
            Err(e) => return Err(no_answer(e)),
        };
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        let announced = announced::parse(response.headers(), SystemTime::now());
        let location = response
            .headers()
            .get(LOCATION)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
        let mut answer = Answer {
            status,
            code: None,
            message: String::new(),
            retry_after,
            name: None,
            announced,
        };
        if !(200..300).contains(&status) {
            let body = self.redacted_body(response).await?;
            let refusal = classify(Verb::Post, status, body.as_bytes(), retry_after);
            answer.code = refusal
                .code
                .map(|code| clean_code(&code, status, &self.key));
            answer.message = if (300..400).contains(&status) {
                redirected(location.as_deref())
            } else {
                refusal.message
            };
            answer.message = clean(&answer.message, &self.key);
            return Ok(Listed::Refused(answer));
        }
        let parsed = match parse_list(response).await {
            Ok(parsed) => parsed,
            Err(e) => return Err(no_answer(e)),
        };
        match parsed {
            Ok(ListEnvelope {
                data: Some(names),
                error: None,
            }) => Ok(Listed::Names(names, answer)),
            Ok(_) => {
                answer.code = Some(UNEXPECTED_RESPONSE.to_owned());
                answer.message = format!("HTTP {status} without a list of workspaces in its body");
                Ok(Listed::Refused(answer))
            }
            Err(why) => {
                answer.code = Some(UNEXPECTED_RESPONSE.to_owned());
                answer.message = clean(
                    &format!("HTTP {status} without a list of workspaces: {why}"),
                    &self.key,
                );
                Ok(Listed::Refused(answer))
            }
        }
    }
}

/// Reads a list's body into the set of names as it arrives, so that memory holds the
/// names and never the whole answer. `Err(why)` inside when it is not a list (or longer
/// than [`MAX_LIST_BODY`]).
async fn parse_list(
    mut response: reqwest::Response,
) -> Result<Result<ListEnvelope, String>, reqwest::Error> {
    let (chunks_tx, chunks_rx) = tokio::sync::mpsc::channel::<bytes::Bytes>(16);
    let parser = tokio::task::spawn_blocking(move || {
        let reader = ChunkReader {
            chunks_rx,
            chunk: bytes::Bytes::new(),
        };
        serde_json::from_reader::<_, ListEnvelope>(reader).map_err(|e| e.to_string())
    });
    let mut read = 0;
    let mut too_long = false;
    while let Some(chunk) = response.chunk().await? {
        read += chunk.len();
        if read > MAX_LIST_BODY {
            too_long = true;
            break;
        }
        if chunks_tx.send(chunk).await.is_err() {
            break; // the parser has its answer (or gave up): the rest is not read
        }
    }
    drop(chunks_tx);
    let parsed = parser.await.expect("parsing a list does not panic");
    if too_long {
        return Ok(Err(format!(
            "the answer is longer than {} MiB",
            MAX_LIST_BODY >> 20
        )));
    }
    Ok(parsed)
}

/// The chunks of a body as they arrive, as a blocking reader (for serde_json).
struct ChunkReader {
    chunks_rx: tokio::sync::mpsc::Receiver<bytes::Bytes>,
    chunk: bytes::Bytes,
}

impl std::io::Read for ChunkReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.chunk.is_empty() {
            match self.chunks_rx.blocking_recv() {
                Some(chunk) => self.chunk = chunk,
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.chunk.len());
        buf[..n].copy_from_slice(&self.chunk.split_to(n));
        Ok(n)
    }
}

/// A list's answer: `{"data": [{"name": ...}, ...], "error": null}`.
#[derive(serde::Deserialize)]
struct ListEnvelope {
    data: Option<Listing>,
    error: Option<ApiError>,
}

impl<'de> Deserialize<'de> for Listing {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Listing, D::Error> {
        deserializer.deserialize_seq(ListingVisitor)
    }
}

/// Reads `[{"name": ...}, ...]` straight into the set.
struct ListingVisitor;

impl<'de> Visitor<'de> for ListingVisitor {
    type Value = Listing;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list of workspaces")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Listing, A::Error> {
        let mut listing = Listing::default();
        while let Some(Named(name)) = seq.next_element()? {
            listing.push(&name);
        }
        Ok(listing.finish())
    }
}

/// One entry of the list: its `name`, every other key passed over.
struct Named(String);

impl<'de> Deserialize<'de> for Named {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Named, D::Error> {
        struct NamedVisitor;
        impl<'de> Visitor<'de> for NamedVisitor {
            type Value = Named;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a workspace with a name")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Named, A::Error> {
                let mut name = None;
                while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                    if key == "name" {
                        name = Some(map.next_value::<String>()?);
                    } else {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
                name.map(Named)
                    .ok_or_else(|| serde::de::Error::missing_field("name"))
            }
        }
        deserializer.deserialize_map(NamedVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_list_keeps_only_the_names() {
        let listing: Listing = serde_json::from_str(
            r#"[{"name":"Sales Analytics","id":7,"settings":{"a":[1,2]}},{"name":"b\"q"}]"#,
        )
        .unwrap();
        assert_eq!(listing.len(), 2);
        assert!(listing.contains("Sales Analytics") && listing.contains("b\"q"));
        assert!(!listing.contains("sales analytics"), "names are exact");
    }

    #[test]
    fn a_name_listed_twice_counts_once() {
        let listing: Listing =
            serde_json::from_str(r#"[{"name":"a"},{"name":"b"},{"name":"a"}]"#).unwrap();
        assert_eq!(listing.len(), 2);
        assert!(listing.contains("a") && listing.contains("b") && !listing.contains("c"));
    }

    #[test]
    fn an_entry_without_a_name_is_not_a_list() {
        assert!(serde_json::from_str::<Listing>(r#"[{"id":1}]"#).is_err());
        assert!(serde_json::from_str::<Listing>(r#"{"name":"a"}"#).is_err());
        assert!(serde_json::from_str::<Listing>(r#"[{"name":5}]"#).is_err());
    }
}
