//! The fuzz loop: a proptest strategy driven for a time budget instead of a case count, every
//! execution guarded against panics (in the target's thread or any task it starts), a failing
//! input shrunk to a minimal one, and the process's address space capped so that an unbounded
//! allocation fails loudly instead of taking the machine down.
//!
//! - `STUDIO_MCP_FUZZ_SECS` — seconds per target (default 2, so `tests/run.sh` stays fast; CI's
//!   fuzzing stage gives each 20).
//! - `STUDIO_MCP_FUZZ_SEED` — the run's seed (default: random, printed); the inputs are a pure
//!   function of it, so a run can be replayed.
//! - `STUDIO_MCP_FUZZ_TRACE=<file>` — write each input to `<file>` before running it. An
//!   allocation past the address-space cap aborts the process (Rust's allocation-failure
//!   handler), which no hook survives: replay the printed seed with a trace file, and the file
//!   holds the input that aborted.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, Once};
use std::time::{Duration, Instant};

use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

/// Address space granted above what the process holds when the first target starts: far more
/// than any request may cost (bodies are capped at 1 MiB), far less than the machine has.
const HEADROOM_BYTES: u64 = 4 << 30;
/// How long shrinking a failure may take before the smallest input so far is reported.
const SHRINK_BUDGET: Duration = Duration::from_secs(60);

/// Panics seen anywhere in the process, and the last one's message.
static PANICS: AtomicU64 = AtomicU64::new(0);
static LAST_PANIC: Mutex<String> = Mutex::new(String::new());
/// While set, a panic is recorded but not printed (a fuzz input's panic is reported once,
/// shrunk, rather than once per attempt).
static QUIET: AtomicBool = AtomicBool::new(false);
/// How often each kind of outcome was seen ([`note`]): where the inputs went.
static OUTCOMES: Mutex<BTreeMap<String, u64>> = Mutex::new(BTreeMap::new());

/// Counts one outcome of the current target (a status, an error kind), so the report shows
/// how deep the inputs reach and not only how many there were.
pub fn note(outcome: impl Into<String>) {
    if let Ok(mut outcomes) = OUTCOMES.lock() {
        *outcomes.entry(outcome.into()).or_default() += 1;
    }
}

/// Installs the panic recorder and the address-space cap, once per process (nextest runs each
/// test in a process of its own; `cargo test` runs this binary's tests in one).
pub fn guard() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            PANICS.fetch_add(1, Ordering::SeqCst);
            let trace = std::backtrace::Backtrace::force_capture();
            if let Ok(mut last) = LAST_PANIC.lock() {
                *last = format!("{info}\n{trace}");
            }
            if !QUIET.load(Ordering::SeqCst) {
                previous(info);
            }
        }));
        if let Err(why) = cap_address_space() {
            eprintln!("fuzz: address space not capped: {why}");
        }
    });
}

/// RLIMIT_AS at the current size plus [`HEADROOM_BYTES`]: an allocation past it fails, and
/// Rust turns that into "memory allocation of N bytes failed" and an abort of this process.
fn cap_address_space() -> Result<(), String> {
    let status = std::fs::read_to_string("/proc/self/status").map_err(|e| e.to_string())?;
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmSize:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or("no VmSize in /proc/self/status")?;
    let (_, hard) = rlimit::getrlimit(rlimit::Resource::AS).map_err(|e| e.to_string())?;
    let soft = (kib * 1024 + HEADROOM_BYTES).min(hard);
    rlimit::setrlimit(rlimit::Resource::AS, soft, hard).map_err(|e| e.to_string())
}

struct Budget {
    time: Duration,
    seed: u64,
    trace: Option<std::path::PathBuf>,
}

impl Budget {
    fn from_env() -> Self {
        let secs = std::env::var("STUDIO_MCP_FUZZ_SECS")
            .ok()
            .and_then(|s| s.parse::<f64>().ok())
            .filter(|s| s.is_finite() && *s >= 0.0)
            .unwrap_or(2.0);
        let seed = std::env::var("STUDIO_MCP_FUZZ_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(rand::random);
        Self {
            time: Duration::from_secs_f64(secs),
            seed,
            trace: std::env::var_os("STUDIO_MCP_FUZZ_TRACE").map(Into::into),
        }
    }
}

/// What one execution found wrong, if anything: a message (the target's own check, or the
/// panic's message and backtrace).
type Outcome = Result<(), String>;

/// Runs `exec` on inputs drawn from `strategy` until the time budget is spent, then prints
/// "fuzz <name>: N executions in S s". A failure is shrunk and reported with its seed.
pub fn fuzz<S>(name: &str, strategy: S, mut exec: impl FnMut(&S::Value) -> Outcome)
where
    S: Strategy,
    S::Value: Debug,
{
    guard();
    let budget = Budget::from_env();
    let mut seed = [0u8; 32];
    for chunk in seed.chunks_mut(8) {
        chunk.copy_from_slice(&budget.seed.to_le_bytes());
    }
    let config = Config {
        failure_persistence: None,
        ..Config::default()
    };
    let mut runner =
        TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &seed));
    let started = Instant::now();
    let mut executions = 0u64;
    while started.elapsed() < budget.time {
        let mut tree = match strategy.new_tree(&mut runner) {
            Ok(tree) => tree,
            Err(why) => panic!("fuzz {name}: the strategy gave up: {why}"),
        };
        let input = tree.current();
        if let Some(path) = &budget.trace {
            let _ = std::fs::write(path, format!("{input:?}"));
        }
        executions += 1;
        if let Err(why) = run_one(&mut exec, &input) {
            let (input, why, steps) = shrink(&mut tree, &mut exec, input, why);
            panic!(
                "fuzz {name}: {why}\n\ninput (shrunk in {steps} steps): {input:#?}\n\n\
                 replay: STUDIO_MCP_FUZZ_SEED={} (execution {executions})",
                budget.seed
            );
        }
    }
    let outcomes = OUTCOMES
        .lock()
        .map(|mut o| std::mem::take(&mut *o))
        .unwrap_or_default();
    let mut outcomes: Vec<_> = outcomes.into_iter().collect();
    outcomes.sort_by_key(|(_, n)| std::cmp::Reverse(*n));
    let shown: Vec<String> = outcomes
        .iter()
        .take(20)
        .map(|(what, n)| format!("{n} {what}"))
        .collect();
    eprintln!(
        "fuzz {name}: {executions} executions in {:.1} s (seed {}){}{}",
        started.elapsed().as_secs_f64(),
        budget.seed,
        if shown.is_empty() { "" } else { "; outcomes: " },
        shown.join(", ")
    );
}

/// One execution: the target's verdict, or the panic it (or anything it spawned) raised.
fn run_one<T>(exec: &mut impl FnMut(&T) -> Outcome, input: &T) -> Outcome {
    let before = PANICS.load(Ordering::SeqCst);
    QUIET.store(true, Ordering::SeqCst);
    let result = catch_unwind(AssertUnwindSafe(|| exec(input)));
    QUIET.store(false, Ordering::SeqCst);
    let panicked = PANICS.load(Ordering::SeqCst) != before;
    let last = || LAST_PANIC.lock().map(|m| m.clone()).unwrap_or_default();
    match result {
        Err(_) => Err(format!("panicked: {}", last())),
        Ok(_) if panicked => Err(format!("a task it started panicked: {}", last())),
        Ok(verdict) => verdict,
    }
}

/// proptest's own shrinking walk: simplify while the input still fails, complicate when a
/// simplification passes, until neither moves or the budget is spent.
fn shrink<T: ValueTree>(
    tree: &mut T,
    exec: &mut impl FnMut(&T::Value) -> Outcome,
    mut smallest: T::Value,
    mut why: String,
) -> (T::Value, String, usize) {
    let started = Instant::now();
    let mut steps = 0;
    if !tree.simplify() {
        return (smallest, why, steps);
    }
    while started.elapsed() < SHRINK_BUDGET {
        steps += 1;
        let candidate = tree.current();
        let moved = match run_one(exec, &candidate) {
            Err(still) => {
                (smallest, why) = (candidate, still);
                tree.simplify()
            }
            Ok(()) => tree.complicate(),
        };
        if !moved {
            break;
        }
    }
    (smallest, why, steps)
}
