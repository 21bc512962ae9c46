//! `/proc` readings: a process's CPU time and resident memory (Linux; elsewhere these
//! report nothing).

/// Kernel clock ticks per second of `/proc/PID/stat` (USER_HZ, 100 on Linux ABIs).
const USER_HZ: f64 = 100.0;

/// User + system CPU seconds of `pid` (`"self"` for this process), all threads.
pub fn cpu_seconds(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may hold spaces: split after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state is field 3, utime 14 and stime 15 (1-based over the line).
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / USER_HZ)
}

/// A `Vm*` line of `/proc/PID/status` in MiB (`VmRSS`, `VmHWM`).
pub fn vm_mib(pid: &str, field: &str) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|line| {
        let value = line.strip_prefix(field)?.strip_prefix(':')?;
        let kib: f64 = value.trim().strip_suffix("kB")?.trim().parse().ok()?;
        Some(kib / 1024.0)
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    #[cfg(target_os = "linux")]
    fn reads_this_process() {
        assert!(cpu_seconds("self").unwrap() >= 0.0);
        assert!(vm_mib("self", "VmRSS").unwrap() > 0.0);
        assert!(vm_mib("self", "VmHWM").unwrap() > 0.0);
        assert!(vm_mib("self", "VmNothing").is_none());
    }
}
