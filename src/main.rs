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
        #[arg(long, default_value = "gateway.toml")]
        config: PathBuf,
    },
    /// Validate gateway.toml and every profile; print each problem as file:line:col: message.
    Check {
        #[arg(long, default_value = "gateway.toml")]
        config: PathBuf,
    },
    /// Print an initial INVITE as it would leave toward a peer, with the rewrites applied.
    Explain {
        #[arg(long, default_value = "gateway.toml")]
        config: PathBuf,
        /// The peer (profile name) the message is sent to.
        #[arg(long)]
        profile: String,
        /// A file holding the SIP message (bare LF line ends are fine).
        message_file: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    match cli.cmd {
        Cmd::Check { config } => match Config::load(&config) {
            Ok(cfg) => {
                println!(
                    "{}: ok ({} profiles, {} routes)",
                    config.display(),
                    cfg.profiles.len(),
                    cfg.routes.len()
                );
                ExitCode::SUCCESS
            }
            Err(errs) => {
                println!("{errs}");
                ExitCode::FAILURE
            }
        },
        Cmd::Run { config } => {
            let cfg = match Config::load(&config) {
                Ok(c) => c,
                Err(errs) => {
                    eprintln!("{errs}");
                    eprintln!("trunkgate: refusing to start with an invalid configuration");
                    return ExitCode::FAILURE;
                }
            };
            match run(config, cfg) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("trunkgate: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Cmd::Explain {
            config,
            profile,
            message_file,
        } => match explain(&config, &profile, &message_file) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("trunkgate: {e:#}");
                ExitCode::FAILURE
            }
        },
    }
}

fn run(path: PathBuf, cfg: Config) -> anyhow::Result<()> {
    // One thread: the core is single-owner state anyway, and handing every packet from a
    // reader thread to the core thread cost more in wakeups than parsing it (BENCHMARKS.md).
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the runtime")?;
    rt.block_on(trunkgate::engine::run(path, cfg))
}

fn explain(config: &Path, profile: &str, file: &Path) -> anyhow::Result<()> {
    let cfg = Config::load(config).map_err(|e| anyhow::anyhow!("{e}"))?;
    let text =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let out = trunkgate::call::explain_invite(&cfg, &PeerName(profile.to_string()), &text)?;
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
