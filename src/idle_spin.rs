//! `idle-spin-us`: before a worker of the binary's runtime goes to sleep, it
//! watches for new work for up to that many microseconds — an event on the
//! runtime's epoll descriptor, or a task another thread woke — and goes on
//! at once when some comes. A timer due meanwhile fires when the spin ends,
//! at most one spin late.
//!
//! On a virtual machine, waking a CPU that has gone idle is slow (an
//! interrupt to a halted virtual CPU). A client that sends one command at a
//! time, as a test suite does, pays it on every round trip: here a redis-py
//! GET took 70 µs without a spin and 38 µs with one. A worker still spinning
//! when the next command arrives is not asleep, so nothing has to wake it.
//! The cost is CPU time, up to the spin each time the server runs out of
//! work, which is why it is off by default and the test fixtures turn it on.
//!
//! tokio does not hand out its driver's descriptor: [`IdleSpin::new`] notes
//! the process's epoll descriptors before the runtime is built and
//! [`IdleSpin::found`] takes the ones the build added (the driver's, and the
//! duplicate of it tokio keeps). A task woken from another thread (an
//! `appendfsync always` reply, a finished save) goes to the runtime's global
//! queue and writes nothing to the epoll set while the worker is awake, so
//! the spin also ends when that queue is not empty.

use std::io;
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
    before: Vec<i32>,
    watched: Arc<OnceLock<Watched>>,
}

impl IdleSpin {
    /// Notes the epoll descriptors open now; call it before building the
    /// runtime. `None` for a spin of 0.
    pub fn new(us: u64) -> io::Result<Option<IdleSpin>> {
        if us == 0 {
            return Ok(None);
        }
        Ok(Some(IdleSpin {
            spin: Duration::from_micros(us),
            before: epoll_fds()?,
            watched: Arc::new(OnceLock::new()),
        }))
    }

    /// What the runtime runs before a worker parks (`on_thread_park`). It
    /// does nothing until [`IdleSpin::found`] has succeeded.
    pub fn hook(&self) -> impl Fn() + Send + Sync + 'static {
        let (watched, spin) = (self.watched.clone(), self.spin);
        move || {
            if let Some(w) = watched.get() {
                spin_on(&w.fds, spin, || {
                    w.runtime.metrics().global_queue_depth() > 0
                });
            }
        }
    }

    /// After the runtime is built: takes the epoll descriptors the build
    /// added, and the runtime. An error if no descriptor was added.
    pub fn found(&self, runtime: Handle) -> Result<(), String> {
        let fds: Vec<i32> = epoll_fds()
            .map_err(|e| format!("idle-spin-us: cannot list descriptors: {e}"))?
            .into_iter()
            .filter(|fd| !self.before.contains(fd))
            .collect();
        if fds.is_empty() {
            return Err("idle-spin-us: the runtime's epoll descriptor was not found".into());
        }
        let _ = self.watched.set(Watched { fds, runtime });
        Ok(())
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

/// Returns once one of the epoll descriptors `fds` has an event ready
/// (`poll` on an epoll descriptor says so without taking the event), `woken`
/// says so, or `spin` has passed.
fn spin_on(fds: &[i32], spin: Duration, woken: impl Fn() -> bool) {
    let start = Instant::now();
    let mut pfds: Vec<libc::pollfd> = fds
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
            return;
        }
        for _ in 0..64 {
            std::hint::spin_loop();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
            spin_on(&[ep], Duration::from_millis(30), || false);
            assert!(t.elapsed() >= Duration::from_millis(30));
            let t = Instant::now();
            spin_on(&[ep], Duration::from_secs(30), || true);
            assert!(t.elapsed() < Duration::from_secs(10));
            assert_eq!(libc::eventfd_write(ev, 1), 0);
            let t = Instant::now();
            spin_on(&[ep], Duration::from_secs(30), || false);
            assert!(t.elapsed() < Duration::from_secs(10));
            libc::close(ev);
            libc::close(ep);
        }
    }

    #[test]
    fn a_spin_of_zero_is_none() {
        assert!(IdleSpin::new(0).unwrap().is_none());
    }
}
