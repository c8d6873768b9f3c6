//! Who used the CPU during a phase, from /proc: this process (the clients, the broker
//! and SQLite), the PostgreSQL server's processes, and the machine as a whole, so that
//! a phase disturbed by other work on the machine shows as such.

use std::fs;

/// CPU time in ticks of 10 ms (Linux's USER_HZ).
#[derive(Clone, Copy, Default)]
pub struct Cpu {
    pub own: u64,
    pub postgres: u64,
    pub machine_busy: u64,
    /// Busy and idle, all cores.
    pub machine_total: u64,
}

/// User + system time in a /proc/PID/stat line.
fn process_ticks(stat: &str) -> u64 {
    let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields = after_name.split_whitespace().skip(11).take(2);
    fields.filter_map(|t| t.parse::<u64>().ok()).sum()
}

impl Cpu {
    pub fn now() -> Cpu {
        let read = |path: &std::path::Path| fs::read_to_string(path).unwrap_or_default();
        let postgres = fs::read_dir("/proc")
            .into_iter()
            .flatten()
            .flatten()
            .filter(|process| read(&process.path().join("comm")).trim() == "postgres")
            .map(|process| process_ticks(&read(&process.path().join("stat"))))
            .sum();
        // cpu  user nice system idle iowait irq softirq steal ...
        let stat = read("/proc/stat".as_ref());
        let machine: Vec<u64> = (stat.lines().next().unwrap_or_default().split_whitespace())
            .skip(1)
            .take(8)
            .filter_map(|t| t.parse().ok())
            .collect();
        let idle = machine.get(3).unwrap_or(&0) + machine.get(4).unwrap_or(&0);
        let machine_total = machine.iter().sum();
        Cpu {
            own: process_ticks(&read("/proc/self/stat".as_ref())),
            postgres,
            machine_busy: machine_total - idle,
            machine_total,
        }
    }

    pub fn since(self, start: Cpu) -> Cpu {
        Cpu {
            own: self.own.saturating_sub(start.own),
            postgres: self.postgres.saturating_sub(start.postgres),
            machine_busy: self.machine_busy.saturating_sub(start.machine_busy),
            machine_total: self.machine_total.saturating_sub(start.machine_total),
        }
    }

    /// Share of all cores used by anything else: neither this process nor PostgreSQL.
    pub fn others_share(&self) -> f64 {
        let others = self.machine_busy.saturating_sub(self.own + self.postgres);
        others as f64 / self.machine_total.max(1) as f64
    }
}
