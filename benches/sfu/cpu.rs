//! CPU time from `/proc`: a process's user + system time (all its threads, in clock
//! ticks of 10 ms), and named threads' time on the CPU (in nanoseconds).

/// User + system CPU seconds consumed so far by process `pid` ("self" for this one).
pub fn process_seconds(pid: &str) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // The command name (field 2) may hold spaces; fields 14 and 15 follow its ')'.
    let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let ticks: u64 = after_name
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|field| field.parse::<u64>().ok())
        .sum();
    // USER_HZ: the kernel always reports 100 ticks a second in /proc.
    ticks as f64 / 100.0
}

/// CPU seconds run so far by this process's threads named `name`.
pub fn threads_seconds(name: &str) -> f64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0.0;
    };
    let read = |task: &std::path::Path, file: &str| std::fs::read_to_string(task.join(file));
    let nanoseconds: u64 = tasks
        .flatten()
        .map(|task| task.path())
        .filter(|task| read(task, "comm").is_ok_and(|comm| comm.trim() == name))
        .filter_map(|task| {
            let schedstat = read(&task, "schedstat").ok()?;
            schedstat.split_whitespace().next()?.parse::<u64>().ok()
        })
        .sum();
    nanoseconds as f64 / 1e9
}

/// CPU seconds this machine's CPUs have been idle (summed over them), from /proc/stat.
pub fn machine_idle_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let cpu = stat.lines().next().unwrap_or_default();
    // cpu  user nice system idle iowait …
    let fields = cpu.split_whitespace().skip(4).take(2);
    fields.filter_map(|f| f.parse::<u64>().ok()).sum::<u64>() as f64 / 100.0
}

/// Datagrams the kernel dropped machine-wide because a UDP socket's receive buffer was
/// full (`RcvbufErrors` in /proc/net/snmp).
pub fn udp_receive_buffer_errors() -> u64 {
    let snmp = std::fs::read_to_string("/proc/net/snmp").unwrap_or_default();
    let mut udp = snmp.lines().filter(|line| line.starts_with("Udp:"));
    let (Some(names), Some(values)) = (udp.next(), udp.next()) else {
        return 0;
    };
    names
        .split_whitespace()
        .zip(values.split_whitespace())
        .find(|(name, _)| *name == "RcvbufErrors")
        .and_then(|(_, value)| value.parse().ok())
        .unwrap_or(0)
}
