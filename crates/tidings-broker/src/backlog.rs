//! `read_backlog`: what a broker subscriber resuming after a seq must get first — the stored messages after it, page by page, and the gap retention left.

use std::sync::Arc;

use tidings_protocol::{ChannelName, SharedMessage};

use crate::store::{Store, StoreError};

/// A gap (messages `from..=to` retention dropped) and the messages after
/// it, as a resuming subscriber gets them.
pub type Backlog = (Option<(u64, u64)>, Vec<Arc<SharedMessage>>);

/// Reads everything `store` has for `channel` after `after` up to `to`, in
/// pages of `page` messages, with the gap retention left before them.
pub async fn read_backlog<S: Store + ?Sized>(
    store: &S,
    channel: &ChannelName,
    after: u64,
    to: u64,
    page: usize,
) -> Result<Backlog, StoreError> {
    let mut gap = None;
    let mut out = Vec::new();
    let mut cur = after;
    while cur < to {
        let range = store.read_after(channel, cur, page.max(1)).await?;
        if cur == after {
            gap = range.gap.map(|(from, end)| (from, end.min(to)));
        }
        let Some(last) = range.messages.last().map(|m| m.seq) else {
            break;
        };
        out.extend(
            range
                .messages
                .into_iter()
                .filter(|m| m.seq <= to)
                .map(|m| Arc::new(SharedMessage::new(channel.clone(), m.seq, m.id, m.payload))),
        );
        cur = last;
    }
    Ok((gap, out))
}
