//! Which connection's POST inbox serves a session: resume token → live link, or how its stream ended.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tidings_protocol::{Instant, ResumeToken, SessionId};

use super::link::Link;

/// How often at most the registry looks for expired entries.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

#[derive(Debug)]
struct Entry {
    session: SessionId,
    /// Epoch of the session's connection that `conn` is.
    epoch: u64,
    conn: u64,
    /// The attached stream's link; after it ended, kept only while it holds
    /// frames it accepted but never read (a resume adopts them).
    link: Option<Arc<Link>>,
    ended: Option<Ended>,
}

/// How the last stream of a session ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Ended {
    pub(crate) code: u16,
    pub(crate) reason: String,
    /// The session lives on (the client may resume it); else it was closed.
    pub(crate) resumable: bool,
    at: Instant,
}

/// What a POST finds for its token.
#[derive(Debug)]
pub(crate) enum Lookup {
    /// No session has this token (never, or long expired).
    Unknown,
    /// A stream is attached.
    Live { session: SessionId, link: Arc<Link> },
    /// The session's last stream ended.
    Ended { session: SessionId, ended: Ended },
}

#[derive(Debug)]
struct Inner {
    entries: HashMap<ResumeToken, Entry>,
    last_sweep: Instant,
}

/// Session token → the connection whose inbox takes that session's POSTs.
///
/// An ended stream is remembered for `ttl` (so a late POST gets 409 "resume
/// first" or 410 "closed" instead of 404), then forgotten; memory is bounded
/// by the sessions of the last `ttl`.
#[derive(Debug)]
pub(crate) struct Registry {
    inner: Mutex<Inner>,
    ttl: Duration,
}

impl Registry {
    pub(crate) fn new(ttl: Duration) -> Self {
        Self {
            inner: Mutex::new(Inner {
                entries: HashMap::new(),
                last_sweep: Instant::now(),
            }),
            ttl,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Connection `conn` (epoch `epoch` of `session`) now carries its stream,
    /// unless a newer epoch already does (two resumes raced).
    pub(crate) fn attach(
        &self,
        token: &ResumeToken,
        session: SessionId,
        epoch: u64,
        conn: u64,
        link: Arc<Link>,
    ) {
        let mut inner = self.lock();
        let now = Instant::now();
        if now.duration_since(inner.last_sweep) >= SWEEP_EVERY {
            inner.last_sweep = now;
            let ttl = self.ttl;
            inner.entries.retain(|_, e| {
                e.ended
                    .as_ref()
                    .is_none_or(|x| now.duration_since(x.at) < ttl)
            });
        }
        if let Some(old) = inner.entries.get(token) {
            if old.epoch > epoch {
                return;
            }
            // Frames the previous stream accepted but never handed over.
            if let Some(older) = &old.link {
                link.adopt_inbox(older);
            }
        }
        let entry = Entry {
            session,
            epoch,
            conn,
            link: Some(link),
            ended: None,
        };
        inner.entries.insert(token.clone(), entry);
    }

    /// The stream of connection `conn` ended (ignored if a newer connection took over).
    pub(crate) fn ended(&self, token: &str, conn: u64, code: u16, reason: &str, resumable: bool) {
        let mut inner = self.lock();
        if let Some(e) = inner.entries.get_mut(&ResumeToken(token.to_string()))
            && e.conn == conn
            && e.ended.is_none()
        {
            // A resumable session's stream may leave frames it accepted but
            // never read: kept (for the ttl at most) for the stream that
            // resumes it. A closed session's are dropped with it.
            if !resumable || e.link.as_ref().is_some_and(|l| !l.has_inbox()) {
                e.link = None;
            }
            e.ended = Some(Ended {
                code,
                reason: reason.to_string(),
                resumable,
                at: Instant::now(),
            });
        }
    }

    pub(crate) fn lookup(&self, token: &str) -> Lookup {
        let inner = self.lock();
        let Some(e) = inner.entries.get(&ResumeToken(token.to_string())) else {
            return Lookup::Unknown;
        };
        match (&e.link, &e.ended) {
            (_, Some(ended)) if Instant::now().duration_since(ended.at) >= self.ttl => {
                Lookup::Unknown
            }
            (_, Some(ended)) => Lookup::Ended {
                session: e.session.clone(),
                ended: ended.clone(),
            },
            (Some(link), None) => Lookup::Live {
                session: e.session.clone(),
                link: link.clone(),
            },
            (None, None) => Lookup::Unknown,
        }
    }

    /// Sessions remembered (live or ended).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.lock().entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tok(s: &str) -> ResumeToken {
        ResumeToken(s.into())
    }

    #[test]
    fn newer_connections_win_and_ended_streams_are_remembered() {
        let r = Registry::new(Duration::from_secs(60));
        let (a, b) = (Link::new(1024, None), Link::new(1024, None));
        r.attach(&tok("t"), SessionId("s".into()), 2, 2, b.clone());
        // A resume that lost the race to a newer one does not take over...
        r.attach(&tok("t"), SessionId("s".into()), 1, 1, a);
        assert!(matches!(r.lookup("t"), Lookup::Live { link, .. } if Arc::ptr_eq(&link, &b)));
        // ...and its end changes nothing.
        r.ended("t", 1, 4006, "superseded", true);
        assert!(
            matches!(r.lookup("t"), Lookup::Live { .. }),
            "the old connection's end is ignored"
        );
        r.ended("t", 2, 1000, "bye", false);
        match r.lookup("t") {
            Lookup::Ended { session, ended } => {
                assert_eq!(session.0, "s");
                assert_eq!((ended.code, ended.resumable), (1000, false));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(r.lookup("other"), Lookup::Unknown));
    }

    fn frame(text: &'static str) -> Vec<bytes::Bytes> {
        vec![bytes::Bytes::from_static(text.as_bytes())]
    }

    #[tokio::test]
    async fn a_resumed_stream_adopts_frames_its_predecessor_never_read() {
        let r = Registry::new(Duration::from_secs(60));
        let (a, b, c) = (
            Link::new(1024, None),
            Link::new(1024, None),
            Link::new(1024, None),
        );
        r.attach(&tok("t"), SessionId("s".into()), 1, 1, a.clone());
        // Answered 202 on stream 1; the client then reconnected before its
        // connection read them.
        a.push(frame("one"), Duration::from_secs(1)).await.unwrap();
        a.push(frame("two"), Duration::from_secs(1)).await.unwrap();
        r.attach(&tok("t"), SessionId("s".into()), 2, 2, b.clone());
        assert!(!a.has_inbox());
        b.push(frame("three"), Duration::from_secs(1))
            .await
            .unwrap();
        assert_eq!(b.take_inbox(), ["one", "two", "three"]);
        // Stream 2 ends (resumable) with a frame unread: kept for the next stream.
        b.push(frame("four"), Duration::from_secs(1)).await.unwrap();
        r.ended("t", 2, 4001, "heartbeat", true);
        assert!(matches!(r.lookup("t"), Lookup::Ended { .. }));
        r.attach(&tok("t"), SessionId("s".into()), 3, 3, c.clone());
        assert_eq!(c.take_inbox(), ["four"]);
        // A closed session's unread frames go with it.
        c.push(frame("five"), Duration::from_secs(1)).await.unwrap();
        r.ended("t", 3, 1000, "bye", false);
        let d = Link::new(1024, None);
        r.attach(&tok("t"), SessionId("s".into()), 4, 4, d.clone());
        assert!(!d.has_inbox());
    }

    #[test]
    fn ended_entries_expire() {
        let r = Registry::new(Duration::ZERO);
        r.attach(&tok("t"), SessionId("s".into()), 1, 1, Link::new(1, None));
        r.ended("t", 1, 1006, "gone", true);
        assert!(matches!(r.lookup("t"), Lookup::Unknown));
        std::thread::sleep(SWEEP_EVERY);
        r.attach(&tok("u"), SessionId("s2".into()), 1, 2, Link::new(1, None));
        assert_eq!(r.len(), 1, "the expired entry was swept");
    }
}
