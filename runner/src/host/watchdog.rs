//! Steps cannot overstay their deadline inside a host call.
//!
//! The epoch deadline stops a plugin between instructions, but a host call that blocks
//! in the kernel (opening a FIFO that has no writer, reading one) never returns to
//! wasm, and the thread running it cannot serve anything else. File operations run in
//! place on the async worker (see `capabilities::StepSandbox::wasi`), so such a call
//! would hold a worker, and the step, forever.
//!
//! Every attempt's future is wrapped in [`Watched`], which notes which thread is
//! polling it. A watchdog thread looks every [`SCAN`]; when an attempt is past its
//! deadline and the same poll has been running since the previous look, it sends that
//! thread a signal whose handler does nothing and does not restart system calls: the
//! blocked call returns `EINTR`, the plugin gets an error, and the epoch check ends it
//! as timed out.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Once, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use crate::sandbox::{current_thread_id, install_interrupting_handler, signal_thread};

/// How often the watchdog looks.
const SCAN: Duration = Duration::from_millis(50);
/// Time past the deadline before a blocked call is interrupted.
const GRACE: Duration = Duration::from_millis(100);

/// The signal used to interrupt a blocked call.
fn interrupt_signal() -> i32 {
    libc::SIGRTMIN() + 5
}

struct Watch {
    deadline: Instant,
    /// Thread polling the attempt now (0: none).
    polling: AtomicI32,
    /// Counts polls, so that the watchdog can tell one long poll from many short ones.
    polls: AtomicU64,
    /// What the watchdog saw last time: (thread, poll count).
    seen: Mutex<(i32, u64)>,
}

static WATCHES: Mutex<Vec<Weak<Watch>>> = Mutex::new(Vec::new());
static START: Once = Once::new();

fn start_watchdog() {
    START.call_once(|| {
        if install_interrupting_handler(interrupt_signal()).is_err() {
            return;
        }
        let _ = std::thread::Builder::new()
            .name("sluice-watchdog".into())
            .spawn(|| {
                loop {
                    std::thread::sleep(SCAN);
                    scan();
                }
            });
    });
}

fn scan() {
    let mut watches = WATCHES.lock().unwrap_or_else(|e| e.into_inner());
    watches.retain(|w| w.strong_count() > 0);
    let now = Instant::now();
    for watch in watches.iter().filter_map(Weak::upgrade) {
        if now < watch.deadline + GRACE {
            continue;
        }
        let current = (
            watch.polling.load(Ordering::Acquire),
            watch.polls.load(Ordering::Acquire),
        );
        let mut seen = watch.seen.lock().unwrap_or_else(|e| e.into_inner());
        if current.0 != 0 && *seen == current {
            signal_thread(current.0, interrupt_signal());
        }
        *seen = current;
    }
}

/// An attempt's future, watched against `deadline`.
pub struct Watched<F> {
    inner: Pin<Box<F>>,
    watch: Arc<Watch>,
}

/// Watch `future`, which must not outlive `deadline` by much.
pub fn watch<F: Future>(deadline: Instant, future: F) -> Watched<F> {
    start_watchdog();
    let watch = Arc::new(Watch {
        deadline,
        polling: AtomicI32::new(0),
        polls: AtomicU64::new(0),
        seen: Mutex::new((0, 0)),
    });
    WATCHES
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(Arc::downgrade(&watch));
    Watched {
        inner: Box::pin(future),
        watch,
    }
}

impl<F: Future> Future for Watched<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        self.watch.polls.fetch_add(1, Ordering::AcqRel);
        self.watch
            .polling
            .store(current_thread_id(), Ordering::Release);
        let result = self.inner.as_mut().poll(cx);
        self.watch.polling.store(0, Ordering::Release);
        result
    }
}
