//! The `pathwatch` binary: CLI parsing, logging set-up, exit codes. Everything else is in
//! the library.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use pathwatch::config::{Config, DemoConfig};
use pathwatch::{app, report};

#[derive(Parser)]
#[command(
    name = "pathwatch",
    version,
    about = "Synthetic monitoring of the whole path a user takes."
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// Config file: pathwatch's own, or a blackbox_exporter `blackbox.yml` (read as
    /// blackbox_exporter reads it). `--config.file` is blackbox_exporter's spelling.
    #[arg(
        long,
        short,
        global = true,
        default_value = "config.yaml",
        alias = "config.file"
    )]
    config: PathBuf,
    /// `run`: also reload when the config file's checksum changed, checked this often
    /// (e.g. 30s; a bare number is seconds). SIGHUP and `POST /-/reload` always reload.
    #[arg(long = "config.auto-reload-interval", global = true, value_name = "DURATION", value_parser = parse_interval)]
    auto_reload_interval: Option<std::time::Duration>,
    /// blackbox_exporter's switch for `--config.auto-reload-interval` (default 30s then).
    #[arg(long = "config.enable-auto-reload", global = true)]
    enable_auto_reload: bool,
    /// Validate the config and exit (blackbox_exporter's spelling of `validate`).
    #[arg(long = "config.check", global = true)]
    config_check: bool,
    /// `run`: listen here instead of `server.listen` (`:9115` is every interface).
    #[arg(long = "web.listen-address", global = true, value_name = "ADDRESS", value_parser = parse_listen)]
    listen_address: Option<std::net::SocketAddr>,
    /// `/probe`: seconds taken from Prometheus' scrape timeout so the answer arrives in
    /// time (default 0.5, as blackbox_exporter).
    #[arg(long = "timeout-offset", global = true, value_name = "SECONDS")]
    timeout_offset: Option<f64>,
    /// Log level when `RUST_LOG` is not set: debug, info, warn, error.
    #[arg(long = "log.level", global = true, value_name = "LEVEL", value_parser = ["debug", "info", "warn", "error"])]
    log_level: Option<String>,
    /// `run`: TLS, basic auth and response headers for the listener, in the exporter-toolkit
    /// web config format; re-read when it or its certificate files change.
    #[arg(long = "web.config.file", global = true, value_name = "FILE")]
    web_config: Option<PathBuf>,
    /// `run`: this instance is shard INDEX of COUNT (from 0, e.g. `1/3`) and runs only the
    /// checks it owns (rendezvous hashing of check names; `cluster:` for DNS members).
    #[arg(long = "shard", global = true, value_name = "INDEX/COUNT", value_parser = pathwatch::cluster::parse_shard)]
    shard: Option<(usize, usize)>,
    /// Log format on stderr (`RUST_LOG` sets the level, default info). `--log.format
    /// logfmt|json` is blackbox_exporter's spelling.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, alias = "log.format")]
    log_format: LogFormat,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon (the default).
    Run,
    /// Run every selected check once and report; exit 0 all passed, 1 any failed, 2 bad config.
    Check {
        /// Only this check (repeatable).
        #[arg(long = "check", value_name = "NAME")]
        checks: Vec<String>,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
        /// Right after a deploy: try again, every second, checks whose target says it is
        /// starting or refuses connections, for at most this long (e.g. 5m).
        #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
        wait_ready: Option<std::time::Duration>,
    },
    /// Report every config error at once; exit 0 valid, 2 invalid.
    Validate,
    /// Print Prometheus alerting rules for this config (deploy/prometheus/rules.yml).
    Rules {
        /// Availability objective of golden-path checks for the burn-rate alerts.
        #[arg(long, default_value_t = pathwatch::rules::DEFAULT_SLO)]
        slo: f64,
        /// Wrap them in a Prometheus Operator PrometheusRule resource.
        #[arg(long)]
        kubernetes: bool,
        /// One deployment per location: page only when this many locations have a check
        /// CRIT (fewer: a ticket); add PathwatchLocationImpaired.
        #[arg(long, value_name = "K")]
        quorum: Option<usize>,
    },
    /// Run only the built-in demo agent backend (health, readiness, /ws with faults).
    DemoBackend {
        #[arg(long, default_value = "127.0.0.1:9116")]
        listen: std::net::SocketAddr,
        /// Also serve over TLS here, with a certificate for localhost made at start.
        #[arg(long)]
        tls_listen: Option<std::net::SocketAddr>,
        /// Write the CA of that certificate here (PEM), for `ca_file:` of other processes.
        #[arg(long, requires = "tls_listen")]
        ca_out: Option<std::path::PathBuf>,
        /// Start cold: answer "starting" (health 503, /ws 1011) for this long, e.g. 20s.
        #[arg(long, value_parser = humantime::parse_duration)]
        cold_start: Option<std::time::Duration>,
    },
    /// Ask a running pathwatch whether it is healthy (`GET /-/healthy` over plain HTTP, 3 s):
    /// exit 0 healthy, 1 not. For a container's HEALTHCHECK, without curl in the image.
    Healthcheck {
        #[arg(long, default_value = "127.0.0.1:9115")]
        address: String,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    #[value(alias = "logfmt")]
    Text,
    Json,
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Text,
    Json,
    Junit,
}

fn main() -> ExitCode {
    fix_mmap_threshold();
    let cli = Cli::parse();
    init_logging(cli.log_format, cli.log_level.as_deref());
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let command = cli.command.unwrap_or(Command::Run);
    if let Command::DemoBackend {
        listen,
        tls_listen,
        ca_out,
        cold_start,
    } = command
    {
        let demo = DemoConfig {
            listen,
            tls_listen,
            cold_start,
        };
        let serving = app::serve_demo(demo, ca_out.as_deref(), app::shutdown_signal());
        return match runtime.block_on(serving) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("{e:#}");
                ExitCode::from(1)
            }
        };
    }
    if let Command::Healthcheck { address } = &command {
        return match runtime.block_on(app::healthcheck(address)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("not healthy: {e}");
                ExitCode::from(1)
            }
        };
    }
    let overrides = pathwatch::config::Overrides {
        listen: cli.listen_address,
        timeout_offset: match cli.timeout_offset {
            Some(secs) if !(secs.is_finite() && secs >= 0.0) => {
                eprintln!("--timeout-offset is seconds, 0 or more (e.g. 0.5)");
                return ExitCode::from(2);
            }
            other => other.map(std::time::Duration::from_secs_f64),
        },
    };
    let config = match Config::load(&cli.config) {
        Ok(mut c) => {
            overrides.apply(&mut c);
            c
        }
        Err(errors) => {
            eprintln!("{errors}");
            eprintln!("{} error(s) in {}", errors.0.len(), cli.config.display());
            return ExitCode::from(2);
        }
    };
    let command = if cli.config_check {
        Command::Validate
    } else {
        command
    };
    match command {
        Command::Validate => {
            println!(
                "{}: OK ({} checks, {} modules)",
                cli.config.display(),
                config.checks.len(),
                config.modules.len()
            );
            for note in &config.notes {
                println!("note: {note}");
            }
            ExitCode::SUCCESS
        }
        Command::Rules {
            slo,
            kubernetes,
            quorum,
        } => {
            if quorum == Some(0) {
                eprintln!("--quorum is how many locations must agree: at least 1");
                return ExitCode::from(2);
            }
            if !(0.0..1.0).contains(&slo) || slo <= 0.0 {
                eprintln!("--slo must be between 0 and 1 (e.g. 0.995), not {slo}");
                return ExitCode::from(2);
            }
            let format = if kubernetes {
                pathwatch::rules::Format::PrometheusRule
            } else {
                pathwatch::rules::Format::RuleFile
            };
            if config.alerting.is_some() {
                eprintln!(
                    "warning: this config also sends alerts to Alertmanager itself (alerting.alertmanagers); with these rules loaded in Prometheus every page would come twice. Use one or the other."
                );
            }
            print!(
                "{}",
                pathwatch::rules::generate_as(&config, slo, format, quorum)
            );
            ExitCode::SUCCESS
        }
        Command::Check {
            checks,
            format,
            wait_ready,
        } => runtime.block_on(async {
            let reports = match app::build(config) {
                Ok(built) => app::run_once(&built, &checks, wait_ready).await,
                Err(e) => Err(format!("{e:#}")),
            };
            let reports = match reports {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("{e}");
                    return ExitCode::from(2);
                }
            };
            let out = match format {
                Format::Text => report::text(&reports),
                Format::Json => report::json(&reports),
                Format::Junit => report::junit(&reports),
            };
            print!("{out}");
            ExitCode::from(report::exit_code(&reports) as u8)
        }),
        // (demo-backend and healthcheck returned above, before any config was read.)
        Command::DemoBackend { .. } | Command::Healthcheck { .. } | Command::Run => runtime
            .block_on(async {
                let listener = match tokio::net::TcpListener::bind(config.server.listen).await {
                    Ok(l) => l,
                    Err(e) => {
                        eprintln!("cannot listen on {}: {e}", config.server.listen);
                        return ExitCode::from(1);
                    }
                };
                let reload = app::RunOptions {
                    path: Some(cli.config.clone()),
                    auto_interval: cli.auto_reload_interval.or(cli
                        .enable_auto_reload
                        .then_some(std::time::Duration::from_secs(30))),
                    web_config: cli.web_config.clone(),
                    shard: cli.shard,
                    overrides,
                };
                match app::run_with(config, reload, listener, app::shutdown_signal()).await {
                    Ok(()) => ExitCode::SUCCESS,
                    Err(e) => {
                        eprintln!("pathwatch stopped: {e:#}");
                        ExitCode::from(1)
                    }
                }
            }),
    }
}

/// blackbox_exporter's `--web.listen-address`: `host:port`, `[v6]:port`, or `:port` for
/// every interface.
fn parse_listen(text: &str) -> Result<std::net::SocketAddr, String> {
    let full = match text.strip_prefix(':') {
        Some(port) => format!("0.0.0.0:{port}"),
        None => text.to_string(),
    };
    full.parse()
        .map_err(|_| format!("`{text}` is not host:port or :port (e.g. :9115, 127.0.0.1:9115)"))
}

/// A duration with a unit (30s, 1m), or a bare number of seconds (blackbox_exporter's).
fn parse_interval(text: &str) -> Result<std::time::Duration, String> {
    match text.parse::<u64>() {
        Ok(secs) => Ok(std::time::Duration::from_secs(secs)),
        Err(_) => humantime::parse_duration(text).map_err(|e| e.to_string()),
    }
}

fn init_logging(format: LogFormat, level: Option<&str>) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(match level {
            Some("warn") => "warn",
            Some(l) => l,
            None => "info",
        })
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        // Colours only on a terminal: a container's or journald's log keeps plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// glibc raises its mmap threshold each time a large block is freed, up to 32 MiB: after the
/// first 1 MiB body read is freed, every later one comes from an arena and stays resident
/// there, so the daemon's RSS climbed for its first half hour with a flat heap (BENCHMARKS.md,
/// soak: +12% from minute 5 to 40). With the threshold fixed at 128 KiB (glibc's start
/// value), large blocks are mapped and unmapped and RSS stays flat in the same soak.
/// `MALLOC_MMAP_THRESHOLD_` in the environment still wins.
fn fix_mmap_threshold() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_MMAP_THRESHOLD_").is_none() {
        // SAFETY: called first thing in main, before any other thread exists; mallopt only
        // sets a glibc tunable and returns 1 on success.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
        }
    }
}
