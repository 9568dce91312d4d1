//! A background thread's place in the scheduler: the save thread, which walks
//! the keyspace for BGSAVE and BGREWRITEAOF, runs under Linux's `SCHED_IDLE`
//! policy, so it gets little of a CPU that a worker (or the machine's other
//! programs) wants, and a worker that wakes takes the CPU back at once.
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
//! On a machine whose CPUs other programs keep busy, such a thread gets a
//! sliver of CPU: its save would crawl, and a shard lock it holds would keep
//! the workers waiting that long. So [`tick`], which the walk calls between
//! slices, compares the time the thread spent waiting on a run queue with the
//! time it ran (`/proc/thread-self/schedstat`; time blocked on the disk is
//! neither): when over a [`WINDOW`] it waited more than nineteen times as
//! long as it ran (it got less than a twentieth of the CPU it wanted), it goes
//! back to the normal policy, at the nice value it had (the
//! save thread's is 10 above the server's), until its next job. [`urgent`]
//! runs a piece at the normal policy, for the moments the thread holds what
//! clients wait for (the execution gate at a snapshot's instant, a shard's
//! lock for a slice of the walk, the AOF's lock).

use std::cell::RefCell;
use std::time::{Duration, Instant};

/// How long a watch lasts.
pub const WINDOW: Duration = Duration::from_secs(1);

/// Waiting to run more than this many times as long as it ran counts as
/// starved. With 9 over 250 ms, the walk of benches/rdb.py (both CPUs busy
/// with the worker and the benchmark, the walk running in their gaps, 0.17 s
/// of CPU against 0.7 s of waiting in all) was raised in some windows, and
/// GET's p99 went back to 0.37–0.87 ms.
const STARVED_RATIO: u64 = 19;

/// The calling thread's watch, while it is a background thread.
struct Watch {
    window: Duration,
    /// Whether it runs at the normal policy until its next job.
    raised: bool,
    /// When the current window began, and the thread's (run, wait) ns then.
    since: Instant,
    times_since: (u64, u64),
}

thread_local! {
    static WATCH: RefCell<Option<Watch>> = const { RefCell::new(None) };
}

/// Makes the calling thread a background thread (`SCHED_IDLE`), watched over
/// windows of `window`. Returns false, and leaves the thread as it was, where
/// it could not come back to the normal policy ([`can_leave_idle`]) or its
/// scheduler times cannot be read: nothing would then keep it from starving.
pub fn enter(window: Duration) -> bool {
    if sched_times().is_none() || !can_leave_idle(0) || !set_policy(libc::SCHED_IDLE) {
        return false;
    }
    WATCH.with(|w| {
        *w.borrow_mut() = Some(Watch {
            window,
            raised: false,
            since: Instant::now(),
            times_since: sched_times().unwrap_or_default(),
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
            watch.times_since = sched_times().unwrap_or_default();
        }
    })
}

/// Between two pieces of a long job: once a window has passed, raises the
/// thread to the normal policy if it waited to run more than
/// [`STARVED_RATIO`] times as long as it ran. One clock read otherwise;
/// nothing on other threads.
pub fn tick() {
    WATCH.with(|w| {
        let mut w = w.borrow_mut();
        let Some(watch) = w.as_mut().filter(|w| !w.raised) else {
            return;
        };
        let now = Instant::now();
        if now.duration_since(watch.since) < watch.window {
            return;
        }
        let times = sched_times().unwrap_or(watch.times_since);
        let ran = times.0.saturating_sub(watch.times_since.0);
        let waited = times.1.saturating_sub(watch.times_since.1);
        if waited > ran.saturating_mul(STARVED_RATIO) && set_policy(libc::SCHED_OTHER) {
            watch.raised = true;
            tracing::debug!("the background thread got little CPU: it runs at the normal policy");
        }
        watch.since = now;
        watch.times_since = times;
    })
}

/// Runs `f` at the normal policy: for a piece that holds what clients wait
/// for. On other threads, only `f`.
pub fn urgent<R>(f: impl FnOnce() -> R) -> R {
    let idle = WATCH.with(|w| w.borrow().as_ref().is_some_and(|w| !w.raised));
    if idle && !set_policy(libc::SCHED_OTHER) {
        tracing::warn!("the background thread could not leave SCHED_IDLE");
    }
    let r = f();
    if idle {
        set_policy(libc::SCHED_IDLE);
    }
    r
}

/// Whether a thread like the calling one, `nicer_by` nicer, may leave
/// `SCHED_IDLE` once in it. Linux allows it with `CAP_SYS_NICE` in the
/// initial user namespace (a container may not have it even as root), or
/// when `RLIMIT_NICE` allows the thread's nice value; rather than judge
/// those, a short-lived thread (which inherits the nice value, the policy
/// and the credentials) tries it.
pub fn can_leave_idle(nicer_by: i32) -> bool {
    let probe = std::thread::Builder::new().name("latchkey-probe".into());
    let probe = probe.spawn(move || {
        if nicer_by != 0 {
            lower_priority(nicer_by);
        }
        set_policy(libc::SCHED_IDLE) && set_policy(libc::SCHED_OTHER)
    });
    // No thread to try with (a limit on threads): stay as it is.
    probe.ok().and_then(|p| p.join().ok()).unwrap_or(false)
}

/// Makes the calling thread `by` nicer than it is (at most 19). Linux keeps a
/// nice value per thread, so this thread's alone changes. Failing leaves it
/// as it was.
pub fn lower_priority(by: i32) {
    // SAFETY: plain system calls on the calling thread; errno is cleared
    // first because -1 is also a nice value getpriority may return.
    let failed = unsafe {
        *libc::__errno_location() = 0;
        let now = libc::getpriority(libc::PRIO_PROCESS, 0);
        (now == -1 && *libc::__errno_location() != 0)
            || libc::setpriority(libc::PRIO_PROCESS, 0, (now + by).min(19)) != 0
    };
    if failed {
        let error = std::io::Error::last_os_error();
        tracing::debug!("cannot lower the thread's priority: {error}");
    }
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

/// Nanoseconds the calling thread has run and has spent runnable but waiting
/// for a CPU (the first two fields of `/proc/thread-self/schedstat`); `None`
/// where the kernel does not keep them: it then shows zeros, and the count of
/// times the thread ran (the third field) is zero too. A fresh thread may
/// read a run time of 0 before it is first switched out, but it has run once.
fn sched_times() -> Option<(u64, u64)> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let mut fields = text.split_ascii_whitespace().map(|f| f.parse::<u64>());
    let (ran, waited, runs) = (
        fields.next()?.ok()?,
        fields.next()?.ok()?,
        fields.next()?.ok()?,
    );
    (runs > 0).then_some((ran, waited))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    /// Pins the calling thread to the first CPU it may run on (for tests
    /// that make two threads share one CPU: both pick the same one, the
    /// process's CPUs being the same for every thread that has not pinned
    /// itself, and a pinned thread's the one it pinned to).
    pub(crate) fn pin_to_first_cpu() {
        // SAFETY: valid cpu_set_t values for the calling thread.
        unsafe {
            let size = std::mem::size_of::<libc::cpu_set_t>();
            let mut allowed: libc::cpu_set_t = std::mem::zeroed();
            assert_eq!(libc::sched_getaffinity(0, size, &mut allowed), 0);
            let first = (0..libc::CPU_SETSIZE as usize)
                .find(|&c| libc::CPU_ISSET(c, &allowed))
                .expect("a CPU");
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            libc::CPU_SET(first, &mut set);
            assert_eq!(libc::sched_setaffinity(0, size, &set), 0);
        }
    }

    /// A thread that never sleeps, pinned to the first CPU, until dropped.
    pub(crate) struct Hog {
        stop: Arc<AtomicBool>,
        thread: Option<std::thread::JoinHandle<()>>,
    }

    impl Hog {
        pub(crate) fn on_first_cpu() -> Hog {
            let stop = Arc::new(AtomicBool::new(false));
            let thread = {
                let stop = stop.clone();
                std::thread::spawn(move || {
                    pin_to_first_cpu();
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
            if !can_leave_idle(0) {
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
        if !can_leave_idle(0) {
            return;
        }
        // A thread that never sleeps shares a CPU with the background
        // thread, which as SCHED_IDLE then waits for nearly all of a window.
        let hog = Hog::on_first_cpu();
        let background = std::thread::spawn(|| {
            pin_to_first_cpu();
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
