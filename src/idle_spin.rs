//! `idle-spin-us`: before a worker of the binary's runtime goes to sleep, it
//! may watch for new work for a while — an event on the runtime's epoll
//! descriptor, or a task another thread woke — and goes on at once when
//! some comes. A timer due meanwhile fires when the spin ends, at most one
//! spin late.
//!
//! On a virtual machine, waking a CPU that has gone idle is slow (an
//! interrupt to a halted virtual CPU), and the client whose request wakes
//! it pays much of that inside its own `send`. A client that sends one
//! command at a time, as a test suite does, pays it on every round trip:
//! here a redis-py GET took 70 µs without a spin and 38 µs with one. A
//! worker still spinning when the next command arrives is not asleep, so
//! nothing has to wake it.
//!
//! How long to spin is learned, as Linux's haltpoll governor learns how long
//! an idle CPU polls before it halts ([`Window`]): each worker times its
//! idle moments, from the start of the spin to its next wake-up. One that
//! outlasted the spin but not `idle-spin-us` doubles the spin (from 50 µs),
//! up to `idle-spin-us`; one that outlasted `idle-spin-us` halves it. A
//! server whose work comes back within the limit spins that long and no
//! longer; a quiet one soon stops spinning. The option is the limit; 0 never
//! spins.
//!
//! The spin runs with one worker only (tokio wakes no sleeping worker while
//! another is in its park hook). Where the process may run on just that one
//! CPU, each turn of the spin yields it, since the client may be waiting for
//! it; a yield that gave the CPU away for longer than the spin ends the spin
//! and the worker learns again from nothing.
//!
//! tokio does not hand out its driver's descriptor: [`IdleSpin::new`] notes
//! the process's epoll descriptors before the runtime is built and
//! [`IdleSpin::found`] takes the ones the build added (the driver's, and the
//! duplicate of it tokio keeps). A task woken from another thread (an
//! `appendfsync always` reply, a finished save) goes to the runtime's global
//! queue and writes nothing to the epoll set while the worker is awake, so
//! the spin also ends when that queue is not empty.

use std::cell::Cell;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use tokio::runtime::Handle;

/// What a spin watches: the runtime's epoll descriptors and its queue.
#[derive(Debug)]
struct Watched {
    fds: Vec<i32>,
    runtime: Handle,
}

/// The spin's length, and what it watches once found.
#[derive(Debug, Clone)]
pub struct IdleSpin {
    spin: Duration,
    /// Whether each turn of the spin yields the CPU: the process may run on
    /// no more CPUs than it has workers, so its client may share one.
    yield_cpu: bool,
    before: Vec<i32>,
    watched: Arc<OnceLock<Watched>>,
}

impl IdleSpin {
    /// Notes the epoll descriptors open now; call it before building the
    /// runtime of `workers` workers. `Ok(None)` for a spin of 0; `Err` with
    /// the reason where a spin would do harm or cannot work, and the server
    /// runs without one:
    /// - more than one worker: a worker spinning in tokio's park hook still
    ///   counts as searching for work, and tokio wakes no sleeping sibling
    ///   for work queued meanwhile.
    ///
    /// With no more CPUs than workers in the process's affinity (a `taskset`
    /// to one CPU), the spin gives the CPU to any other thread that wants it
    /// at each turn, since the client it waits for may be one of them.
    pub fn new(us: u64, workers: usize) -> Result<Option<IdleSpin>, String> {
        if us == 0 {
            return Ok(None);
        }
        if workers > 1 {
            return Err(format!("not used with {workers} io-threads"));
        }
        let cpus = cpus_allowed();
        let before = epoll_fds().map_err(|e| format!("cannot list descriptors: {e}"))?;
        Ok(Some(IdleSpin {
            spin: Duration::from_micros(us),
            yield_cpu: cpus <= workers,
            before,
            watched: Arc::new(OnceLock::new()),
        }))
    }

    /// What the runtime runs before a worker parks (`on_thread_park`): the
    /// worker's idle moment starts, and it spins as long as its [`Window`]
    /// says. It does nothing until [`IdleSpin::found`] has succeeded.
    pub fn park_hook(&self) -> impl Fn() + Send + Sync + 'static {
        let (watched, max, yield_cpu) = (self.watched.clone(), self.spin, self.yield_cpu);
        move || {
            if let Some(w) = watched.get() {
                let start = Instant::now();
                let spin = WORKER.with(|state| {
                    let mut worker = state.get();
                    worker.idle_since = Some(start);
                    state.set(worker);
                    worker.window.spin(max)
                });
                if !spin.is_zero() {
                    let cpu_before = thread_cpu_ns();
                    let ended = spin_on(&w.fds, spin, yield_cpu, || {
                        w.runtime.metrics().global_queue_depth() > 0
                    });
                    SPUN_NS.fetch_add(
                        thread_cpu_ns().saturating_sub(cpu_before),
                        Ordering::Relaxed,
                    );
                    if ended == Ended::Contended {
                        // Another thread wants this CPU for longer than a
                        // spin: spinning would only hand it the CPU and
                        // wait; start learning again from nothing.
                        WORKER.with(|state| {
                            let mut worker = state.get();
                            worker.window = Window::default();
                            state.set(worker);
                        });
                    }
                }
            }
        }
    }

    /// What the runtime runs when a worker wakes (`on_thread_unpark`): the
    /// idle moment's length teaches the worker's [`Window`].
    pub fn unpark_hook(&self) -> impl Fn() + Send + Sync + 'static {
        let max = self.spin;
        move || {
            WORKER.with(|state| {
                let mut worker = state.get();
                if let Some(since) = worker.idle_since.take() {
                    worker.window.learn(since.elapsed(), max);
                    state.set(worker);
                }
            })
        }
    }

    /// After the runtime is built: takes the epoll descriptors the build
    /// added, and the runtime. An error if no descriptor was added.
    pub fn found(&self, runtime: Handle) -> Result<(), String> {
        let fds: Vec<i32> = epoll_fds()
            .map_err(|e| format!("cannot list descriptors: {e}"))?
            .into_iter()
            .filter(|fd| !self.before.contains(fd))
            .collect();
        if fds.is_empty() {
            return Err("the runtime's epoll descriptor was not found".into());
        }
        let _ = self.watched.set(Watched { fds, runtime });
        Ok(())
    }
}

/// Nanoseconds every worker has spent spinning, for INFO's `cpu` section.
static SPUN_NS: AtomicU64 = AtomicU64::new(0);

/// The CPU time the process's workers have spent spinning so far, which
/// served no command (INFO `used_cpu_idle_spin`; measured with each
/// thread's CPU clock, so a yield's time in other threads is not in it).
pub fn spun() -> Duration {
    Duration::from_nanos(SPUN_NS.load(Ordering::Relaxed))
}

/// A worker's spin so far, and when its current idle moment started.
#[derive(Debug, Clone, Copy, Default)]
struct Worker {
    window: Window,
    idle_since: Option<Instant>,
}

thread_local! {
    static WORKER: Cell<Worker> = Cell::new(Worker::default());
}

/// The spin before a worker sleeps, learned from its idle moments as
/// Linux's haltpoll governor learns its poll time: it starts at nothing.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Window {
    spin: Duration,
}

/// Where a spin grows from.
const GROW_FROM: Duration = Duration::from_micros(50);

impl Window {
    /// How long to spin now, at most `max`.
    fn spin(self, max: Duration) -> Duration {
        self.spin.min(max)
    }

    /// An idle moment lasted `idle` (from the start of its spin to the
    /// wake-up): one that outlasted the spin but not `max` would have been
    /// caught by a longer spin, so the spin doubles (to at least
    /// [`GROW_FROM`], at most `max`); one that outlasted `max` would not,
    /// so it halves (below [`GROW_FROM`], to nothing, as haltpoll does).
    /// One the spin caught leaves it as it is.
    fn learn(&mut self, idle: Duration, max: Duration) {
        if idle > max {
            self.spin /= 2;
            if self.spin < GROW_FROM {
                self.spin = Duration::ZERO;
            }
        } else if idle > self.spin {
            self.spin = (self.spin * 2).max(GROW_FROM).min(max);
        }
    }
}

/// The process's epoll descriptors (`/proc/self/fd` links to
/// `anon_inode:[eventpoll]`).
fn epoll_fds() -> io::Result<Vec<i32>> {
    let mut fds = Vec::new();
    for entry in std::fs::read_dir("/proc/self/fd")? {
        let entry = entry?;
        let is_epoll = std::fs::read_link(entry.path())
            .is_ok_and(|target| target.as_os_str() == "anon_inode:[eventpoll]");
        if let (true, Some(fd)) = (is_epoll, entry.file_name().to_str()) {
            if let Ok(fd) = fd.parse() {
                fds.push(fd);
            }
        }
    }
    Ok(fds)
}

/// How a spin ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ended {
    /// Work came, or the spin's time passed.
    Done,
    /// A yield gave the CPU to another thread for longer than the spin.
    Contended,
}

/// Returns once one of the epoll descriptors `fds` has an event ready
/// (`poll` on an epoll descriptor says so without taking the event), `woken`
/// says so, or `spin` has passed. With `yield_cpu`, each turn lets any other
/// thread waiting for this CPU run first; a yield that lasted longer than
/// the whole spin ends it as [`Ended::Contended`].
fn spin_on(fds: &[i32], spin: Duration, yield_cpu: bool, woken: impl Fn() -> bool) -> Ended {
    let start = Instant::now();
    // On the stack: the runtime has two epoll descriptors, and a spin
    // starts each time the worker runs out of work.
    let mut pfds: smallvec::SmallVec<[libc::pollfd; 4]> = fds
        .iter()
        .map(|&fd| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    while start.elapsed() < spin {
        // SAFETY: `pfds` is a valid array of its length; a zero timeout.
        if unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, 0) } != 0 || woken() {
            return Ended::Done;
        }
        if yield_cpu {
            let before = Instant::now();
            std::thread::yield_now();
            if before.elapsed() > spin {
                return Ended::Contended;
            }
        } else {
            for _ in 0..64 {
                std::hint::spin_loop();
            }
        }
    }
    Ended::Done
}

/// The calling thread's CPU time so far, in nanoseconds.
fn thread_cpu_ns() -> u64 {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `t` is a valid timespec to write.
    if unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) } != 0 {
        return 0;
    }
    (t.tv_sec as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(t.tv_nsec as u64)
}

/// The CPUs this process may run on (its affinity mask; a CPU quota does not
/// narrow it).
fn cpus_allowed() -> usize {
    // SAFETY: a zeroed cpu_set_t is a valid, empty set for the kernel to fill.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return std::thread::available_parallelism().map_or(1, |n| n.get());
        }
        libc::CPU_COUNT(&set) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::background::tests::pin_to_first_cpu;

    #[test]
    fn a_spin_ends_when_the_descriptor_is_ready_or_work_is_woken_and_else_at_its_length() {
        // SAFETY: plain descriptor calls on descriptors this test owns.
        unsafe {
            let ep = libc::epoll_create1(libc::EPOLL_CLOEXEC);
            let ev = libc::eventfd(0, libc::EFD_CLOEXEC);
            assert!(ep >= 0 && ev >= 0);
            let mut event = libc::epoll_event {
                events: libc::EPOLLIN as u32,
                u64: 0,
            };
            assert_eq!(libc::epoll_ctl(ep, libc::EPOLL_CTL_ADD, ev, &mut event), 0);
            let t = Instant::now();
            assert_eq!(
                spin_on(&[ep], Duration::from_millis(30), false, || false),
                Ended::Done
            );
            assert!(t.elapsed() >= Duration::from_millis(30));
            let t = Instant::now();
            spin_on(&[ep], Duration::from_millis(30), true, || false);
            assert!(t.elapsed() >= Duration::from_millis(30));
            let t = Instant::now();
            spin_on(&[ep], Duration::from_secs(30), false, || true);
            assert!(t.elapsed() < Duration::from_secs(10));
            assert_eq!(libc::eventfd_write(ev, 1), 0);
            let t = Instant::now();
            spin_on(&[ep], Duration::from_secs(30), true, || false);
            assert!(t.elapsed() < Duration::from_secs(10));
            libc::close(ev);
            libc::close(ep);
        }
    }

    #[test]
    fn a_yield_that_gives_the_cpu_away_for_longer_than_the_spin_ends_it() {
        // A thread that never sleeps shares a CPU with this one: a yield
        // lets it run a whole scheduler slice, longer than a 100 µs spin.
        pin_to_first_cpu();
        let hog = crate::background::tests::Hog::on_first_cpu();
        // SAFETY: a descriptor this test owns.
        let ep = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        assert!(ep >= 0);
        let contended = (0..200).any(|_| {
            spin_on(&[ep], Duration::from_micros(100), true, || false) == Ended::Contended
        });
        drop(hog);
        // SAFETY: closing the descriptor made above.
        unsafe { libc::close(ep) };
        assert!(contended);
    }

    #[test]
    fn the_spin_grows_while_work_comes_back_within_the_limit_and_shrinks_when_it_does_not() {
        let us = Duration::from_micros;
        let max = us(400);
        let mut w = Window::default();
        assert_eq!(w.spin(max), Duration::ZERO);
        // Work came back after 120 µs each time: 50, 100, 200 µs, then the
        // spin catches it and stays.
        for expected in [50, 100, 200, 200, 200] {
            w.learn(us(120), max);
            assert_eq!(w.spin(max), us(expected));
        }
        // Never beyond the limit.
        for _ in 0..5 {
            w.learn(us(390), max);
        }
        assert_eq!(w.spin(max), max);
        // Quiet: each idle moment past the limit halves it, and below where
        // growth starts it is nothing.
        for expected in [200, 100, 50, 0, 0] {
            w.learn(Duration::from_millis(30), max);
            assert_eq!(w.spin(max), us(expected));
        }
        // A limit below where growth starts is the spin.
        let mut w = Window::default();
        w.learn(us(10), us(20));
        assert_eq!(w.spin(us(20)), us(20));
    }

    #[test]
    fn a_spin_of_zero_is_none_and_several_workers_get_none() {
        assert!(IdleSpin::new(0, 1).unwrap().is_none());
        let err = IdleSpin::new(100, 2).unwrap_err();
        assert_eq!(err, "not used with 2 io-threads");
        let spin = IdleSpin::new(100, 1).unwrap().unwrap();
        assert_eq!(spin.yield_cpu, cpus_allowed() == 1);
        assert!(cpus_allowed() >= 1);
    }
}
