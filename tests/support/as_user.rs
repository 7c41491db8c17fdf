//! Running a piece of a test as another user (root only): a forked child
//! drops to the given uid, gid and groups, runs the closure and hands its
//! answer back through a pipe. The child does nothing but system calls and
//! small allocations (glibc keeps malloc usable after fork), and never
//! returns into the test harness: it ends with `_exit`.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{fork, setgid, setgroups, setuid, ForkResult, Gid, Pid, Uid};

/// The overflow user and group, "nobody".
pub const NOBODY: u32 = 65534;

/// True when the tests run as root.
pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// False (the test returns) only when not root and skipping was asked for.
pub fn root_or_skip() -> bool {
    if is_root() {
        return true;
    }
    if std::env::var("WSVISOR_ROOT_TESTS").as_deref() == Ok("skip") {
        eprintln!("skipped: needs root to act as other users (WSVISOR_ROOT_TESTS=skip)");
        return false;
    }
    panic!("this test needs root to act as other users; run it as root (CI does) or set WSVISOR_ROOT_TESTS=skip");
}

/// Ids to become.
#[derive(Clone, Debug)]
pub struct Ids {
    /// The uid.
    pub uid: u32,
    /// The primary gid.
    pub gid: u32,
    /// Supplementary groups.
    pub groups: Vec<u32>,
}

impl Ids {
    /// `uid` with the group of the same number and no others.
    pub fn plain(uid: u32) -> Ids {
        Ids {
            uid,
            gid: uid,
            groups: vec![],
        }
    }
}

/// A child running as someone else; killed when dropped.
pub struct Child {
    pid: Pid,
    answer: Option<File>,
}

impl Child {
    /// Waits up to `limit` for the child's answer (what it wrote before ending).
    pub fn answer(mut self, limit: Duration) -> String {
        let mut pipe = self.answer.take().expect("answer read once");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = pipe.read_to_string(&mut text);
            let _ = tx.send(text);
        });
        let text = rx
            .recv_timeout(limit)
            .unwrap_or_else(|_| panic!("the child as another user gave no answer within {limit:?}"));
        self.reap(limit);
        text
    }

    fn reap(&mut self, limit: Duration) {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            match waitpid(self.pid, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) => std::thread::sleep(Duration::from_millis(2)),
                _ => return,
            }
        }
        let _ = kill(self.pid, Signal::SIGKILL);
        let _ = waitpid(self.pid, None);
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if matches!(
            waitpid(self.pid, Some(WaitPidFlag::WNOHANG)),
            Ok(WaitStatus::StillAlive)
        ) {
            let _ = kill(self.pid, Signal::SIGKILL);
            let _ = waitpid(self.pid, None);
        }
    }
}

/// Runs `body` in a child as `ids`; what it returns is its answer.
pub fn spawn(ids: &Ids, body: impl FnOnce() -> String) -> Child {
    // Close-on-exec: a daemon another test spawns meanwhile must not hold
    // the write end open, or the answer would never end.
    let (read_end, write_end): (OwnedFd, OwnedFd) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).expect("a pipe");
    let groups: Vec<Gid> = ids.groups.iter().map(|g| Gid::from_raw(*g)).collect();
    // SAFETY: the child only makes system calls and small allocations, then _exits.
    match unsafe { fork() }.expect("fork") {
        ForkResult::Child => {
            drop(read_end);
            let dropped = setgroups(&groups)
                .and_then(|()| setgid(Gid::from_raw(ids.gid)))
                .and_then(|()| setuid(Uid::from_raw(ids.uid)));
            let answer = match dropped {
                Ok(()) => body(),
                Err(err) => format!("could not become {ids:?}: {err}"),
            };
            let mut pipe = File::from(write_end);
            let _ = pipe.write_all(answer.as_bytes());
            drop(pipe);
            // SAFETY: ends the child without running the parent's destructors.
            unsafe { libc::_exit(0) }
        }
        ForkResult::Parent { child } => {
            drop(write_end);
            Child {
                pid: child,
                answer: Some(File::from(read_end)),
            }
        }
    }
}

/// Runs `body` as `ids` and returns its answer (bounded by `limit`).
pub fn run(ids: &Ids, limit: Duration, body: impl FnOnce() -> String) -> String {
    spawn(ids, body).answer(limit)
}

/// A child as `ids` that runs `body` until it is killed (on drop).
pub fn background(ids: &Ids, body: impl FnOnce()) -> Child {
    spawn(ids, || {
        body();
        String::new()
    })
}
