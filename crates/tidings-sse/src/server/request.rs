//! What the SSE endpoint reads of a request: the session token of a POST, the `Last-Event-ID` of a stream, query parameters.

use std::borrow::Cow;

use http::{HeaderMap, Uri, header};

use crate::{LAST_EVENT_ID_PARAM, TOKEN_HEADER};

/// The session token of a POST: `x-tidings-token`, else `Authorization: Bearer`.
pub(super) fn token(headers: &HeaderMap) -> Option<String> {
    if let Some(t) = headers.get(TOKEN_HEADER).and_then(|v| v.to_str().ok()) {
        let t = t.trim();
        if !t.is_empty() {
            return Some(t.to_string());
        }
    }
    let auth = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, t) = auth.trim().split_once(' ')?;
    (scheme.eq_ignore_ascii_case("bearer") && !t.trim().is_empty()).then(|| t.trim().to_string())
}

/// `Last-Event-ID` (non-empty), else the `last_event_id` query parameter.
pub(super) fn last_event_id(headers: &HeaderMap, uri: &Uri) -> Option<String> {
    if let Some(v) = headers.get("last-event-id").and_then(|v| v.to_str().ok())
        && !v.is_empty()
    {
        return Some(v.to_string());
    }
    query_param(uri, LAST_EVENT_ID_PARAM)
        .filter(|v| !v.is_empty())
        .map(Cow::into_owned)
}

/// The first value of `name` in the query, percent-decoded (`None` if absent or not UTF-8).
pub(super) fn query_param<'a>(uri: &'a Uri, name: &str) -> Option<Cow<'a, str>> {
    uri.query()?.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == name).then(|| percent_decode(v)).flatten()
    })
}

fn percent_decode(s: &str) -> Option<Cow<'_, str>> {
    if !s.contains(['%', '+']) {
        return Some(Cow::Borrowed(s));
    }
    let mut out = Vec::with_capacity(s.len());
    let mut bytes = s.bytes();
    while let Some(b) = bytes.next() {
        match b {
            b'%' => {
                let hi = bytes.next().and_then(|c| (c as char).to_digit(16))?;
                let lo = bytes.next().and_then(|c| (c as char).to_digit(16))?;
                out.push((hi * 16 + lo) as u8);
            }
            b'+' => out.push(b' '),
            b => out.push(b),
        }
    }
    String::from_utf8(out).ok().map(Cow::Owned)
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    #[test]
    fn tokens_from_either_header() {
        let mut h = HeaderMap::new();
        assert_eq!(token(&h), None);
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer abc"),
        );
        assert_eq!(token(&h).as_deref(), Some("abc"));
        h.insert(TOKEN_HEADER, HeaderValue::from_static("xyz"));
        assert_eq!(token(&h).as_deref(), Some("xyz"), "x-tidings-token wins");
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert_eq!(token(&h), None);
    }

    #[test]
    fn last_event_id_header_wins_over_query() {
        let uri: Uri = "/sse?x=1&last_event_id=tok.5".parse().unwrap();
        let mut h = HeaderMap::new();
        assert_eq!(last_event_id(&h, &uri).as_deref(), Some("tok.5"));
        h.insert("last-event-id", HeaderValue::from_static("tok.9"));
        assert_eq!(last_event_id(&h, &uri).as_deref(), Some("tok.9"));
        h.insert("last-event-id", HeaderValue::from_static(""));
        assert_eq!(
            last_event_id(&h, &uri).as_deref(),
            Some("tok.5"),
            "an empty header is no id"
        );
        let uri: Uri = "/sse?last_event_id=t%2Eo.5".parse().unwrap();
        assert_eq!(
            last_event_id(&HeaderMap::new(), &uri).as_deref(),
            Some("t.o.5")
        );
        let uri: Uri = "/sse?last_event_id=%ZZ".parse().unwrap();
        assert_eq!(last_event_id(&HeaderMap::new(), &uri), None);
    }
}
