//! Booking throughput and latency: `SchedulingService/BookConsultation` called by many
//! clients over mutual TLS, against the same booking written directly to the store
//! (`create_consultation` with its audit entry, what the handler does once the request
//! is validated), back to back in one process. The ratio of the two is what the gRPC
//! stack, authentication and the handler's checks cost. See docs/BENCHMARKS.md.
//!
//! ```text
//! cargo bench --bench booking -- [--backend sqlite|postgres|both] [--clients 64]
//!     [--seconds 5] [--repeat 3]
//! ```
//!
//! PostgreSQL repetitions each get a fresh database on the server at
//! `TELECONSULT_BENCH_DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`).

#[path = "booking/cpu.rs"]
mod cpu;
#[path = "booking/world.rs"]
mod world;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use serde_json::json;
use teleconsult::audit::{Actor, AuditEntry, Outcome, now_micros};
use teleconsult::domain::consultation::{
    BookingRequest, ClinicalText, Consultation, ConsultationId, PatientRef,
};
use teleconsult::domain::ids::{InstitutionId, Specialty, UserId};
use teleconsult::domain::schedule::Window;
use teleconsult::proto::v1::scheduling_service_client::SchedulingServiceClient;
use teleconsult::proto::v1::{BookConsultationRequest, Slot};
use teleconsult::store::SharedStore;
use tokio::sync::Barrier;
use tonic::transport::Channel;

use cpu::Cpu;
use world::{Backend, CLINIC, HOSPITAL, Result, SPECIALTY, Slots, World, valid};

/// Calls each worker makes before the clock starts, so that connections, caches and
/// the database's first pages are warm.
const WARMUP_CALLS: usize = 20;
/// A phase ends after `--seconds` or this many bookings, whichever comes first.
const MAX_BOOKINGS: usize = 20_000;
const PATIENT: &str = "bench-patient-0042";
const REASON: &str = "exertional chest pain, ECG attached";
const SUMMARY: &str = "58-year-old herder living at 4,500 m; BP 150/95; troponin pending";

#[derive(Parser)]
#[command(about = "BookConsultation over mutual TLS gRPC against the store called directly")]
struct Options {
    #[arg(long, value_enum, default_value_t = Choice::Both)]
    backend: Choice,
    /// Concurrent gRPC clients, each with its own certificate and connection; as many
    /// tasks call the store in the direct phase.
    #[arg(long, default_value_t = 64)]
    clients: usize,
    /// Length of each measured phase.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Repetitions, each on a fresh database; the summary gives their medians.
    #[arg(long, default_value_t = 3)]
    repeat: usize,
    /// Passed by `cargo bench`.
    #[arg(long, hide = true)]
    bench: bool,
}

#[derive(Clone, Copy, ValueEnum)]
enum Choice {
    Sqlite,
    Postgres,
    Both,
}

/// One worker's way of booking a slot.
enum Booker {
    Grpc(SchedulingServiceClient<Channel>),
    Direct { store: SharedStore, actor: Actor },
}

impl Booker {
    async fn book(&mut self, slots: &Slots) -> Result<()> {
        let (doctor, window) = slots.take();
        match self {
            Booker::Grpc(client) => {
                client.book_consultation(request(&doctor, &window)).await?;
            }
            Booker::Direct { store, actor } => {
                let (consultation, audit) = booking(doctor, window, actor)?;
                store.create_consultation(&consultation, audit).await?;
            }
        }
        Ok(())
    }
}

fn request(doctor: &UserId, window: &Window) -> BookConsultationRequest {
    let timestamp = |at: time::OffsetDateTime| prost_types::Timestamp {
        seconds: at.unix_timestamp(),
        nanos: 0,
    };
    BookConsultationRequest {
        slot: Some(Slot {
            doctor_id: doctor.to_string(),
            institution_id: HOSPITAL.into(),
            start: Some(timestamp(window.start())),
            end: Some(timestamp(window.end())),
        }),
        patient_ref: PATIENT.into(),
        specialty: SPECIALTY.into(),
        reason: REASON.into(),
        case_summary: SUMMARY.into(),
    }
}

/// The consultation and audit entry that the handler builds for the same request.
fn booking(doctor: UserId, window: Window, actor: &Actor) -> Result<(Consultation, AuditEntry)> {
    let mut random = [0u8; 10];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut random)
        .map_err(|_| "no randomness")?;
    let request = BookingRequest {
        doctor,
        window,
        patient: valid(PatientRef::parse(PATIENT))?,
        specialty: valid(Specialty::parse(SPECIALTY))?,
        reason: valid(ClinicalText::required(REASON, 2_000))?,
        case_summary: valid(ClinicalText::optional(SUMMARY, 8_000))?,
    };
    let consultation = Consultation::booked(
        ConsultationId::from_random(random),
        request,
        valid(InstitutionId::parse(CLINIC))?,
        valid(InstitutionId::parse(HOSPITAL))?,
        valid(UserId::parse(&actor.user))?,
        false,
        now_micros(),
    )?;
    let target = format!("consultation:{}", consultation.id);
    let audit = AuditEntry::new(
        actor.clone(),
        "scheduling.book_consultation",
        target,
        Outcome::Ok,
    )
    .target_institution(CLINIC)
    .details(json!({
        "doctor": consultation.doctor.as_ref().map(ToString::to_string),
        "consulting_institution": HOSPITAL,
        "window": consultation.window.map(|w| w.to_string()),
        "specialty": SPECIALTY,
        "state": consultation.state.as_str(),
    }));
    Ok((consultation, audit))
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Path {
    Grpc,
    Direct,
}

impl Path {
    fn label(self) -> &'static str {
        match self {
            Path::Grpc => "gRPC mTLS",
            Path::Direct => "direct store",
        }
    }
}

/// The phases of a repetition, in the order they run: all clients over gRPC, as many
/// tasks on the store, then one of each (the latency floor). Each gRPC phase is
/// followed by its direct counterpart.
fn phases(options: &Options) -> [(Path, usize); 4] {
    [
        (Path::Grpc, options.clients),
        (Path::Direct, options.clients),
        (Path::Grpc, 1),
        (Path::Direct, 1),
    ]
}

/// `clients` bookers for `path`, each acting as a clinic staff member of its own.
async fn bookers(world: &World, path: Path, clients: usize) -> Result<Vec<Booker>> {
    let mut bookers = Vec::new();
    for (n, certificate) in world.certificates.iter().take(clients).enumerate() {
        bookers.push(match path {
            Path::Grpc => Booker::Grpc(SchedulingServiceClient::new(
                world.channel(certificate).await?,
            )),
            Path::Direct => Booker::Direct {
                store: world.store.clone(),
                actor: Actor {
                    user: world::staff(n),
                    institution: CLINIC.into(),
                    role: "clinic_staff".into(),
                    certificate_fingerprint: certificate.fingerprint()?,
                },
            },
        });
    }
    Ok(bookers)
}

/// One phase's bookings: how long they took together, each one's latency, and the
/// CPU time spent meanwhile.
struct Sample {
    elapsed: Duration,
    /// Sorted.
    latencies: Vec<Duration>,
    cpu: Cpu,
}

impl Sample {
    /// Nearest rank.
    fn percentile_ms(&self, p: f64) -> f64 {
        let rank = (p / 100.0 * self.latencies.len() as f64).ceil() as usize;
        self.latencies[rank.clamp(1, self.latencies.len()) - 1].as_secs_f64() * 1e3
    }

    /// CPU ticks (10 ms) per booking, in microseconds.
    fn per_booking_us(&self, ticks: u64) -> f64 {
        ticks as f64 * 1e4 / self.latencies.len() as f64
    }
}

type Metric = fn(&Sample) -> f64;

const RATE: Metric = |s| s.latencies.len() as f64 / s.elapsed.as_secs_f64();
const P50: Metric = |s| s.percentile_ms(50.0);
const P99: Metric = |s| s.percentile_ms(99.0);
const OWN_CPU: Metric = |s| s.per_booking_us(s.cpu.own);
const POSTGRES_CPU: Metric = |s| s.per_booking_us(s.cpu.postgres);
const OTHERS: Metric = |s| s.cpu.others_share() * 100.0;

/// Runs each booker in a task of its own: warm-up calls, then all start together and
/// book until `length` has passed or [`MAX_BOOKINGS`] have been made.
async fn measure(bookers: Vec<Booker>, world: &World, length: Duration) -> Result<Sample> {
    let (slots, database) = (&world.slots, world.postgres_database.as_deref());
    let start_line = Arc::new(Barrier::new(bookers.len() + 1));
    let started = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = bookers
        .into_iter()
        .map(|mut booker| {
            let (start_line, started, slots) = (start_line.clone(), started.clone(), slots.clone());
            tokio::spawn(async move {
                let mut outcome = Ok(());
                for _ in 0..WARMUP_CALLS {
                    if outcome.is_ok() {
                        outcome = booker.book(&slots).await;
                    }
                }
                // Even after a failure, or the others would wait forever.
                start_line.wait().await;
                let deadline = Instant::now() + length;
                let mut latencies = Vec::new();
                while outcome.is_ok()
                    && Instant::now() < deadline
                    && started.fetch_add(1, Ordering::Relaxed) < MAX_BOOKINGS
                {
                    let call = Instant::now();
                    outcome = booker.book(&slots).await;
                    latencies.push(call.elapsed());
                }
                outcome.map(|()| latencies)
            })
        })
        .collect();
    start_line.wait().await;
    let (began, cpu) = (Instant::now(), Cpu::now(database));
    let mut latencies = Vec::new();
    for worker in workers {
        latencies.extend(worker.await??);
    }
    latencies.sort_unstable();
    let (elapsed, cpu) = (began.elapsed(), Cpu::now(database).since(cpu));
    Ok(Sample {
        elapsed,
        latencies,
        cpu,
    })
}

/// Every phase, back to back, on a fresh database and broker.
async fn repetition(backend: Backend, options: &Options) -> Result<Vec<Sample>> {
    let world = World::start(backend, options.clients).await?;
    let samples = run_phases(&world, options).await;
    world.stop().await?;
    samples
}

async fn run_phases(world: &World, options: &Options) -> Result<Vec<Sample>> {
    let length = Duration::from_secs(options.seconds);
    let mut samples = Vec::new();
    for (path, clients) in phases(options) {
        let sample = async { measure(bookers(world, path, clients).await?, world, length).await };
        let phase = |error| format!("{} phase, {clients} clients: {error}", path.label());
        samples.push(sample.await.map_err(phase)?);
    }
    Ok(samples)
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let middle = values.len() / 2;
    if values.len() % 2 == 0 {
        (values[middle - 1] + values[middle]) / 2.0
    } else {
        values[middle]
    }
}

/// Runs the repetitions on one backend, printing each phase as it ends and then the
/// medians as a Markdown table.
async fn bench(backend: Backend, options: &Options) -> Result<()> {
    let phases = phases(options);
    let mut runs = Vec::new();
    for rep in 1..=options.repeat {
        let samples = repetition(backend, options).await?;
        for (&(path, clients), s) in phases.iter().zip(&samples) {
            println!(
                "{} rep {rep}  {:<12} {clients:>2} clients {:>5} bookings in {:.2} s {:>5.0}/s  \
                 p50 {:>6.2} ms  p99 {:>6.2} ms  CPU/booking: bench {:>4.0} µs, postgres {:>4.0} µs  others {:>2.0}%",
                backend.name(),
                path.label(),
                s.latencies.len(),
                s.elapsed.as_secs_f64(),
                RATE(s),
                P50(s),
                P99(s),
                OWN_CPU(s),
                POSTGRES_CPU(s),
                OTHERS(s),
            );
        }
        runs.push(samples);
    }
    let of =
        |phase: usize, metric: Metric| median(runs.iter().map(|s| metric(&s[phase])).collect());
    // Within each repetition first: its gRPC and direct phases ran back to back.
    let ratio = |grpc: usize, metric: Metric| {
        median(
            runs.iter()
                .map(|s| metric(&s[grpc]) / metric(&s[grpc + 1]))
                .collect(),
        )
    };
    println!(
        "\n{}, medians of {} repetitions:\n\n\
         | phase | clients | bookings/s | p50 ms | p99 ms | CPU µs/booking: bench | postgres | others' CPU |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|",
        backend.name(),
        runs.len()
    );
    for (phase, &(path, clients)) in phases.iter().enumerate() {
        let [rate, p50, p99, cpu, postgres, others] =
            [RATE, P50, P99, OWN_CPU, POSTGRES_CPU, OTHERS].map(|metric| of(phase, metric));
        let label = path.label();
        println!(
            "| {label} | {clients} | {rate:.0} | {p50:.2} | {p99:.2} | {cpu:.0} | {postgres:.0} | {others:.0}% |"
        );
        if path == Path::Direct {
            let [rate, p50, p99, cpu] = [RATE, P50, P99, OWN_CPU].map(|m| ratio(phase - 1, m));
            println!(
                "| **gRPC / direct** | {clients} | **{rate:.2}×** | {p50:.2}× | {p99:.2}× | {cpu:.2}× | | |"
            );
        }
    }
    println!();
    Ok(())
}

#[tokio::main]
async fn main() {
    // `cargo bench` passes --bench; `cargo test --all-targets` runs this binary without
    // it, and a measurement is not a test: say so and stop.
    if !std::env::args().any(|argument| argument == "--bench") {
        println!(
            "a benchmark: run it with `cargo bench --bench {}`",
            env!("CARGO_CRATE_NAME")
        );
        return;
    }
    let options = Options::parse();
    teleconsult::server::init_crypto();
    let backends: &[Backend] = match options.backend {
        Choice::Sqlite => &[Backend::Sqlite],
        Choice::Postgres => &[Backend::Postgres],
        Choice::Both => &[Backend::Sqlite, Backend::Postgres],
    };
    let mut failed = false;
    for &backend in backends {
        if let Err(error) = bench(backend, &options).await {
            eprintln!("{}: {error}", backend.name());
            failed = true;
        }
    }
    if failed {
        std::process::exit(1);
    }
}
