//! What a server process costs: CPU time and memory, read from `/proc`.
//!
//! Linux only; elsewhere every sample is `None` and the report says "n/a".

use std::time::Duration;

/// CPU time a process has used so far, all threads together.
#[derive(Clone, Debug)]
pub struct CpuSample {
    /// From `/proc/PID/stat` (utime + stime): counts threads that have
    /// exited, but only in clock ticks (usually 10 ms).
    ticks: Duration,
    /// From `/proc/PID/task/*/schedstat`: nanosecond precision, live threads
    /// only. Used when the set of threads did not change between samples.
    tasks: Option<Vec<(u64, u64)>>,
}

impl CpuSample {
    pub fn take(pid: u32) -> Option<CpuSample> {
        let ticks = stat_cpu(pid)?;
        Some(CpuSample {
            ticks,
            tasks: task_schedstats(pid),
        })
    }

    /// CPU time used between `self` (earlier) and `later`.
    pub fn until(&self, later: &CpuSample) -> Duration {
        if let (Some(a), Some(b)) = (&self.tasks, &later.tasks) {
            let same_threads = a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.0 == y.0);
            if same_threads {
                let ns: u64 = a.iter().zip(b).map(|(x, y)| y.1.saturating_sub(x.1)).sum();
                return Duration::from_nanos(ns);
            }
        }
        later.ticks.saturating_sub(self.ticks)
    }
}

fn clock_ticks_per_sec() -> u64 {
    #[cfg(unix)]
    {
        // SAFETY: sysconf has no preconditions.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
        if hz > 0 {
            return hz as u64;
        }
    }
    100
}

fn stat_cpu(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces and parentheses: fields are
    // counted from the last ')'. utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')')? + 2..];
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    let hz = clock_ticks_per_sec();
    Some(Duration::from_nanos((utime + stime) * 1_000_000_000 / hz))
}

/// (thread id, nanoseconds on CPU) for every live thread, sorted by id.
fn task_schedstats(pid: u32) -> Option<Vec<(u64, u64)>> {
    let dir = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    let mut out = Vec::new();
    for entry in dir {
        let entry = entry.ok()?;
        let tid: u64 = entry.file_name().to_str()?.parse().ok()?;
        let text = std::fs::read_to_string(entry.path().join("schedstat")).ok()?;
        let ns: u64 = text.split_whitespace().next()?.parse().ok()?;
        out.push((tid, ns));
    }
    out.sort_unstable();
    Some(out)
}

/// Memory of a process, in bytes.
#[derive(Clone, Copy, Debug, Default)]
pub struct Memory {
    /// Resident now (`VmRSS`).
    pub rss: u64,
    /// Peak resident (`VmHWM`).
    pub peak: u64,
}

pub fn memory(pid: u32) -> Option<Memory> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| -> Option<u64> {
        let line = status.lines().find(|l| l.starts_with(name))?;
        let kb: u64 = line[name.len()..]
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()?;
        Some(kb * 1024)
    };
    Some(Memory {
        rss: field("VmRSS:")?,
        peak: field("VmHWM:")?,
    })
}

/// Threads of a process (std's reader and writer threads come and go with
/// traffic).
pub fn threads(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("Threads:"))?;
    line["Threads:".len()..].trim().parse().ok()
}

/// This process's own CPU time (user + system), to show what the generator
/// itself costs.
pub fn own_cpu() -> Option<Duration> {
    #[cfg(unix)]
    {
        // SAFETY: getrusage writes into the zeroed struct we pass.
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) } == 0 {
            let tv = |t: libc::timeval| {
                Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
            };
            return Some(tv(ru.ru_utime) + tv(ru.ru_stime));
        }
    }
    None
}

/// Raises this process's soft limit on open files to `want` (or as far as the
/// hard limit allows). Returns the soft limit in force afterwards.
pub fn raise_fd_limit(want: u64) -> Option<u64> {
    #[cfg(unix)]
    {
        // SAFETY: plain system calls on a local struct.
        unsafe {
            let mut lim: libc::rlimit = std::mem::zeroed();
            if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
                return None;
            }
            let want = want as libc::rlim_t;
            if lim.rlim_cur < want {
                let hard = lim.rlim_max;
                lim.rlim_cur = if hard == libc::RLIM_INFINITY || hard >= want {
                    want
                } else {
                    hard
                };
                let _ = libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
                libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
            }
            return Some(lim.rlim_cur as u64);
        }
    }
    #[allow(unreachable_code)]
    {
        let _ = want;
        None
    }
}
