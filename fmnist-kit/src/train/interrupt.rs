//! An interrupt (Ctrl-C in a terminal, the stop button in Jupyter) as a [`StopRequest`]: while an
//! [`InterruptGuard`] lives, SIGINT does not end the process but asks the call that installed the
//! guard to stop. The training loop then rolls back to the end of its last finished epoch and
//! returns `Ok`, so that a notebook keeps its variables and running the cell again continues.
//!
//! The guard installs its handler with `sigaction`, keeps the action it replaced and puts it back
//! when it is dropped (also on an error or a panic). Outside a guard SIGINT keeps its usual
//! action, so a loop of one's own still stops at the first interrupt. In evcxr every cell is its
//! own library with its own copy of the kit, so nothing here keeps state between calls: the
//! handler only sets the flag of the request whose guard is the innermost one alive.
//!
//! An interrupt is for every call in the chain, not only the innermost: a guard that is dropped
//! after SIGINT arrived during its life sets the flag of the guard around it. Without that, an
//! interrupt that reaches an inner call after its last check (a feature extraction writing its
//! cache, a fit past its last batch) would be lost, and the loop around it would go on.

use std::ptr;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicUsize, Ordering};

use super::callback::StopRequest;
use super::trainer::Trainer;
use crate::error::{Error, Result};

/// The flag the handler sets: the one of the innermost live guard's request (null: none).
static OWNER: AtomicPtr<AtomicBool> = AtomicPtr::new(ptr::null_mut());

/// How many times the handler ran; a guard compares it at its end with its value at its start.
static INTERRUPTS: AtomicUsize = AtomicUsize::new(0);

extern "C" fn on_interrupt(_signal: libc::c_int) {
    // Only atomic operations: all a signal handler may safely do here.
    INTERRUPTS.fetch_add(1, Ordering::SeqCst);
    let flag = OWNER.load(Ordering::SeqCst);
    if !flag.is_null() {
        // SAFETY: a non-null OWNER points into the request a live guard holds (see `Drop`).
        unsafe { (*flag).store(true, Ordering::SeqCst) };
    }
}

/// While it lives, SIGINT sets its [`StopRequest`] instead of ending the process.
pub struct InterruptGuard {
    previous_action: libc::sigaction,
    previous_owner: *mut AtomicBool,
    /// [`INTERRUPTS`] when the guard was installed.
    interrupts_at_start: usize,
    /// Keeps the flag alive for as long as the handler may set it.
    request: StopRequest,
}

impl InterruptGuard {
    /// Routes SIGINT to `request` until the guard is dropped.
    pub fn install(request: &StopRequest) -> Result<InterruptGuard> {
        let request = request.clone();
        let interrupts_at_start = INTERRUPTS.load(Ordering::SeqCst);
        let previous_owner = OWNER.swap(request.flag_ptr(), Ordering::SeqCst);
        // SAFETY: a zeroed sigaction is a valid value to fill in; the handler only stores to an
        // atomic.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_interrupt as extern "C" fn(libc::c_int) as libc::sighandler_t;
            action.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut action.sa_mask);
            let mut previous_action: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(libc::SIGINT, &action, &mut previous_action) != 0 {
                OWNER.store(previous_owner, Ordering::SeqCst);
                return Err(Error::param(
                    "interrupt",
                    format!(
                        "could not install the SIGINT handler: {}",
                        std::io::Error::last_os_error()
                    ),
                ));
            }
            Ok(InterruptGuard {
                previous_action,
                previous_owner,
                interrupts_at_start,
                request,
            })
        }
    }

    /// Routes SIGINT to a request of the guard's own, for a call that checks it itself between
    /// two pieces of work ([`InterruptGuard::is_requested`]).
    pub fn install_own() -> Result<InterruptGuard> {
        InterruptGuard::install(&StopRequest::default())
    }

    /// True once SIGINT arrived while this guard was the innermost one alive, or once
    /// [`InterruptGuard::request`] was called.
    pub fn is_requested(&self) -> bool {
        self.request.is_requested()
    }

    /// Marks this guard's request as asked, e.g. when an inner call reported that it stopped at
    /// an interrupt, so that the outer loop stops too.
    pub fn request(&self) {
        self.request.request()
    }
}

/// Runs `fit` (a `fit` or `fit_tensors` of `trainer`) with SIGINT routed to the trainer's stop
/// request, so that an interrupt rolls it back to its last finished epoch. Returns the epochs
/// done when an interrupt stopped it, `None` when it ran to its end.
pub(crate) fn fit_interruptibly(
    trainer: &mut Trainer,
    fit: impl FnOnce(&mut Trainer) -> Result<()>,
) -> Result<Option<usize>> {
    let _interrupt = InterruptGuard::install(&trainer.stop_request())?;
    fit(trainer)?;
    Ok(trainer.interrupted_after())
}

impl Drop for InterruptGuard {
    fn drop(&mut self) {
        // SAFETY: puts back the action `install` replaced, then the previous owner's flag.
        unsafe {
            libc::sigaction(libc::SIGINT, &self.previous_action, ptr::null_mut());
        }
        OWNER.store(self.previous_owner, Ordering::SeqCst);
        if INTERRUPTS.load(Ordering::SeqCst) != self.interrupts_at_start
            && !self.previous_owner.is_null()
        {
            // SAFETY: the previous owner is the flag of the guard around this one, which guards
            // are scoped to outlive; so it is alive.
            unsafe { (*self.previous_owner).store(true, Ordering::SeqCst) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Raises SIGINT inside a guard (the flag is set, the process lives on), and checks that the
    /// action in place before the guard is the one in place after it.
    #[test]
    fn sigint_inside_a_guard_sets_its_request_and_the_old_action_comes_back() {
        let current = || unsafe {
            let mut now: libc::sigaction = std::mem::zeroed();
            libc::sigaction(libc::SIGINT, ptr::null(), &mut now);
            now.sa_sigaction
        };
        let before = current();
        let request = StopRequest::default();
        {
            let _guard = InterruptGuard::install(&request).expect("guard");
            assert_ne!(current(), before, "the guard's handler is installed");
            unsafe { libc::raise(libc::SIGINT) };
            assert!(request.is_requested(), "SIGINT set the request");
        }
        assert_eq!(current(), before, "the previous action is back");
        assert!(OWNER.load(Ordering::SeqCst).is_null());
    }
}
