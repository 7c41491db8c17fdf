//! Who may use the control socket: root, the daemon's own uid, the uids of
//! `allowed_uids`, and members of a group of `allowed_groups`, by primary
//! gid (`SO_PEERCRED`) or supplementary groups (`SO_PEERGROUPS`). The
//! kernel records a peer's credentials at `connect()` and translates them
//! into the daemon's user namespace, so a peer cannot forge them.
//!
//! Under systemd's `PrivateUsers=yes` only root and the service's own user
//! and group exist in the daemon's namespace; every other id reads as the
//! overflow id 65534. An allowed id that cannot be seen can never match,
//! and the daemon says so at start rather than refusing people silently.
//!
//! What this file must not do: write to the peer (that is `peer`'s job).

use std::io;
use std::os::fd::AsRawFd;

use tokio::net::UnixStream;

use crate::config::{DaemonConfig, GroupRef};

/// Who may talk to the daemon.
#[derive(Clone, Debug, Default)]
pub struct Access {
    /// The daemon's own (effective) uid.
    pub own_uid: u32,
    /// Others from the config.
    pub allowed_uids: Vec<u32>,
    /// Groups from the config, resolved to gids.
    pub allowed_gids: Vec<u32>,
}

/// A connected peer's ids, as the kernel recorded them at `connect()`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerIds {
    /// Effective uid.
    pub uid: u32,
    /// Effective (primary) gid.
    pub gid: u32,
    /// Supplementary groups (empty when the kernel cannot tell).
    pub groups: Vec<u32>,
}

impl Access {
    /// Root, the daemon's own uid, and `allowed_uids`.
    pub fn allows(&self, uid: u32) -> bool {
        uid == 0 || uid == self.own_uid || self.allowed_uids.contains(&uid)
    }

    /// [`Access::allows`] by uid, or membership in an allowed group.
    pub fn admits(&self, peer: &PeerIds) -> bool {
        self.allows(peer.uid)
            || self.allowed_gids.contains(&peer.gid)
            || peer.groups.iter().any(|gid| self.allowed_gids.contains(gid))
    }

    /// The access rules of `config` for a daemon running as `own_uid`,
    /// with group names resolved now; the warnings to log (groups that do
    /// not exist, ids this user namespace cannot see).
    pub fn from_config(config: &DaemonConfig, own_uid: u32) -> (Access, Vec<String>) {
        let mut warnings = Vec::new();
        let mut groups = Vec::new();
        for group in &config.allowed_groups {
            match resolve(group) {
                Ok(gid) => groups.push((group, gid)),
                Err(why) => warnings.push(why),
            }
        }
        let uid_map = std::fs::read_to_string("/proc/self/uid_map").ok();
        let gid_map = std::fs::read_to_string("/proc/self/gid_map").ok();
        warnings.extend(invisible_ids(
            &config.allowed_uids,
            &groups,
            uid_map.as_deref(),
            gid_map.as_deref(),
        ));
        let access = Access {
            own_uid,
            allowed_uids: config.allowed_uids.clone(),
            allowed_gids: groups.iter().map(|(_, gid)| *gid).collect(),
        };
        (access, warnings)
    }
}

/// Warnings for the allowed ids (uids; groups with their resolved gids)
/// that the daemon's user namespace, whose `uid_map` and `gid_map` are
/// given when readable, cannot see.
fn invisible_ids(
    uids: &[u32],
    groups: &[(&GroupRef, u32)],
    uid_map: Option<&str>,
    gid_map: Option<&str>,
) -> Vec<String> {
    let mut warnings = Vec::new();
    for uid in uids {
        if uid_map.is_some_and(|map| !mapped(map, *uid)) {
            warnings.push(format!(
                "allowed_uids: {uid} is not visible in this user namespace (PrivateUsers=yes?); \
                 it can never match: add the user to the daemon's group and use allowed_groups"
            ));
        }
    }
    for (group, gid) in groups {
        if gid_map.is_some_and(|map| !mapped(map, *gid)) {
            warnings.push(format!(
                "allowed_groups: {group} (gid {gid}) is not visible in this user namespace \
                 (PrivateUsers=yes?); it can never match: under the shipped unit only the \
                 service's own group (wsvisor) can"
            ));
        }
    }
    warnings
}

/// The gid of `group`, or why there is none.
fn resolve(group: &GroupRef) -> Result<u32, String> {
    match group {
        GroupRef::Gid(gid) => Ok(*gid),
        GroupRef::Name(name) => match nix::unistd::Group::from_name(name) {
            Ok(Some(found)) => Ok(found.gid.as_raw()),
            Ok(None) => Err(format!(
                "allowed_groups: no group named {name:?} on this system; it lets nobody in"
            )),
            Err(err) => Err(format!("allowed_groups: cannot look up group {name:?}: {err}; ignored")),
        },
    }
}

/// True when `id` falls in one of the ranges of a `/proc/PID/uid_map`
/// (lines of `inside outside count`).
fn mapped(map: &str, id: u32) -> bool {
    map.lines().any(|line| {
        let mut fields = line.split_whitespace().map(str::parse::<u64>);
        match (fields.next(), fields.next(), fields.next()) {
            (Some(Ok(inside)), Some(Ok(_)), Some(Ok(count))) => (inside..inside + count).contains(&u64::from(id)),
            _ => false,
        }
    })
}

/// The ids of the peer on `stream`.
pub fn peer_ids(stream: &UnixStream) -> io::Result<PeerIds> {
    let cred = stream.peer_cred()?;
    Ok(PeerIds {
        uid: cred.uid(),
        gid: cred.gid(),
        groups: peer_groups(stream).unwrap_or_default(),
    })
}

/// `SO_PEERGROUPS` (Linux 4.13): the peer's supplementary groups. Retried
/// once with the size the kernel asks for when the first buffer is short.
#[cfg(target_os = "linux")]
fn peer_groups(stream: &UnixStream) -> io::Result<Vec<u32>> {
    let fd = stream.as_raw_fd();
    let mut groups: Vec<libc::gid_t> = vec![0; 64];
    for _ in 0..2 {
        let mut len = (groups.len() * std::mem::size_of::<libc::gid_t>()) as libc::socklen_t;
        // SAFETY: the buffer is `len` bytes of gid_t the kernel may fill.
        let rc = unsafe {
            libc::getsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_PEERGROUPS,
                groups.as_mut_ptr().cast(),
                &mut len,
            )
        };
        let count = len as usize / std::mem::size_of::<libc::gid_t>();
        if rc == 0 {
            groups.truncate(count);
            return Ok(groups);
        }
        let err = io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::ERANGE) {
            return Err(err);
        }
        // The kernel says how many it has; never more than NGROUPS_MAX
        // (65,536), and it records them itself, so the peer cannot inflate it.
        groups = vec![0; count];
    }
    Err(io::Error::other("SO_PEERGROUPS kept growing"))
}

#[cfg(not(target_os = "linux"))]
fn peer_groups(_stream: &UnixStream) -> io::Result<Vec<u32>> {
    Ok(Vec::new())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn access() -> Access {
        Access {
            own_uid: 997,
            allowed_uids: vec![1001],
            allowed_gids: vec![997],
        }
    }

    fn peer(uid: u32, gid: u32, groups: &[u32]) -> PeerIds {
        PeerIds {
            uid,
            gid,
            groups: groups.to_vec(),
        }
    }

    #[test]
    fn uids_and_groups_let_in_and_nothing_else_does() {
        let access = access();
        assert!(access.admits(&peer(0, 0, &[0])));
        assert!(access.admits(&peer(997, 997, &[])));
        assert!(access.admits(&peer(1001, 1001, &[])));
        // alice under PrivateUsers=yes: overflow uid, but group 997 travels with her.
        assert!(access.admits(&peer(65534, 65534, &[997, 65534])));
        assert!(access.admits(&peer(1000, 997, &[])));
        assert!(!access.admits(&peer(65534, 65534, &[65534])));
        assert!(!access.admits(&peer(1002, 1002, &[1002, 100])));
    }

    #[test]
    fn namespace_maps_are_read_as_ranges() {
        let map = "         0          0          1\n       997        997          1\n";
        assert!(mapped(map, 0) && mapped(map, 997));
        assert!(!mapped(map, 1000) && !mapped(map, 998));
        assert!(mapped("0 0 4294967295\n", 1000));
    }

    #[test]
    fn unknown_group_names_and_hidden_ids_are_warned_about() {
        let config = DaemonConfig {
            allowed_groups: vec![
                GroupRef::Name("no-such-group-wsvisor-test".into()),
                GroupRef::Name("root".into()),
                GroupRef::Gid(4242),
            ],
            ..DaemonConfig::default()
        };
        let (access, warnings) = Access::from_config(&config, 0);
        assert_eq!(access.allowed_gids, vec![0, 4242]);
        assert!(
            warnings[0].contains("no group named \"no-such-group-wsvisor-test\""),
            "{warnings:?}"
        );
    }

    #[tokio::test]
    async fn the_kernel_reports_our_own_groups() {
        let (a, _b) = UnixStream::pair().unwrap();
        let ids = peer_ids(&a).unwrap();
        assert_eq!(ids.uid, nix::unistd::geteuid().as_raw());
        assert_eq!(ids.gid, nix::unistd::getegid().as_raw());
        let ours: Vec<u32> = nix::unistd::getgroups().unwrap().iter().map(|g| g.as_raw()).collect();
        assert_eq!(ids.groups, ours);
    }

    #[test]
    fn ids_the_namespace_cannot_see_are_named() {
        // PrivateUsers=yes: only root and the service's own ids exist.
        let map = "0 0 1\n997 997 1\n";
        let wsvisor = GroupRef::Name("wsvisor".into());
        let other = GroupRef::Name("audio".into());
        let groups = [(&wsvisor, 997), (&other, 29)];
        let warnings = invisible_ids(&[0, 997, 1000], &groups, Some(map), Some(map));
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(
            warnings[0].starts_with("allowed_uids: 1000 is not visible"),
            "{warnings:?}"
        );
        assert!(
            warnings[1].starts_with("allowed_groups: audio (gid 29) is not visible"),
            "{warnings:?}"
        );
        // Unreadable maps (not Linux, no /proc): nothing to say.
        assert!(invisible_ids(&[1000], &groups, None, None).is_empty());
    }

    /// The most supplementary groups Linux allows (NGROUPS_MAX): past the
    /// first buffer, so the kernel asks for the size once.
    const MAX_GROUPS: u32 = 65_536;

    /// The groups the daemon reads of a peer (a forked child) that has
    /// `count` supplementary groups, 1 to `count`.
    fn groups_of_a_peer_with(count: u32) -> Vec<u32> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        listener.set_nonblocking(true).unwrap();
        let groups: Vec<libc::gid_t> = (1..=count).collect();
        let address = nix::sys::socket::UnixAddr::new(&path).unwrap();
        // SAFETY: the child makes only system calls (setgroups, socket,
        // connect, read, _exit) on memory prepared before the fork.
        let child = match unsafe { nix::unistd::fork() }.unwrap() {
            nix::unistd::ForkResult::Child => unsafe {
                if libc::setgroups(groups.len(), groups.as_ptr()) != 0 {
                    libc::_exit(2);
                }
                let fd = libc::socket(libc::AF_UNIX, libc::SOCK_STREAM, 0);
                let addr = nix::sys::socket::SockaddrLike::as_ptr(&address);
                let len = nix::sys::socket::SockaddrLike::len(&address);
                if fd < 0 || libc::connect(fd, addr, len) != 0 {
                    libc::_exit(3);
                }
                // Until the parent has read our ids and closed.
                let mut byte = 0u8;
                libc::read(fd, (&mut byte as *mut u8).cast(), 1);
                libc::_exit(0);
            },
            nix::unistd::ForkResult::Parent { child } => child,
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        let accepted = loop {
            match listener.accept() {
                Ok((stream, _)) => break stream,
                Err(err) if err.kind() == io::ErrorKind::WouldBlock && std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(5));
                }
                Err(err) => panic!("the child never connected: {err}"),
            }
        };
        accepted.set_nonblocking(true).unwrap();
        let stream = UnixStream::from_std(accepted).unwrap();
        let ids = peer_ids(&stream).unwrap();
        drop(stream);
        let status = nix::sys::wait::waitpid(child, None).unwrap();
        assert_eq!(status, nix::sys::wait::WaitStatus::Exited(child, 0));
        ids.groups
    }

    #[tokio::test]
    async fn a_peers_groups_are_read_whole_few_or_the_most_linux_allows() {
        if !nix::unistd::geteuid().is_root() {
            assert_eq!(
                std::env::var("WSVISOR_ROOT_TESTS").as_deref(),
                Ok("skip"),
                "this test needs root to give a peer other groups; run it as root (CI does) or set WSVISOR_ROOT_TESTS=skip"
            );
            return;
        }
        for count in [3, 100, MAX_GROUPS] {
            let groups = groups_of_a_peer_with(count);
            assert_eq!(groups.len(), count as usize);
            assert!(groups.iter().copied().eq(1..=count), "{count} groups read wrong");
        }
    }
}
