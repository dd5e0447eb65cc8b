//! `Origins`: the allow-list of page origins a browser may open a connection from (cross-site WebSocket hijacking defence).

use axum::http::{HeaderMap, header};

/// Which `Origin`s may open connections. By default every origin may (the
/// endpoints work from any page and from non-browser clients); with an
/// allow-list, a request whose `Origin` header is not on it is refused with
/// 403 before anything else happens. Requests without an `Origin` header
/// (not sent by a browser) are let through: the check is a browser defence,
/// and authentication is what stops other clients.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Origins {
    allowed: Option<Vec<String>>,
}

impl Origins {
    /// Any origin.
    pub fn any() -> Self {
        Self::default()
    }

    /// Only these origins (`scheme://host[:port]`, compared case-insensitively).
    pub fn only<I, S>(origins: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            allowed: Some(
                origins
                    .into_iter()
                    .map(|o| o.into().trim_end_matches('/').to_ascii_lowercase())
                    .collect(),
            ),
        }
    }

    /// The request's origin when it is not allowed.
    pub(crate) fn refused(&self, headers: &HeaderMap) -> Option<String> {
        let allowed = self.allowed.as_ref()?;
        let origin = headers.get(header::ORIGIN)?;
        let origin = String::from_utf8_lossy(origin.as_bytes()).to_ascii_lowercase();
        (!allowed.contains(&origin)).then_some(origin)
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    #[test]
    fn only_listed_origins_pass_and_a_missing_origin_passes() {
        let o = Origins::only(["https://app.example/"]);
        let mut h = HeaderMap::new();
        assert_eq!(o.refused(&h), None, "no Origin: not a browser");
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://APP.example"),
        );
        assert_eq!(o.refused(&h), None);
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://evil.example"),
        );
        assert_eq!(o.refused(&h).as_deref(), Some("https://evil.example"));
        assert_eq!(Origins::any().refused(&h), None);
    }
}
