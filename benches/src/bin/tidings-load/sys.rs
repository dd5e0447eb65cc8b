//! The operating system bits: raising `RLIMIT_NOFILE`, and a process's RSS and CPU time from `/proc`.

use std::fs;

/// Raises this process's open-file limit to at least `want` descriptors, returns the new
/// soft limit.
///
/// The soft limit goes up to the hard limit; when the hard limit is lower than `want` it
/// is raised too, which works as root (CAP_SYS_RESOURCE) up to `fs.nr_open`. Failing that
/// the soft limit is set to the hard one and the caller decides whether it is enough.
///
/// Why `libc`: it is already in the dependency tree (tokio, mio), so these two calls add
/// no crate; `rustix` (safe wrappers) or `nix` would add two to four crates for them.
#[allow(unsafe_code)]
pub(crate) fn raise_nofile(want: u64) -> Result<u64, String> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid, writable `rlimit` for the duration of the call.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(format!(
            "getrlimit(RLIMIT_NOFILE): {}",
            std::io::Error::last_os_error()
        ));
    }
    if lim.rlim_cur >= want {
        return Ok(lim.rlim_cur);
    }
    let raised = libc::rlimit {
        rlim_cur: want.max(lim.rlim_cur),
        rlim_max: want.max(lim.rlim_max),
    };
    // SAFETY: `raised` is a valid `rlimit`; the call only reads it.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
        return Ok(raised.rlim_cur);
    }
    // Not allowed to raise the hard limit: take what it allows.
    let capped = libc::rlimit {
        rlim_cur: lim.rlim_max,
        rlim_max: lim.rlim_max,
    };
    // SAFETY: as above.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &capped) } == 0 {
        Ok(capped.rlim_cur)
    } else {
        Ok(lim.rlim_cur)
    }
}

/// Clock ticks per second, the unit of `utime` and `stime` in `/proc/<pid>/stat`.
#[allow(unsafe_code)]
pub(crate) fn clock_ticks() -> f64 {
    // SAFETY: sysconf has no memory-safety preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 { ticks as f64 } else { 100.0 }
}

/// Resident set size of `pid` in KiB (`VmRSS` of `/proc/<pid>/status`).
pub(crate) fn rss_kib(pid: u32) -> Result<u64, String> {
    let path = format!("/proc/{pid}/status");
    let text = fs::read_to_string(&path).map_err(|e| format!("reading {path}: {e}"))?;
    text.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| format!("no VmRSS in {path}"))
}

/// User + system CPU seconds used by `pid` so far (all its threads).
pub(crate) fn cpu_secs(pid: u32) -> Result<f64, String> {
    let path = format!("/proc/{pid}/stat");
    let text = fs::read_to_string(&path).map_err(|e| format!("reading {path}: {e}"))?;
    // Fields after the command name, which is in parentheses and may contain spaces:
    // state (3) ppid ... utime (14) stime (15).
    let rest = text
        .rfind(')')
        .map(|i| &text[i + 1..])
        .ok_or_else(|| format!("unexpected {path}"))?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let tick = |i: usize| -> Result<f64, String> {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .map(|t| t as f64)
            .ok_or_else(|| format!("unexpected {path}"))
    };
    Ok((tick(11)? + tick(12)?) / clock_ticks())
}

/// CPU seconds the whole machine spent busy so far (every core; from `/proc/stat`): what
/// the server and the generator did not use of it was used by other processes.
pub(crate) fn machine_busy_secs() -> f64 {
    let Ok(text) = fs::read_to_string("/proc/stat") else {
        return 0.0;
    };
    let ticks: Vec<u64> = text
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .skip(1)
        .filter_map(|t| t.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal (guest time is inside user).
    let busy: u64 = [0, 1, 2, 5, 6, 7]
        .iter()
        .filter_map(|&i| ticks.get(i))
        .sum();
    busy as f64 / clock_ticks()
}
