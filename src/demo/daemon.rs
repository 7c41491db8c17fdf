//! The daemon as the demo runs it: this same binary, `run --config`, as a
//! child process, so the demo shows wsvisor exactly as users run it. The
//! child gets its own process group, so a Ctrl-C on the terminal reaches
//! only the demo, which then stops the daemon in order (SIGTERM, as systemd
//! would); and it is told by the kernel to stop if the demo dies first, so
//! no daemon outlives its demo.

use std::fs::File;
use std::io;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::sys::prctl::set_pdeathsig;
use nix::sys::signal::{kill, Signal};
use nix::unistd::{getppid, Pid};

/// How a stop went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    /// It exited by itself before we asked (a failure, for a demo).
    AlreadyExited(ExitStatus),
    /// It exited after SIGTERM within the grace period.
    Exited(ExitStatus),
    /// It ignored SIGTERM and was killed.
    Killed,
}

/// The daemon child process; killed on drop if still running.
pub struct DaemonProcess {
    child: Child,
}

impl DaemonProcess {
    /// Starts `exe run --config CONFIG` with stdout and stderr in `log`.
    pub fn spawn(exe: &Path, config: &Path, log: &Path) -> io::Result<DaemonProcess> {
        let log_file = File::create(log)?;
        let parent = std::process::id();
        let mut command = Command::new(exe);
        command
            .arg("run")
            .arg("--config")
            .arg(config)
            .stdin(Stdio::null())
            .stdout(log_file.try_clone()?)
            .stderr(log_file)
            // Not a systemd service, whatever the demo's own environment says.
            .env_remove("NOTIFY_SOCKET")
            .env_remove("WATCHDOG_USEC")
            .env_remove("WATCHDOG_PID")
            .env_remove("JOURNAL_STREAM")
            .process_group(0);
        // SAFETY: between fork and exec only async-signal-safe system calls
        // (prctl, getppid) run, and nothing is allocated.
        unsafe {
            command.pre_exec(move || {
                set_pdeathsig(Signal::SIGTERM)?;
                // The demo died between fork and prctl: nobody would stop us.
                if getppid().as_raw() as u32 != parent {
                    return Err(io::Error::other("the demo exited while starting the daemon"));
                }
                Ok(())
            });
        }
        Ok(DaemonProcess {
            child: command.spawn()?,
        })
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `Some` once it has exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// SIGTERM, then up to `grace` for it to exit, then SIGKILL.
    pub fn stop(&mut self, grace: Duration) -> Stopped {
        if let Some(status) = self.exited() {
            return Stopped::AlreadyExited(status);
        }
        // Our own child's pid cannot have been reused: it is not reaped
        // until `try_wait` sees it exit.
        let _ = kill(Pid::from_raw(self.child.id() as i32), Signal::SIGTERM);
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if let Some(status) = self.exited() {
                return Stopped::Exited(status);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        Stopped::Killed
    }
}

impl Drop for DaemonProcess {
    fn drop(&mut self) {
        if self.exited().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
