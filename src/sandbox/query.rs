//! The sandbox's reading of a request: its JSON body, and the query of a list or a
//! delete, each as the operation it asks for or the 4xx answer that says why it is none.

use std::num::NonZeroU64;

use axum::body::Bytes;
use axum::extract::Query;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, StatusCode};

use super::config::MAX_BODY_BYTES;
use super::replies::{Listing, Parsed};
use crate::api::workspace::{Envelope, ErrorCode, WorkspaceRequest};

/// The query string's parameters, decoded, in order.
pub(super) type Params = Result<Query<Vec<(String, String)>>, QueryRejection>;

/// The body as a workspace request, or the 4xx answer that explains why it is not one.
pub(super) fn parse(
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<WorkspaceRequest, (u16, Envelope)> {
    let invalid = |status: u16, message: String| {
        let envelope = Envelope::err_with_status(ErrorCode::InvalidRequestBody, status, message);
        (status, envelope)
    };
    let body = body.map_err(|rejection| match rejection.status() {
        StatusCode::PAYLOAD_TOO_LARGE => invalid(
            413,
            format!("request body is larger than {MAX_BODY_BYTES} bytes"),
        ),
        _ => invalid(400, rejection.body_text()),
    })?;
    let content_type = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok());
    let is_json = content_type
        .and_then(|ct| ct.split(';').next())
        .is_some_and(|mime| mime.trim().eq_ignore_ascii_case("application/json"));
    if !is_json {
        return Err(invalid(
            400,
            "Content-Type must be application/json".to_owned(),
        ));
    }
    serde_json::from_slice(&body)
        .map_err(|e| invalid(400, format!("request body is not a valid workspace: {e}")))
}

/// A list's query parameters, spelt as the API spells them.
const IS_PAGINATION: &str = "isPagination";

const PAGE_NUMBER: &str = "pageNumber";

/// The parameters of a query string, or the 400 that says it is not one.
pub(super) fn params_of(params: Params) -> Parsed<Vec<(String, String)>> {
    params
        .map(|Query(params)| params)
        .map_err(|rejection| invalid_query(rejection.body_text()))
}

/// The value of parameter `key`, if given; given twice is a 400, since the two could
/// disagree.
fn single<'a>(params: &'a [(String, String)], key: &str) -> Parsed<Option<&'a str>> {
    let mut values = params.iter().filter(|(k, _)| k == key).map(|(_, v)| v);
    match (values.next(), values.next()) {
        (Some(_), Some(_)) => Err(invalid_query(format!("{key} is given more than once"))),
        (value, _) => Ok(value.map(String::as_str)),
    }
}

/// What a list asks for: `isPagination` (`true` or `false`, default `false`) and
/// `pageNumber` (a positive integer, default 1, checked even when not paginating). Other
/// parameters are ignored.
pub(super) fn listing(params: &[(String, String)]) -> Parsed<Listing> {
    let paginated = match single(params, IS_PAGINATION)? {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            return Err(invalid_query(format!(
                "{IS_PAGINATION} must be \"true\" or \"false\", not \"{other}\""
            )));
        }
    };
    let page = match single(params, PAGE_NUMBER)? {
        None => NonZeroU64::MIN,
        Some(number) => page_number(number).ok_or_else(|| {
            invalid_query(format!(
                "{PAGE_NUMBER} must be a positive integer, not \"{number}\""
            ))
        })?,
    };
    Ok(if paginated {
        Listing::Page(page)
    } else {
        Listing::All
    })
}

/// A page number: digits only, not zero. One too large for a `u64` is past any end.
fn page_number(text: &str) -> Option<NonZeroU64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    match text.parse::<u64>() {
        Ok(number) => NonZeroU64::new(number),
        Err(_) => Some(NonZeroU64::MAX),
    }
}

/// The `name` of a delete: required, and not blank (no workspace has a blank name).
pub(super) fn name_to_delete(params: &[(String, String)]) -> Parsed<String> {
    match single(params, "name")? {
        Some(name) if !name.trim().is_empty() => Ok(name.to_owned()),
        Some(_) => Err(invalid_query("name must not be empty".to_owned())),
        None => Err(invalid_query(
            "name is required: DELETE /api/v2/workspace?name=<name>".to_owned(),
        )),
    }
}

fn invalid_query(message: String) -> (u16, Envelope) {
    (400, Envelope::err(ErrorCode::InvalidRequestBody, message))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn page(n: u64) -> Listing {
        Listing::Page(NonZeroU64::new(n).unwrap())
    }

    /// The message of a refusal, after checking it is a 400 `INVALID_REQUEST_BODY`.
    fn refused<T: std::fmt::Debug>(parsed: Parsed<T>) -> String {
        let (status, envelope) = parsed.unwrap_err();
        assert_eq!(status, 400);
        let error = envelope.error.unwrap();
        assert_eq!(error.code, "INVALID_REQUEST_BODY");
        error.message
    }

    #[test]
    fn a_list_is_everything_unless_paginated_and_page_one_by_default() {
        let list = |pairs: &[(&str, &str)]| listing(&params(pairs));
        assert_eq!(list(&[]), Ok(Listing::All));
        assert_eq!(list(&[("isPagination", "false")]), Ok(Listing::All));
        assert_eq!(
            list(&[("isPagination", "false"), ("pageNumber", "3")]),
            Ok(Listing::All)
        );
        assert_eq!(list(&[("isPagination", "true")]), Ok(page(1)));
        assert_eq!(
            list(&[("pageNumber", "12"), ("isPagination", "true")]),
            Ok(page(12))
        );
        assert_eq!(
            list(&[("isPagination", "true"), ("pageNumber", "007")]),
            Ok(page(7))
        );
        assert_eq!(
            list(&[
                ("isPagination", "true"),
                ("pageNumber", "99999999999999999999999")
            ]),
            Ok(Listing::Page(NonZeroU64::MAX)),
            "a positive integer, past any end"
        );
        assert_eq!(
            list(&[("isPagination", "true"), ("colour", "red")]),
            Ok(page(1)),
            "other parameters are ignored"
        );
    }

    #[test]
    fn a_list_refuses_what_is_not_a_boolean_or_a_positive_integer() {
        let list = |pairs: &[(&str, &str)]| listing(&params(pairs));
        for value in ["", "TRUE", "yes", "1"] {
            let message = refused(list(&[("isPagination", value)]));
            assert!(message.contains("isPagination"), "{value}: {message}");
        }
        for value in ["", "0", "000", "-1", "+1", "1.0", "one", " 1"] {
            let pairs = [("isPagination", "true"), ("pageNumber", value)];
            let message = refused(list(&pairs));
            assert!(message.contains("pageNumber"), "{value}: {message}");
            // Checked when not paginating too.
            refused(list(&[("pageNumber", value)]));
        }
        let twice = [("isPagination", "true"), ("isPagination", "false")];
        assert!(refused(list(&twice)).contains("more than once"));
    }

    #[test]
    fn a_delete_needs_a_name_that_is_not_blank() {
        let name = |pairs: &[(&str, &str)]| name_to_delete(&params(pairs));
        assert_eq!(
            name(&[("name", "Sales & Ops")]),
            Ok("Sales & Ops".to_owned())
        );
        assert_eq!(name(&[("name", " padded ")]), Ok(" padded ".to_owned()));
        assert!(refused(name(&[])).contains("name is required"));
        assert!(refused(name(&[("Name", "a")])).contains("name is required"));
        assert!(refused(name(&[("name", "")])).contains("must not be empty"));
        assert!(refused(name(&[("name", "  ")])).contains("must not be empty"));
        assert!(refused(name(&[("name", "a"), ("name", "b")])).contains("more than once"));
    }
}
