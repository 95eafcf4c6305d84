//! The process's own figures for the usual `process_*` metrics, read from
//! `/proc` at scrape time: CPU time, memory, open and allowed file
//! descriptors, start time. Where `/proc` cannot be read (another OS, a
//! sandbox), the figure is missing and its metric is left out.

use std::path::Path;

/// Clock ticks per second in `/proc/*/stat` (`USER_HZ`): 100 on every
/// architecture Linux runs on, as the kernel's ABI fixes it for userspace.
const TICKS_PER_SECOND: f64 = 100.0;

/// What `/proc` says about this process right now.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProcessFigures {
    /// User and system CPU time, in seconds.
    pub cpu_seconds: Option<f64>,
    /// Resident memory, in bytes.
    pub resident_memory_bytes: Option<u64>,
    /// Virtual memory, in bytes.
    pub virtual_memory_bytes: Option<u64>,
    /// Open file descriptors.
    pub open_fds: Option<u64>,
    /// The soft limit of open file descriptors.
    pub max_fds: Option<u64>,
    /// When the process started, in unix seconds.
    pub start_time_seconds: Option<f64>,
}

impl ProcessFigures {
    /// Reads this process's figures.
    pub fn read() -> Self {
        Self::read_from(Path::new("/proc"), Path::new("/proc/self"))
    }

    /// Reads the figures of the process whose `/proc` directory is `me`,
    /// the system's being `proc`.
    fn read_from(proc: &Path, me: &Path) -> Self {
        let stat = std::fs::read_to_string(me.join("stat")).ok();
        let stat = stat.as_deref().and_then(Stat::parse);
        let status = std::fs::read_to_string(me.join("status")).unwrap_or_default();
        let boot_time = std::fs::read_to_string(proc.join("stat"))
            .ok()
            .and_then(|s| boot_time(&s));
        ProcessFigures {
            cpu_seconds: stat.map(|s| (s.utime + s.stime) as f64 / TICKS_PER_SECOND),
            resident_memory_bytes: status_kib(&status, "VmRSS:").map(|k| k * 1024),
            virtual_memory_bytes: stat.map(|s| s.vsize),
            open_fds: std::fs::read_dir(me.join("fd"))
                .ok()
                .map(|entries| entries.count() as u64),
            max_fds: match crate::accept::open_files_limit() {
                crate::accept::FdLimit::Files(n) => Some(n),
                crate::accept::FdLimit::Unlimited | crate::accept::FdLimit::Unknown => None,
            },
            start_time_seconds: stat
                .zip(boot_time)
                .map(|(s, boot)| boot as f64 + s.starttime as f64 / TICKS_PER_SECOND),
        }
    }
}

/// The fields of `/proc/self/stat` used here.
#[derive(Debug, Clone, Copy)]
struct Stat {
    utime: u64,
    stime: u64,
    starttime: u64,
    vsize: u64,
}

impl Stat {
    /// Parses `pid (comm) state ppid ...`. The command name may hold spaces
    /// and parentheses, so the fields are counted from its last `)`.
    fn parse(line: &str) -> Option<Stat> {
        let rest = &line[line.rfind(')')? + 1..];
        // After the name: field 3 (state) is the first.
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let field = |n: usize| fields.get(n - 3)?.parse::<u64>().ok();
        Some(Stat {
            utime: field(14)?,
            stime: field(15)?,
            starttime: field(22)?,
            vsize: field(23)?,
        })
    }
}

/// The `btime` line of `/proc/stat`: boot time in unix seconds.
fn boot_time(stat: &str) -> Option<u64> {
    stat.lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
}

/// A `Name:   1234 kB` line of `/proc/self/status`, in KiB.
fn status_kib(status: &str, name: &str) -> Option<u64> {
    let line = status.lines().find_map(|l| l.strip_prefix(name))?;
    line.split_whitespace().next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stat_line_with_a_strange_command_name_is_read_from_its_end() {
        let line = "4242 (a) b (c) S 1 4242 4242 0 -1 4194560 1234 0 0 0 250 50 0 0 20 0 \
                    9 0 123456 104857600 2560 18446744073709551615";
        let s = Stat::parse(line).unwrap();
        assert_eq!(
            (s.utime, s.stime, s.starttime, s.vsize),
            (250, 50, 123456, 104857600)
        );
        assert!(Stat::parse("4242 (truncated").is_none());
        assert!(Stat::parse("4242 (x) S 1").is_none());
    }

    #[test]
    fn status_and_boot_time_lines_are_found_by_name() {
        let status = "Name:\tsessiongate\nVmSize:\t  204800 kB\nVmRSS:\t   10240 kB\n";
        assert_eq!(status_kib(status, "VmRSS:"), Some(10240));
        assert_eq!(status_kib(status, "VmSwap:"), None);
        assert_eq!(
            boot_time("cpu  1 2 3\nbtime 1700000000\nprocesses 9\n"),
            Some(1_700_000_000)
        );
    }

    #[test]
    fn this_process_has_figures_on_linux() {
        if !Path::new("/proc/self/stat").exists() {
            return;
        }
        let f = ProcessFigures::read();
        assert!(f.resident_memory_bytes.is_some_and(|b| b > 0), "{f:?}");
        assert!(f.open_fds.is_some_and(|n| n > 0), "{f:?}");
        assert!(f.cpu_seconds.is_some(), "{f:?}");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        let started = f.start_time_seconds.unwrap();
        assert!(
            started <= now + 1.0 && started > now - 86_400.0 * 365.0,
            "{started}"
        );
    }

    #[test]
    fn a_missing_proc_gives_no_figures_and_no_panic() {
        let f =
            ProcessFigures::read_from(Path::new("/nonexistent"), Path::new("/nonexistent/self"));
        assert_eq!(f.cpu_seconds, None);
        assert_eq!(f.open_fds, None);
        assert_eq!(f.start_time_seconds, None);
    }
}
