//! `Inbox`: the queue between browser callbacks (`onmessage`, `onopen`, `onerror`) and a transport's `poll_recv`.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

/// What browser event callbacks hand to a wasm transport, shared as
/// `Rc<RefCell<Inbox<T>>>` (single-threaded: the page's event loop).
///
/// The browser gives no backpressure on incoming messages; the session's
/// limits (frame size, pending events) bound what the application sees.
#[derive(Debug)]
pub struct Inbox<T> {
    items: VecDeque<T>,
    opened: bool,
    ended: bool,
    waker: Option<Waker>,
}

impl<T> Default for Inbox<T> {
    fn default() -> Self {
        Self {
            items: VecDeque::new(),
            opened: false,
            ended: false,
            waker: None,
        }
    }
}

impl<T> Inbox<T> {
    /// A new shared inbox.
    pub fn shared() -> Rc<RefCell<Self>> {
        Rc::new(RefCell::new(Self::default()))
    }

    /// The connection opened (`onopen`).
    pub fn open(&mut self) {
        self.opened = true;
        self.wake();
    }

    /// An item arrived (`onmessage`).
    pub fn push(&mut self, item: T) {
        self.items.push_back(item);
        self.wake();
    }

    /// The connection ended (`onclose` / `onerror`).
    pub fn end(&mut self) {
        self.ended = true;
        self.wake();
    }

    /// Ready(true) once open, Ready(false) if it ended first.
    pub fn poll_opened(&mut self, cx: &mut Context<'_>) -> Poll<bool> {
        if self.opened {
            Poll::Ready(true)
        } else if self.ended {
            Poll::Ready(false)
        } else {
            self.waker = Some(cx.waker().clone());
            Poll::Pending
        }
    }

    /// The next item; Ready(None) once ended and drained.
    pub fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<T>> {
        if let Some(item) = self.items.pop_front() {
            return Poll::Ready(Some(item));
        }
        if self.ended {
            return Poll::Ready(None);
        }
        self.waker = Some(cx.waker().clone());
        Poll::Pending
    }

    fn wake(&mut self) {
        if let Some(w) = self.waker.take() {
            w.wake();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::task::Waker;

    #[test]
    fn items_then_end_in_order() {
        let mut cx = Context::from_waker(Waker::noop());
        let inbox = Inbox::<u32>::shared();
        assert!(inbox.borrow_mut().poll_opened(&mut cx).is_pending());
        inbox.borrow_mut().open();
        assert_eq!(inbox.borrow_mut().poll_opened(&mut cx), Poll::Ready(true));
        inbox.borrow_mut().push(1);
        inbox.borrow_mut().push(2);
        inbox.borrow_mut().end();
        let mut inbox = inbox.borrow_mut();
        assert_eq!(inbox.poll_next(&mut cx), Poll::Ready(Some(1)));
        assert_eq!(inbox.poll_next(&mut cx), Poll::Ready(Some(2)));
        assert_eq!(inbox.poll_next(&mut cx), Poll::Ready(None));
    }

    #[test]
    fn ending_before_open_is_a_failed_open() {
        let mut cx = Context::from_waker(Waker::noop());
        let mut inbox = Inbox::<u32>::default();
        inbox.end();
        assert_eq!(inbox.poll_opened(&mut cx), Poll::Ready(false));
    }
}
