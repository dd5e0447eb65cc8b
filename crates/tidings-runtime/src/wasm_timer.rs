//! `WasmTimer`: the driver [`Timer`] on the browser's `setTimeout` (feature `wasm`, wasm32 only).

use std::cell::RefCell;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use wasm_bindgen::JsCast;
use wasm_bindgen::closure::Closure;
use web_time::Instant;

use crate::timer::Timer;

/// A [`Timer`] on the browser's `setTimeout`.
#[derive(Default)]
pub struct WasmTimer {
    deadline: Option<Instant>,
    handle: Option<(i32, Closure<dyn FnMut()>)>,
    waker: Rc<RefCell<Option<Waker>>>,
    /// Set by the armed timeout's callback when it ran.
    waker_fired: Rc<std::cell::Cell<bool>>,
}

impl std::fmt::Debug for WasmTimer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WasmTimer")
            .field("deadline", &self.deadline)
            .finish()
    }
}

impl WasmTimer {
    fn clear(&mut self) {
        if let (Some((id, _)), Some(window)) = (self.handle.take(), web_sys::window()) {
            window.clear_timeout_with_handle(id);
        }
    }
}

impl Drop for WasmTimer {
    fn drop(&mut self) {
        self.clear();
    }
}

impl Timer for WasmTimer {
    fn reset(&mut self, deadline: Option<Instant>) {
        if deadline == self.deadline {
            return;
        }
        self.clear();
        self.deadline = deadline;
        let (Some(d), Some(window)) = (deadline, web_sys::window()) else {
            return;
        };
        // Rounded up: browsers may fire a timeout a little early, and one
        // that fires before the deadline is re-armed (`poll_elapsed`).
        let ms = d
            .saturating_duration_since(Instant::now())
            .as_micros()
            .div_ceil(1000)
            .min(i32::MAX as u128) as i32;
        let waker = self.waker.clone();
        let fired = self.waker_fired.clone();
        fired.set(false);
        let cb = Closure::<dyn FnMut()>::new(move || {
            fired.set(true);
            if let Some(w) = waker.borrow_mut().take() {
                w.wake();
            }
        });
        if let Ok(id) = window
            .set_timeout_with_callback_and_timeout_and_arguments_0(cb.as_ref().unchecked_ref(), ms)
        {
            self.handle = Some((id, cb));
        }
    }

    fn poll_elapsed(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        match self.deadline {
            Some(d) if Instant::now() >= d => {
                self.deadline = None;
                self.clear();
                Poll::Ready(())
            }
            Some(d) => {
                *self.waker.borrow_mut() = Some(cx.waker().clone());
                // The timeout fired before the deadline (browsers round and
                // clamp): nothing would wake us again, so arm a new one.
                if self.waker_fired.get() {
                    self.deadline = None;
                    self.reset(Some(d));
                }
                Poll::Pending
            }
            None => Poll::Pending,
        }
    }
}
