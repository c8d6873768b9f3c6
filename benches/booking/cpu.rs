//! Who used the CPU during a phase, from /proc: this process (the clients, the broker
//! and SQLite), the PostgreSQL server's processes, and the machine as a whole, so that
//! a phase disturbed by other work on the machine shows as such.

use std::fs;
use std::path::Path;

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
    /// `database` picks out the PostgreSQL backends serving the bench from those of
    /// anyone else on the same server; the server's own processes (writers,
    /// checkpointer) count whoever they work for.
    pub fn now(database: Option<&str>) -> Cpu {
        let read = |path: &Path| fs::read_to_string(path).unwrap_or_default();
        let ours = |process: &Path| {
            // e.g. `postgres: postgres tc_bench_1_2 127.0.0.1(50412) idle`
            let title = read(&process.join("cmdline"));
            let client = title.contains('(') || title.contains("[local]");
            !client || database.is_some_and(|name| title.contains(name))
        };
        let postgres = fs::read_dir("/proc")
            .into_iter()
            .flatten()
            .flatten()
            .map(|entry| entry.path())
            .filter(|process| read(&process.join("comm")).trim() == "postgres" && ours(process))
            .map(|process| process_ticks(&read(&process.join("stat"))))
            .sum();
        // cpu  user nice system idle iowait irq softirq steal ...
        let stat = read(Path::new("/proc/stat"));
        let machine: Vec<u64> = (stat.lines().next().unwrap_or_default().split_whitespace())
            .skip(1)
            .take(8)
            .filter_map(|t| t.parse().ok())
            .collect();
        let idle = machine.get(3).unwrap_or(&0) + machine.get(4).unwrap_or(&0);
        let machine_total = machine.iter().sum();
        Cpu {
            own: process_ticks(&read(Path::new("/proc/self/stat"))),
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
