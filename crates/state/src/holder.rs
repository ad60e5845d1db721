//! Which process drives a run or holds a stage, and whether it still lives.
//!
//! A holder is (pid, start time in clock ticks since boot, boot id, hostname), read from
//! `/proc`. A PID alone is not enough: after the holder dies the kernel may give its
//! PID to another process, whose start time then differs; after a reboot every PID
//! restarts, and the boot id differs. The runner unshares only its mount (and, without
//! root, user) namespace, never the PID namespace, so the PID it records is the one
//! every other `sluice` on the machine sees. A holder on another host (a database on a
//! shared disk) cannot be checked and counts as alive.

use std::io;

use super::Holder;

impl Holder {
    /// This process.
    pub fn current() -> Holder {
        let pid = std::process::id();
        Holder {
            pid,
            // 0 when /proc does not show our own PID namespace: then only `kill(pid, 0)`
            // can tell liveness (see `is_alive`).
            start_ticks: read_stat(pid).map_or(0, |stat| stat.start_ticks),
            boot_id: boot_id().unwrap_or_default(),
            hostname: hostname(),
        }
    }

    /// Whether the process is still alive (same boot, same PID, same start time).
    /// A holder on another host is assumed alive.
    pub fn is_alive(&self) -> bool {
        if self.hostname != hostname() {
            return true;
        }
        if let Some(boot) = boot_id()
            && !self.boot_id.is_empty()
            && boot != self.boot_id
        {
            return false;
        }
        if read_stat(std::process::id()).is_err() {
            // /proc is not ours to read (another PID namespace's, or not mounted).
            return signal_probe(self.pid);
        }
        match read_stat(self.pid) {
            Ok(stat) => {
                !matches!(stat.state, 'Z' | 'X')
                    && (self.start_ticks == 0 || stat.start_ticks == self.start_ticks)
            }
            // Gone, or hidden (`hidepid=` hides other users' processes): ask the kernel,
            // which tells a missing process (ESRCH) from another user's (EPERM).
            Err(_) => signal_probe(self.pid),
        }
    }

    /// Whether `other` is this very process (same PID, start time, boot and host).
    pub fn same_process(&self, other: &Holder) -> bool {
        self == other
    }

    /// "pid 1234 on host build-7", for messages.
    pub fn describe(&self) -> String {
        format!("pid {} on host {}", self.pid, self.hostname)
    }
}

/// The fields of `/proc/<pid>/stat` the holder needs.
#[derive(Debug)]
struct Stat {
    /// Field 3: R, S, D, Z (zombie), X (dead), ...
    state: char,
    /// Field 22: start time in clock ticks after boot.
    start_ticks: u64,
}

fn read_stat(pid: u32) -> io::Result<Stat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    parse_stat(&text).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("unexpected /proc/{pid}/stat"),
        )
    })
}

/// Field 2 (the command name) is in parentheses and may itself hold spaces and
/// parentheses: the fields after it start after the last `)`.
fn parse_stat(text: &str) -> Option<Stat> {
    let rest = &text[text.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    // `fields` now stands at field 4; field 22 is 18 further.
    let start_ticks = fields.nth(18)?.parse().ok()?;
    Some(Stat { state, start_ticks })
}

fn boot_id() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .ok()
        .map(|s| s.trim().to_string())
}

fn hostname() -> String {
    rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned()
}

/// `kill(pid, 0)`: no such process is dead; anything else (even "not permitted") is a
/// process that exists.
fn signal_probe(pid: u32) -> bool {
    let Some(pid) = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    else {
        return false;
    };
    !matches!(
        rustix::process::test_kill_process(pid),
        Err(rustix::io::Errno::SRCH)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_parsing_survives_parentheses_in_the_command_name() {
        let text = "4242 (a (b) c) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10 18446744073709551615";
        let stat = parse_stat(text).unwrap();
        assert_eq!(stat.state, 'S');
        assert_eq!(stat.start_ticks, 987654);
    }

    #[test]
    fn the_current_process_is_alive_and_reads_its_own_proc_entry() {
        let me = Holder::current();
        assert_eq!(me.pid, std::process::id());
        assert!(me.start_ticks > 0, "start ticks read from /proc/self/stat");
        assert!(!me.boot_id.is_empty());
        assert!(me.is_alive());
    }

    #[test]
    fn a_reused_pid_with_another_start_time_is_dead() {
        let mut me = Holder::current();
        me.start_ticks += 1;
        assert!(!me.is_alive());
    }

    #[test]
    fn a_holder_from_another_boot_is_dead() {
        let mut me = Holder::current();
        me.boot_id = "00000000-0000-0000-0000-000000000000".into();
        assert!(!me.is_alive());
    }

    #[test]
    fn a_holder_on_another_host_counts_as_alive() {
        let mut other = Holder::current();
        other.hostname.push_str("-elsewhere");
        other.pid = u32::MAX;
        assert!(other.is_alive());
    }
}
