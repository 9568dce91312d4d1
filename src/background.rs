//! A background thread's place in the scheduler: the save thread, which walks
//! the keyspace for BGSAVE and BGREWRITEAOF, runs under Linux's `SCHED_IDLE`
//! policy, so it gets a CPU only when no worker (nor the machine's other
//! programs) wants it, and a worker that wakes takes the CPU back at once.
//!
//! Under the normal policy, even 10 nicer, the walk often ran flat out as
//! soon as it began (0.16 s of CPU in 0.2 s for 1,000,000 keys) and took the
//! CPU that a worker or its clients needed: GET's p99 during the save was
//! 0.56–0.60 ms in those rounds against 0.31 ms without a save, and whether a
//! round went that way was chance. As `SCHED_IDLE` the same walk spreads over
//! 0.85 s, still less than redis-server's 1.1–1.4 s, and every round's p99
//! stayed at 0.30–0.37 ms (`/tmp` runs of benches/rdb.py's GET-during-a-job
//! measurement, six rounds each).
//!
//! A thread that gets no idle CPU at all would never finish its save, so
//! [`tick`], which the walk calls between slices, watches how long the thread
//! waited to run (`/proc/thread-self/schedstat`, time on a run queue, not
//! time blocked on the disk): when it waited through nearly all of a
//! [`WINDOW`], it goes back to the normal policy, at the nice value it had
//! (the save thread's is 10 above the server's), until its next job.
//! [`urgent`] runs a piece at the normal policy, for the moments the thread
//! holds what every client waits for (the execution gate at a snapshot's
//! instant).

use std::cell::RefCell;
use std::time::{Duration, Instant};

/// How long a watch lasts.
pub const WINDOW: Duration = Duration::from_secs(1);

/// Waiting to run for more than this share of a window (in thousandths)
/// counts as starved.
const STARVED_PER_MILLE: u128 = 900;

/// The calling thread's watch, while it is a background thread.
struct Watch {
    window: Duration,
    /// Whether it runs at the normal policy until its next job.
    raised: bool,
    /// When the current window began, and the run-queue wait (ns) then.
    since: Instant,
    waited_since: u64,
}

thread_local! {
    static WATCH: RefCell<Option<Watch>> = const { RefCell::new(None) };
}

/// Makes the calling thread a background thread (`SCHED_IDLE`), watched over
/// windows of `window`. Returns false, and leaves the thread as it was, where
/// it could not come back to the normal policy ([`can_leave_idle`]) or its
/// run-queue wait cannot be read: nothing would then keep it from starving.
pub fn enter(window: Duration) -> bool {
    if run_queue_wait().is_none() || !can_leave_idle() || !set_policy(libc::SCHED_IDLE) {
        return false;
    }
    WATCH.with(|w| {
        *w.borrow_mut() = Some(Watch {
            window,
            raised: false,
            since: Instant::now(),
            waited_since: run_queue_wait().unwrap_or(0),
        })
    });
    true
}

/// Starts a job: a thread raised by its last job's watch is a background
/// thread again, and the watch starts afresh. Nothing on other threads.
pub fn begin_job() {
    WATCH.with(|w| {
        if let Some(watch) = w.borrow_mut().as_mut() {
            if watch.raised && set_policy(libc::SCHED_IDLE) {
                watch.raised = false;
            }
            watch.since = Instant::now();
            watch.waited_since = run_queue_wait().unwrap_or(0);
        }
    })
}

/// Between two pieces of a long job: once a window has passed, raises the
/// thread to the normal policy if it waited to run through nearly all of
/// it. One clock read otherwise; nothing on other threads.
pub fn tick() {
    WATCH.with(|w| {
        let mut w = w.borrow_mut();
        let Some(watch) = w.as_mut().filter(|w| !w.raised) else {
            return;
        };
        let now = Instant::now();
        let wall = now.duration_since(watch.since);
        if wall < watch.window {
            return;
        }
        let waited = run_queue_wait().unwrap_or(0);
        let starved = u128::from(waited.saturating_sub(watch.waited_since)) * 1000
            > wall.as_nanos() * STARVED_PER_MILLE;
        if starved && set_policy(libc::SCHED_OTHER) {
            watch.raised = true;
            tracing::debug!("the background thread got no idle CPU: it runs at the normal policy");
        }
        watch.since = now;
        watch.waited_since = waited;
    })
}

/// Runs `f` at the normal policy: for a piece that holds what clients wait
/// for. On other threads, only `f`.
pub fn urgent<R>(f: impl FnOnce() -> R) -> R {
    let idle = WATCH.with(|w| w.borrow().as_ref().is_some_and(|w| !w.raised));
    if idle {
        set_policy(libc::SCHED_OTHER);
    }
    let r = f();
    if idle {
        set_policy(libc::SCHED_IDLE);
    }
    r
}

/// Whether the calling thread, once `SCHED_IDLE`, may go back to the normal
/// policy: Linux allows it with `CAP_SYS_NICE` (which a container may not
/// grant even to root), or when `RLIMIT_NICE` allows the thread's nice value.
pub fn can_leave_idle() -> bool {
    // SAFETY: plain system calls about the calling thread; errno is cleared
    // first because -1 is also a nice value getpriority may return.
    let (nice, limit) = unsafe {
        *libc::__errno_location() = 0;
        let nice = libc::getpriority(libc::PRIO_PROCESS, 0);
        if nice == -1 && *libc::__errno_location() != 0 {
            return false;
        }
        let mut limit: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NICE, &mut limit) != 0 {
            limit.rlim_cur = 0;
        }
        (nice, limit.rlim_cur)
    };
    if limit >= (20 - i64::from(nice)).max(0) as u64 {
        return true;
    }
    const CAP_SYS_NICE: u32 = 23;
    std::fs::read_to_string("/proc/thread-self/status")
        .ok()
        .and_then(|status| {
            let hex = status.lines().find_map(|l| l.strip_prefix("CapEff:"))?;
            u64::from_str_radix(hex.trim(), 16).ok()
        })
        .is_some_and(|caps| caps & (1 << CAP_SYS_NICE) != 0)
}

/// Whether the calling thread is a background thread now (`SCHED_IDLE`).
pub fn is_idle() -> bool {
    // SAFETY: a plain system call about the calling thread.
    unsafe { libc::sched_getscheduler(0) == libc::SCHED_IDLE }
}

fn set_policy(policy: libc::c_int) -> bool {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: a plain system call on the calling thread with a valid param;
    // the thread's nice value is kept across the change.
    let ok = unsafe { libc::sched_setscheduler(0, policy, &param) } == 0;
    if !ok {
        let error = std::io::Error::last_os_error();
        tracing::debug!("cannot set the background thread's policy: {error}");
    }
    ok
}

/// Nanoseconds the calling thread has spent runnable but waiting for a CPU
/// (the second field of `/proc/thread-self/schedstat`).
fn run_queue_wait() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    text.split_ascii_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    /// Pins the calling thread to CPU 0 (for tests that make two threads
    /// share one CPU).
    pub(crate) fn pin_to_cpu0() {
        // SAFETY: a valid cpu_set_t for the calling thread.
        unsafe {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            libc::CPU_SET(0, &mut set);
            let size = std::mem::size_of::<libc::cpu_set_t>();
            assert_eq!(libc::sched_setaffinity(0, size, &set), 0);
        }
    }

    /// A thread that never sleeps, pinned to CPU 0, until dropped.
    pub(crate) struct Hog {
        stop: Arc<AtomicBool>,
        thread: Option<std::thread::JoinHandle<()>>,
    }

    impl Hog {
        pub(crate) fn on_cpu0() -> Hog {
            let stop = Arc::new(AtomicBool::new(false));
            let thread = {
                let stop = stop.clone();
                std::thread::spawn(move || {
                    pin_to_cpu0();
                    while !stop.load(Ordering::Relaxed) {
                        std::hint::spin_loop();
                    }
                })
            };
            Hog {
                stop,
                thread: Some(thread),
            }
        }
    }

    impl Drop for Hog {
        fn drop(&mut self) {
            self.stop.store(true, Ordering::Relaxed);
            if let Some(t) = self.thread.take() {
                let _ = t.join();
            }
        }
    }

    #[test]
    fn a_background_thread_runs_idle_and_urgent_pieces_at_the_normal_policy() {
        std::thread::spawn(|| {
            assert!(!is_idle());
            // Outside a background thread, `urgent` changes nothing.
            assert!(!urgent(is_idle));
            if !can_leave_idle() {
                // Not on this machine: the thread stays as it is.
                assert!(!enter(WINDOW));
                assert!(!is_idle());
                return;
            }
            assert!(enter(WINDOW));
            assert!(is_idle());
            assert!(!urgent(is_idle));
            assert!(is_idle());
            tick();
            assert!(is_idle(), "raised before a window passed");
        })
        .join()
        .unwrap();
    }

    #[test]
    fn a_background_thread_that_gets_no_cpu_goes_back_to_the_normal_policy_until_its_next_job() {
        if !can_leave_idle() {
            return;
        }
        // A thread that never sleeps shares CPU 0 with the background
        // thread, which as SCHED_IDLE then waits for nearly all of a window.
        let hog = Hog::on_cpu0();
        let background = std::thread::spawn(|| {
            pin_to_cpu0();
            assert!(enter(Duration::from_millis(100)));
            let started = Instant::now();
            while is_idle() && started.elapsed() < Duration::from_secs(20) {
                // A piece of work, then a look at the watch.
                let until = Instant::now() + Duration::from_micros(200);
                while Instant::now() < until {
                    std::hint::spin_loop();
                }
                tick();
            }
            let raised = !is_idle();
            begin_job();
            (raised, is_idle())
        });
        let (raised, idle_again) = background.join().unwrap();
        drop(hog);
        assert!(raised, "never raised in 20 s on a CPU it never got");
        assert!(idle_again, "the next job did not start as SCHED_IDLE");
    }
}
