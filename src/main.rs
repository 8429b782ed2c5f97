//! The `trunkgate` command: run the gateway, check a configuration, or explain a rewrite.

#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::unreachable,
        clippy::todo
    )
)]

use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[cfg(all(feature = "mimalloc", not(feature = "heap-stats")))]
#[global_allocator]
static ALLOC: trunkgate::ops::heap::Zoned = trunkgate::ops::heap::Zoned;

// A measurement build: the same allocators, each allocation counted (src/ops/heap.rs).
#[cfg(all(feature = "mimalloc", feature = "heap-stats"))]
#[global_allocator]
static ALLOC: trunkgate::ops::heap::Counting<trunkgate::ops::heap::Zoned> =
    trunkgate::ops::heap::Counting(trunkgate::ops::heap::Zoned);
#[cfg(all(not(feature = "mimalloc"), feature = "heap-stats"))]
#[global_allocator]
static ALLOC: trunkgate::ops::heap::Counting<std::alloc::System> =
    trunkgate::ops::heap::Counting(std::alloc::System);

use anyhow::Context;
use clap::{Parser, Subcommand};
use trunkgate::config::{Config, PeerName};

#[derive(Parser)]
#[command(
    name = "trunkgate",
    version,
    about = "Carrier-facing SIP B2BUA gateway"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the gateway.
    Run {
        #[arg(short, long, default_value = "gateway.toml")]
        config: PathBuf,
        /// `text` for people, `json` (one object per line) for log collectors.
        #[arg(long, value_enum, default_value_t = LogFormat::Text)]
        log_format: LogFormat,
    },
    /// Validate gateway.toml and every profile; print each problem as file:line:col: message.
    Check {
        #[arg(short, long, default_value = "gateway.toml")]
        config: PathBuf,
    },
    /// Validate the configuration, then have the running gateway reload it (SIGHUP to the
    /// process in the pid file beside the CDR file) and print what it did.
    Reload {
        #[arg(short, long, default_value = "gateway.toml")]
        config: PathBuf,
    },
    /// Print the sources the profiles identify peers by, as the address file of the shipped
    /// SIP front (contrib/kamailio: Kamailio's `permissions`), which drops all others.
    FrontSources {
        #[arg(short, long, default_value = "gateway.toml")]
        config: PathBuf,
    },
    /// Print an initial INVITE as it would leave toward a peer, with the rewrites applied.
    Explain {
        #[arg(short, long, default_value = "gateway.toml")]
        config: PathBuf,
        /// The peer (profile name) the message is sent to.
        #[arg(long)]
        profile: String,
        /// A file holding the SIP message (bare LF line ends are fine).
        message_file: PathBuf,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

/// Log lines waiting for stderr. Past this the newest are dropped (and counted) rather than
/// letting a slow terminal or journal stall the thread that carries the calls.
const LOG_QUEUE_LINES: usize = 16_384;

/// The log writer's thread; dropping the guard writes out what is queued.
struct Logs {
    guard: tracing_appender::non_blocking::WorkerGuard,
    dropped: tracing_appender::non_blocking::ErrorCounter,
}

impl Logs {
    /// Write out the queued lines; returns how many were dropped over the run.
    fn finish(self) -> usize {
        drop(self.guard);
        self.dropped.dropped_lines()
    }
}

/// Log to stderr through a bounded queue and its own thread. `RUST_LOG` filters (default
/// `info`).
fn init_logs(format: LogFormat) -> Logs {
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(true)
        .buffered_lines_limit(LOG_QUEUE_LINES)
        .thread_name("log-writer")
        .finish(std::io::stderr());
    let dropped = writer.error_counter();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let subscriber = subscriber(format, filter, ansi, writer);
    if tracing::subscriber::set_global_default(subscriber).is_err() {
        eprintln!("trunkgate: a log subscriber was already installed");
    }
    Logs { guard, dropped }
}

/// The log formatter: text (colours only on a terminal) or JSON, one object per line with the
/// event's fields at the top level and the enclosing span's fields (a call's Call-ID and
/// peer) under `span`.
fn subscriber<W>(
    format: LogFormat,
    filter: tracing_subscriber::EnvFilter,
    ansi: bool,
    writer: W,
) -> Box<dyn tracing::Subscriber + Send + Sync>
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    let fmt = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    match format {
        LogFormat::Text => Box::new(fmt.with_ansi(ansi).finish()),
        LogFormat::Json => Box::new(
            fmt.json()
                .flatten_event(true)
                .with_current_span(true)
                .with_span_list(false)
                .finish(),
        ),
    }
}

fn main() -> ExitCode {
    // No transparent huge pages: a 2 MiB page stays resident for a few live calls, so
    // held-call memory grew by a third while idle (khugepaged filling the holes ended
    // transactions left) and the idle footprint doubled (BENCHMARKS.md, memory). mimalloc
    // is built not to ask for them (Cargo.toml, no_thp); this covers a kernel that gives
    // them unasked (`always`). Best effort: a kernel without THP has nothing to turn off.
    let thp = nix::sys::prctl::set_thp_disable(true);
    let cli = Cli::parse();
    let log_format = match &cli.cmd {
        Cmd::Run { log_format, .. } => *log_format,
        _ => LogFormat::Text,
    };
    let logs = init_logs(log_format);
    trunkgate::ops::panics::install_hook();
    if let Err(e) = thp {
        tracing::debug!("transparent huge pages left as they are: {e}");
    }
    let outcome = dispatch(cli.cmd);
    // Queued log lines go out before the final message, so that one is the last line.
    let dropped = logs.finish();
    if dropped > 0 {
        say_last(format!(
            "trunkgate: {dropped} log lines were dropped because stderr could not keep up"
        ));
    }
    match outcome {
        Ok(code) => code,
        Err(message) => {
            say_last(message);
            ExitCode::FAILURE
        }
    }
}

/// A last line on stderr, waited for a second at most: the log thread left behind on a
/// stderr that does not read (a stuck pipe or journal, the very case of dropped lines)
/// holds its lock, and a plain write would wait for it with no end, the exit status with it.
fn say_last(line: String) {
    let writer = std::thread::Builder::new().name("last-line".into());
    // (No thread to be had, the line is not written: the exit status still says it.)
    if let Ok(t) = writer.spawn(move || eprintln!("{line}")) {
        let _ = trunkgate::threads::join_within(t, std::time::Duration::from_secs(1));
    }
}

/// Carry out the command. `Err` is the message to print after the logs are flushed.
fn dispatch(cmd: Cmd) -> Result<ExitCode, String> {
    match cmd {
        Cmd::Check { config } => match Config::load(&config) {
            Ok(cfg) => {
                for w in &cfg.warnings {
                    println!("{w}");
                }
                println!(
                    "{}: ok ({} profiles, {} routes)",
                    config.display(),
                    cfg.profiles.len(),
                    cfg.routes.len()
                );
                Ok(ExitCode::SUCCESS)
            }
            Err(errs) => {
                println!("{errs}");
                Ok(ExitCode::FAILURE)
            }
        },
        Cmd::Run { config, .. } => {
            let rt = runtime().map_err(|e| format!("trunkgate: {e:#}"))?;
            let hup = {
                let _in = rt.enter();
                trunkgate::engine::Hangup::watch().map_err(|e| format!("trunkgate: {e:#}"))?
            };
            let cfg = Config::load(&config).map_err(|errs| {
                format!("{errs}\ntrunkgate: refusing to start with an invalid configuration")
            })?;
            let signals = {
                let _in = rt.enter();
                trunkgate::engine::Signals::watch(hup).map_err(|e| format!("trunkgate: {e:#}"))?
            };
            run(rt, config, cfg, signals).map_err(|e| format!("trunkgate: {e:#}"))?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Reload { config } => {
            let cfg = match Config::load(&config) {
                Ok(cfg) => cfg,
                Err(errs) => {
                    println!("{errs}");
                    println!(
                        "{}: not reloaded (the running gateway keeps its configuration)",
                        config.display()
                    );
                    return Ok(ExitCode::FAILURE);
                }
            };
            // A SIGHUP that comes while another load runs is answered after that load (up
            // to 5 s) and its own (up to 5 s): twice the load limit, and a margin.
            match trunkgate::ops::control::reload(&cfg, &config, std::time::Duration::from_secs(15))
            {
                Ok(r) if r.result == "applied" => {
                    println!("reloaded: {}", r.detail);
                    Ok(ExitCode::SUCCESS)
                }
                Ok(r) if r.result == "failed" => {
                    println!("reload failed: {}", r.detail);
                    Ok(ExitCode::FAILURE)
                }
                Ok(r) => {
                    println!("reload refused ({}): {}", r.result, r.detail);
                    Ok(ExitCode::FAILURE)
                }
                Err(e) => Err(format!("trunkgate: {e}")),
            }
        }
        Cmd::FrontSources { config } => match Config::load(&config) {
            Ok(cfg) => {
                let list = trunkgate::ops::front::kamailio_address_list(&cfg)
                    .map_err(|e| format!("trunkgate: {e}"))?;
                print!("{list}");
                Ok(ExitCode::SUCCESS)
            }
            Err(errs) => {
                eprintln!("{errs}");
                Ok(ExitCode::FAILURE)
            }
        },
        Cmd::Explain {
            config,
            profile,
            message_file,
        } => {
            explain(&config, &profile, &message_file).map_err(|e| format!("trunkgate: {e:#}"))?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The gateway's runtime. One thread: the core is single-owner state anyway, and handing
/// every packet from a reader thread to the core thread cost more in wakeups than parsing
/// it (BENCHMARKS.md).
fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the runtime")
}

fn run(
    rt: tokio::runtime::Runtime,
    path: PathBuf,
    cfg: Config,
    signals: trunkgate::engine::Signals,
) -> anyhow::Result<()> {
    for w in &cfg.warnings {
        tracing::warn!("{w}");
    }
    // A panic nothing inside caught ends the run as an error, said last (its own line, at
    // error, came before): unwound out of `main`, the lines still queued for the log
    // thread were lost with the process, that one perhaps among them.
    let run =
        std::panic::AssertUnwindSafe(|| rt.block_on(trunkgate::engine::run(path, cfg, signals)));
    let done = std::panic::catch_unwind(run).unwrap_or_else(|payload| {
        Err(anyhow::anyhow!(
            "stopped on a defect (a panic at {}: {})",
            trunkgate::ops::panics::last_place().unwrap_or_else(|| "?".into()),
            trunkgate::ops::panics::message_of(&*payload)
        ))
    });
    // Dropped plainly, the runtime waits for every task of its blocking pool with no limit:
    // one stuck on a disk that does not answer would keep the process from ending.
    rt.shutdown_timeout(std::time::Duration::from_secs(1));
    done
}

fn explain(config: &Path, profile: &str, file: &Path) -> anyhow::Result<()> {
    let cfg = Config::load(config).map_err(|e| anyhow::anyhow!("{e}"))?;
    let text =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let out = trunkgate::call::explain_invite(&cfg, &PeerName(profile.into()), &text)?;
    print!("{}", out.message);
    if !out.message.ends_with('\n') {
        println!();
    }
    println!("--- rewrites toward {profile}:");
    for n in out.notes {
        println!("  {n}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// A log sink the test can read back.
    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn log_one(format: LogFormat) -> String {
        let buf = Buf::default();
        let out = buf.clone();
        let sub = subscriber(
            format,
            tracing_subscriber::EnvFilter::new("info"),
            false,
            move || out.clone(),
        );
        tracing::subscriber::with_default(sub, || {
            let span = tracing::info_span!("call", call_id = "abc@pbx", peer = "carrier-a");
            let _in = span.enter();
            tracing::info!(status = 486, "call released");
            tracing::debug!("filtered out");
        });
        String::from_utf8(buf.0.lock().unwrap().clone()).unwrap()
    }

    /// `-c` is `--config` for every command (what an operator types first at 3 a.m.).
    #[test]
    fn the_config_path_has_a_short_flag() {
        for cmd in ["run", "check", "reload", "front-sources"] {
            let cli = Cli::try_parse_from(["trunkgate", cmd, "-c", "/etc/tg.toml"]).unwrap();
            let config = match cli.cmd {
                Cmd::Run { config, .. }
                | Cmd::Check { config }
                | Cmd::Reload { config }
                | Cmd::FrontSources { config } => config,
                Cmd::Explain { .. } => unreachable!(),
            };
            assert_eq!(config, PathBuf::from("/etc/tg.toml"), "{cmd}");
        }
        let cli = Cli::try_parse_from([
            "trunkgate",
            "explain",
            "-c",
            "x.toml",
            "--profile",
            "p",
            "m.txt",
        ])
        .unwrap();
        assert!(
            matches!(cli.cmd, Cmd::Explain { config, .. } if config == std::path::Path::new("x.toml"))
        );
    }

    #[test]
    fn json_logs_are_one_object_per_line_with_the_call_span() {
        let text = log_one(LogFormat::Json);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 1, "{text}");
        let v: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
        assert_eq!(v["message"], "call released");
        assert_eq!(v["status"], 486);
        assert_eq!(v["level"], "INFO");
        assert_eq!(v["span"]["call_id"], "abc@pbx");
        assert_eq!(v["span"]["peer"], "carrier-a");
        assert!(v["timestamp"].is_string());
    }

    #[test]
    fn text_logs_carry_the_call_span_without_colour_codes() {
        let text = log_one(LogFormat::Text);
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(text.contains("call_id=\"abc@pbx\""), "{text}");
        assert!(text.contains("call released status=486"), "{text}");
        assert!(!text.contains('\u{1b}'), "{text}");
    }

    #[test]
    fn log_format_is_an_option_of_run() {
        let cli = Cli::try_parse_from(["trunkgate", "run", "--log-format", "json"]).unwrap();
        assert!(matches!(
            cli.cmd,
            Cmd::Run {
                log_format: LogFormat::Json,
                ..
            }
        ));
        let cli = Cli::try_parse_from(["trunkgate", "run"]).unwrap();
        assert!(matches!(
            cli.cmd,
            Cmd::Run {
                log_format: LogFormat::Text,
                ..
            }
        ));
        assert!(Cli::try_parse_from(["trunkgate", "run", "--log-format", "xml"]).is_err());
    }
}
