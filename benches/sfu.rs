//! The SFU under load: N concurrent two-party consults, each participant a real
//! webrtc-rs peer sending 1.5 Mbit/s of VP8 and 48 kbit/s of Opus (synthetic RTP with
//! its send time in the payload) through the broker's relay. For each N: packets
//! forwarded per second (summed over subscribers), the one-way latency receivers
//! measure (p50, p99; webrtc-rs stacks at both ends, so an upper bound on what the
//! relay adds), loss (relay drops, kernel socket drops, sent against received), and CPU
//! time per forwarded packet, the broker's (this process) apart from the clients' (a
//! child process). The sweep stops at the first N with loss and bisects below it. Then
//! the ceiling: a plain UDP forwarder with the same packet sizes and flows, at the
//! SFU's rate and at the highest rate it sustains without loss. See
//! docs/BENCHMARKS.md.
//!
//! ```text
//! cargo bench --bench sfu -- [--max-n 192] [--seconds 10] [--warmup 2]
//! ```

#[path = "sfu/broker.rs"]
mod broker;
#[path = "sfu/ceiling.rs"]
mod ceiling;
#[path = "sfu/clients.rs"]
mod clients;
#[path = "sfu/cpu.rs"]
mod cpu;

use std::io::{BufRead, Write};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use clap::Parser;
use tokio::sync::mpsc;

use broker::{Broker, RelayCounters, Result};
use clients::ClientReport;

#[derive(Parser)]
#[command(about = "Concurrent two-party consults through the SFU, against a plain UDP forwarder")]
struct Options {
    /// The most concurrent consults to try. The sweep is 1, 2, 4, 8, 12, 16, 24, 36, …
    /// up to the first N with loss, then bisects twice between it and the N before.
    #[arg(long, default_value_t = 192)]
    max_n: usize,
    /// Length of each measured interval.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Seconds of media after every participant receives, before counting starts.
    #[arg(long, default_value_t = 2)]
    warmup: u64,
    /// Run as the client process, joining the consultations this file names.
    #[arg(long, hide = true)]
    clients: Option<std::path::PathBuf>,
    /// Passed by `cargo bench`.
    #[arg(long, hide = true)]
    bench: bool,
}

/// What is counted at either end of the interval.
struct Reading {
    at: Instant,
    relay: RelayCounters,
    broker_cpu: f64,
    clients_cpu: f64,
    idle_cpu: f64,
    kernel_drops: u64,
}

impl Reading {
    async fn now(broker: &Broker, child: &str) -> Reading {
        Reading {
            relay: broker.counters().await,
            at: Instant::now(),
            broker_cpu: cpu::process_seconds("self"),
            clients_cpu: cpu::process_seconds(child),
            idle_cpu: cpu::machine_idle_seconds(),
            kernel_drops: cpu::udp_receive_buffer_errors(),
        }
    }
}

/// One measured N.
struct Step {
    n: usize,
    /// From starting the client process until every participant receives.
    joining: f64,
    seconds: f64,
    relay: RelayCounters,
    clients: ClientReport,
    broker_cpu: f64,
    clients_cpu: f64,
    /// CPU time no process used: what the rest of the machine leaves is the difference.
    idle_cpu: f64,
    kernel_drops: u64,
}

impl Step {
    fn new(n: usize, joining: f64, [before, after]: [Reading; 2], clients: ClientReport) -> Step {
        Step {
            n,
            joining,
            seconds: (after.at - before.at).as_secs_f64(),
            relay: RelayCounters {
                received: after.relay.received - before.relay.received,
                forwarded: after.relay.forwarded - before.relay.forwarded,
                dropped: after.relay.dropped - before.relay.dropped,
            },
            clients,
            broker_cpu: after.broker_cpu - before.broker_cpu,
            clients_cpu: after.clients_cpu - before.clients_cpu,
            idle_cpu: after.idle_cpu - before.idle_cpu,
            kernel_drops: after.kernel_drops - before.kernel_drops,
        }
    }

    fn forwarded_pps(&self) -> f64 {
        self.relay.forwarded as f64 / self.seconds
    }

    fn lossless(&self) -> bool {
        self.relay.dropped == 0 && self.kernel_drops == 0 && self.clients.lost <= 0
    }

    /// CPU microseconds per forwarded packet.
    fn per_packet(&self, cpu: f64) -> f64 {
        cpu * 1e6 / self.relay.forwarded.max(1) as f64
    }

    fn row(&self) -> String {
        let (relay, clients) = (&self.relay, &self.clients);
        let share = |cpu: f64| cpu * 100.0 / self.seconds;
        format!(
            "{:>3} {:>6.1} {:>9.0} {:>6.1} {:>6.1} {:>9} {:>9} {:>9} {:>9} {:>5} {:>6} {:>4} {:>6.1} {:>7.1} {:>5.0}% {:>6.0}% {:>4.0}%{}",
            self.n,
            self.joining,
            self.forwarded_pps(),
            f64::from(clients.latency_p50_us) / 1e3,
            f64::from(clients.latency_p99_us) / 1e3,
            clients.sent,
            relay.received,
            relay.forwarded,
            clients.received,
            relay.dropped,
            self.kernel_drops,
            clients.lost,
            self.per_packet(self.broker_cpu),
            self.per_packet(self.clients_cpu),
            share(self.broker_cpu),
            share(self.clients_cpu),
            share(self.idle_cpu),
            if self.lossless() { "" } else { "  ✗" },
        )
    }
}

const HEADER: &str = concat!(
    "                                    -------------- packets -------------- ---- lost ----- CPU µs/packet ---- CPU share ----\n",
    "  N join s fwd pkt/s p50 ms p99 ms      sent  relay in relay out  received relay kernel  rtp broker clients broker clients  idle",
);

/// Reads a line the client process printed, for at most `limit`.
async fn line(lines: &mut mpsc::Receiver<String>, limit: Duration) -> Result<String> {
    match tokio::time::timeout(limit, lines.recv()).await {
        Ok(Some(line)) => Ok(line),
        Ok(None) => Err("the client process exited".into()),
        Err(_) => Err("the client process did not answer in time".into()),
    }
}

async fn measure(n: usize, options: &Options) -> Result<Step> {
    let broker = Broker::start(n).await?;
    let dir = tempfile::tempdir()?;
    let plan = dir.path().join("plan.json");
    std::fs::write(&plan, serde_json::to_vec(&broker.plan)?)?;
    let mut child = Command::new(std::env::current_exe()?)
        .args(["--bench".as_ref(), "--clients".as_ref(), plan.as_os_str()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    let pid = child.id().to_string();
    let mut stdin = child.stdin.take().ok_or("no stdin")?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let (sender, mut lines) = mpsc::channel(4);
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(|l| l.ok())
        {
            if sender.blocking_send(line).is_err() {
                break;
            }
        }
    });
    let measured = async {
        let spawned = Instant::now();
        let ready = line(&mut lines, Duration::from_secs(30 + n as u64 / 2)).await?;
        let joining = spawned.elapsed().as_secs_f64();
        if ready != "ready" {
            return Err(format!("the client process said {ready:?}").into());
        }
        tokio::time::sleep(Duration::from_secs(options.warmup)).await;
        let before = Reading::now(&broker, &pid).await;
        writeln!(stdin, "start")?;
        tokio::time::sleep(Duration::from_secs(options.seconds)).await;
        let after = Reading::now(&broker, &pid).await;
        writeln!(stdin, "stop")?;
        let report = line(&mut lines, Duration::from_secs(30)).await?;
        let report = serde_json::from_str(&report)?;
        Ok(Step::new(n, joining, [before, after], report))
    }
    .await;
    end(&mut child).await;
    broker.stop().await;
    settle().await;
    measured
}

/// Waits until this process is idle again (at most 10 s), so that what is left of one
/// N does not run into the next.
async fn settle() {
    for _ in 0..10 {
        let cpu = cpu::process_seconds("self");
        tokio::time::sleep(Duration::from_secs(1)).await;
        if cpu::process_seconds("self") - cpu < 0.05 {
            return;
        }
    }
}

/// Gives the client process five seconds to leave, then kills it.
async fn end(child: &mut Child) {
    for _ in 0..50 {
        if !matches!(child.try_wait(), Ok(None)) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// 1, 2, 4, 8, 12, 16, then half as many again each time, and `max_n`.
fn sweep(max_n: usize) -> Vec<usize> {
    let mut sizes = vec![1, 2, 4, 8, 12];
    let mut n = 16;
    while n < max_n {
        sizes.push(n);
        n += n / 2;
    }
    sizes.retain(|&size| size < max_n);
    sizes.push(max_n);
    sizes
}

fn load_average() -> String {
    let loadavg = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    loadavg
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

#[tokio::main]
async fn main() -> Result<()> {
    // `cargo bench` passes --bench; `cargo test --all-targets` runs this binary without
    // it, and a measurement is not a test: say so and stop.
    if !std::env::args().any(|argument| argument == "--bench") {
        println!(
            "a benchmark: run it with `cargo bench --bench {}`",
            env!("CARGO_CRATE_NAME")
        );
        return Ok(());
    }
    let options = Options::parse();
    teleconsult::server::init_crypto();
    if let Some(plan) = &options.clients {
        return clients::run(plan).await;
    }
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let (seconds, warmup) = (options.seconds, options.warmup);
    println!("sfu: {seconds} s per N after {warmup} s of media; {cores} cores");
    println!("load average {}\n{HEADER}", load_average());
    let mut steps: Vec<Step> = Vec::new();
    // The sweep up to the first N with loss (or that fails), then two bisections.
    let (mut lossless, mut lossy) = (0, None);
    let (mut sizes, mut bisections) = (sweep(options.max_n.max(1)).into_iter(), 0);
    loop {
        let n = match lossy {
            None => match sizes.next() {
                Some(n) => n,
                None => break,
            },
            Some(high) if bisections < 2 && high - lossless > 1 => {
                bisections += 1;
                (lossless + high) / 2
            }
            Some(_) => break,
        };
        let clean = match measure(n, &options).await {
            Ok(step) => {
                println!("{}", step.row());
                steps.push(step);
                steps.last().is_some_and(Step::lossless)
            }
            Err(error) => {
                println!("{n:>3} failed: {error}");
                false
            }
        };
        if clean {
            lossless = n;
        } else {
            lossy = Some(n);
        }
    }
    let best = steps.iter().find(|s| s.n == lossless);
    let reference = best.or(steps.last()).ok_or("no N could be measured")?;

    // The ceiling, with as many flows as the reference N had participants.
    let (same_rate, flows) = (reference.forwarded_pps(), 2 * reference.n);
    let step = Duration::from_secs(1);
    let search = move || ceiling::search(same_rate, flows, step);
    let trials = tokio::task::spawn_blocking(search).await??;
    let tried: Vec<String> = trials
        .iter()
        .map(|t| format!("{:.0}{}", t.offered_pps, if t.lost == 0 { "" } else { "✗" }))
        .collect();
    println!(
        "ceiling trials, {flows} flows (pkt/s, ✗ lost): {}",
        tried.join(" ")
    );
    let found = trials
        .iter()
        .rfind(|t| t.lost == 0)
        .ok_or("the ceiling always lost")?;
    let interval = Duration::from_secs(seconds);
    let rate = found.offered_pps;
    let confirm = move || ceiling::confirm(rate, flows, interval);
    let ceiling = tokio::task::spawn_blocking(confirm).await??;
    let same = trials[0];
    println!(
        "ceiling: at the SFU's {:.0} pkt/s {:.2} µs/pkt (lost {}); most without loss over \
         {seconds} s {:.0} pkt/s at {:.2} µs/pkt (lost {})",
        same.forwarded_pps,
        same.cpu_us_per_packet,
        same.lost,
        ceiling.forwarded_pps,
        ceiling.cpu_us_per_packet,
        ceiling.lost,
    );
    match best {
        Some(best) => println!(
            "largest N without loss: {} ({:.0} pkt/s, broker {:.1} µs/pkt); SFU/ceiling: \
             throughput {:.3}, CPU per packet at the same rate {:.1}x",
            best.n,
            best.forwarded_pps(),
            best.per_packet(best.broker_cpu),
            best.forwarded_pps() / ceiling.forwarded_pps,
            best.per_packet(best.broker_cpu) / same.cpu_us_per_packet,
        ),
        None => println!("largest N without loss: none"),
    }
    println!("load average {}", load_average());
    Ok(())
}
