//! The `chainsniff` command: a thin CLI over the library.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::builder::RangedU64ValueParser;
use clap::{Parser, Subcommand, ValueEnum};

use chainsniff::pki::Severity;
use chainsniff::{Limits, Options, render};

#[derive(Parser)]
#[command(
    name = "chainsniff",
    version,
    about = "Which client got which TLS certificate chain, and was it complete? (offline, from a capture)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Analyze pcap / pcapng captures (gzip too; `-` reads standard input).
    Analyze(AnalyzeArgs),
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Text,
    Json,
    /// One JSON line per handshake as soon as it is decided, then a summary line.
    Jsonl,
    Markdown,
    /// One self-contained HTML page (inline CSS, no fetches) to attach to a ticket.
    Html,
}

#[derive(Clone, Copy, ValueEnum)]
enum GroupBy {
    Server,
    Client,
    /// The client's TLS fingerprint (JA4).
    Fingerprint,
    /// The client's MAC vendor (and DHCP vendor class).
    Vendor,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Color {
    /// In a terminal, unless NO_COLOR is set.
    Auto,
    Always,
    Never,
}

#[derive(Clone, Copy, ValueEnum)]
enum TrustStoreArg {
    Mozilla,
    System,
    None,
}

#[derive(Clone, Copy, ValueEnum)]
enum FailOn {
    /// An error finding (a chain strict clients reject, or a client that rejected one).
    Error,
    /// An error or warning finding, or a handshake whose chain could not be judged.
    Warning,
    /// A handshake whose chain could not be judged (truncated, TLS 1.3 without keys).
    NotJudged,
}

#[derive(clap::Args)]
struct AnalyzeArgs {
    /// Capture files, analyzed together into one report.
    #[arg(required = true, value_name = "CAPTURE")]
    captures: Vec<String>,
    /// Output format.
    #[arg(long, short = 'f', value_enum, default_value = "text")]
    format: Format,
    /// Add trust anchors: a PEM or DER certificate file, or a directory of them (repeatable).
    /// This is how an enterprise root is added.
    #[arg(long, value_name = "FILE|DIR")]
    trust: Vec<PathBuf>,
    /// Do not trust the default roots (only --trust anchors): the same as --trust-store none.
    #[arg(long)]
    no_default_trust: bool,
    /// Which roots are trusted besides --trust: Mozilla's (as shipped with chainsniff), this
    /// machine's operating-system store, or none.
    #[arg(long, value_enum, value_name = "STORE", default_value = "mozilla")]
    trust_store: TrustStoreArg,
    /// Trust intermediate CA certificates given with --trust as anchors (as OpenSSL's
    /// -partial_chain). Without it only self-signed roots become anchors; intermediates only
    /// name the issuer a server failed to send, and leaves are ignored.
    #[arg(long)]
    trust_intermediates: bool,
    /// TLS key log (NSS format) to decrypt TLS 1.3 handshakes and see their certificates
    /// (repeatable; SSLKEYLOGFILE is read too when set). Key logs embedded in pcapng files are
    /// always used.
    #[arg(long, value_name = "FILE")]
    keylog: Vec<PathBuf>,
    /// Exit with status 1 when a finding of this severity (or worse) exists; `warning` and
    /// `not-judged` also when a chain could not be judged (truncated, TLS 1.3 without keys).
    #[arg(long, value_enum, value_name = "SEVERITY")]
    fail_on: Option<FailOn>,
    /// Most TCP (and, separately, UDP) conversations followed at once. Beyond it the least
    /// recently active are evicted, reported as they stood, and counted in a warning.
    #[arg(long, value_name = "N", default_value_t = Limits::default().max_flows,
          value_parser = RangedU64ValueParser::<usize>::new().range(1..))]
    max_flows: usize,
    /// Largest TLS handshake message kept, in bytes (2^24 is the protocol's limit). A larger one
    /// is skipped, and its handshake notes it.
    #[arg(long, value_name = "BYTES", default_value_t = Limits::default().max_handshake_bytes,
          value_parser = RangedU64ValueParser::<usize>::new().range(64..=(1 << 24)))]
    max_handshake_bytes: usize,
    /// Write every certificate seen (PEM, named by SHA-256 prefix and subject), each chain as
    /// sent (chain-SERVER-VARIANT.pem) and the chain each server should send
    /// (bundle-SERVER.pem) into this directory.
    #[arg(long, value_name = "DIR")]
    export_certs: Option<PathBuf>,
    /// Only handshakes from these clients: an address or CIDR range (repeatable).
    #[arg(long, value_name = "CIDR")]
    client: Vec<String>,
    /// Only handshakes with these servers: an address or CIDR range, with a port or not:
    /// 10.0.0.5:443, 10.0.0.0/24, [2001:db8::/32]:5061 (repeatable).
    #[arg(long, value_name = "CIDR[:PORT]")]
    server: Vec<String>,
    /// Only handshakes whose SNI matches this glob, e.g. '*.contoso.com' (repeatable; no case).
    #[arg(long, value_name = "GLOB")]
    sni: Vec<String>,
    /// Also summarize the handshakes by client, server, TLS fingerprint or MAC vendor.
    #[arg(long, value_enum, value_name = "KEY")]
    group_by: Option<GroupBy>,
    /// Colors in the text report.
    #[arg(long, value_enum, default_value = "auto", value_name = "WHEN")]
    color: Color,
    /// Nothing on standard error but errors: no warnings, no progress bar.
    #[arg(long, short = 'q')]
    quiet: bool,
    /// Write the report to this file instead of standard output.
    #[arg(long, short = 'o', value_name = "FILE")]
    output: Option<PathBuf>,
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    match cli.command {
        Command::Analyze(args) => analyze(args),
    }
}

fn analyze(args: AnalyzeArgs) -> ExitCode {
    let mut keylog = args.keylog;
    if let Some(env) = std::env::var_os("SSLKEYLOGFILE").filter(|v| !v.is_empty()) {
        keylog.push(PathBuf::from(env));
    }
    let filter = match chainsniff::filter::Filter::new(&args.client, &args.server, &args.sni) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("chainsniff: {e:#}");
            return ExitCode::from(2);
        }
    };
    let progress = if args.quiet || !std::io::stderr().is_terminal() {
        None
    } else {
        Some(progress_bar(&args.captures))
    };
    let opts = Options {
        filter,
        progress,
        trust: args.trust,
        no_default_trust: args.no_default_trust,
        trust_store: match args.trust_store {
            TrustStoreArg::Mozilla => chainsniff::pki::TrustSource::Mozilla,
            TrustStoreArg::System => chainsniff::pki::TrustSource::System,
            TrustStoreArg::None => chainsniff::pki::TrustSource::None,
        },
        trust_intermediates: args.trust_intermediates,
        keylog,
        limits: Limits {
            max_flows: args.max_flows,
            max_handshake_bytes: args.max_handshake_bytes,
        },
    };
    if let Format::Jsonl = args.format {
        return jsonl(&args.captures, &opts, args.output.as_deref(), args.fail_on);
    }
    // CHAINSNIFF_TIMINGS=1 prints how long each phase took (for docs/performance.md).
    let timings = std::env::var_os("CHAINSNIFF_TIMINGS").is_some();
    let started = std::time::Instant::now();
    let phase = |name: &str| {
        if timings {
            eprintln!(
                "chainsniff: {name} done at {:.3} s",
                started.elapsed().as_secs_f64()
            );
        }
    };
    let analysis = match chainsniff::analyze(&args.captures, &opts) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("chainsniff: {e:#}");
            return ExitCode::from(2);
        }
    };
    phase("reading");
    let mut report = match chainsniff::build(&analysis) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("chainsniff: {e:#}");
            return ExitCode::from(2);
        }
    };
    if let Some(by) = args.group_by {
        report.group_by(match by {
            GroupBy::Server => chainsniff::report::GroupBy::Server,
            GroupBy::Client => chainsniff::report::GroupBy::Client,
            GroupBy::Fingerprint => chainsniff::report::GroupBy::Fingerprint,
            GroupBy::Vendor => chainsniff::report::GroupBy::Vendor,
        });
    }
    if let Some(dir) = &args.export_certs {
        match chainsniff::export::export_certs(&analysis, &report, dir) {
            Ok(x) if !args.quiet => eprintln!(
                "chainsniff: wrote {} certificates, {} chains and {} bundles to {}",
                x.certificates.len(),
                x.chains.len(),
                x.bundles.len(),
                dir.display()
            ),
            Ok(_) => {}
            Err(e) => {
                eprintln!("chainsniff: {e:#}");
                return ExitCode::from(2);
            }
        }
    }
    // The report holds all it needs: freeing the analysis now lowers the peak while printing.
    drop(analysis);
    for n in report.trust.notes.iter().filter(|_| !args.quiet) {
        eprintln!("chainsniff: warning: {}", render::clean(&n.message()));
    }
    for c in report.captures.iter().filter(|_| !args.quiet) {
        for w in &c.summary.warnings {
            eprintln!(
                "chainsniff: warning: {}: {}",
                c.summary.path,
                render::clean(w)
            );
        }
    }
    phase("report");
    let to_terminal = args.output.is_none() && std::io::stdout().is_terminal();
    let colors = match args.color {
        Color::Always => true,
        Color::Never => false,
        Color::Auto => to_terminal && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
    };
    let style = render::Style {
        color: colors,
        ..render::Style::default()
    };
    // Text and JSON are written as they are made; Markdown and HTML are made, then written.
    let write = |w: &mut dyn Write| -> std::io::Result<()> {
        let write = match args.format {
            Format::Text => render::text::write,
            Format::Json | Format::Jsonl => render::json::write,
            Format::Markdown => render::markdown::write,
            Format::Html => render::html::write,
        };
        write(&report, w, &style)
    };
    phase("printing");
    let written = match &args.output {
        Some(path) => std::fs::File::create(path)
            .and_then(|mut f| write(&mut f))
            .map_err(|e| format!("cannot write {}: {e}", path.display())),
        None => write(&mut std::io::stdout().lock())
            .or_else(|e| {
                if e.kind() == std::io::ErrorKind::BrokenPipe {
                    Ok(())
                } else {
                    Err(e)
                }
            })
            .map_err(|e| format!("cannot write the report: {e}")),
    };
    if let Err(e) = written {
        eprintln!("chainsniff: {e}");
        return ExitCode::from(2);
    }
    phase("writing");
    let status = exit_status(&report, args.fail_on);
    // Freeing the report's many small allocations one by one would take a tenth of the run on
    // a large capture; the process is about to exit and the OS reclaims the memory at once.
    std::mem::forget(report);
    status
}

/// A progress bar on standard error, shown once reading has taken a second.
fn progress_bar(captures: &[String]) -> chainsniff::analysis::Progress {
    let start = Instant::now();
    // One bar for all the captures (several are read at once): bytes read of all of them.
    let distinct: std::collections::BTreeSet<&String> = captures.iter().collect();
    let total: Option<u64> = distinct
        .iter()
        .map(|p| std::fs::metadata(p).ok().map(|m| m.len()))
        .sum();
    let label = match captures {
        [one] => one.clone(),
        many => format!("{} captures", many.len()),
    };
    type State = (
        std::collections::HashMap<String, u64>,
        Option<indicatif::ProgressBar>,
    );
    let state: Mutex<State> = Mutex::new(Default::default());
    chainsniff::analysis::Progress(Arc::new(
        move |path: &str, read: u64, _size: Option<u64>| {
            let Ok(mut state) = state.lock() else { return };
            let (reads, bar) = &mut *state;
            reads.insert(path.to_string(), read);
            let done: u64 = reads.values().sum();
            if bar.is_none() && start.elapsed() >= Duration::from_secs(1) {
                let b = match total {
                    Some(len) => indicatif::ProgressBar::new(len).with_style(
                        indicatif::ProgressStyle::with_template(
                            "{msg} {wide_bar} {binary_bytes}/{binary_total_bytes} {prefix}",
                        )
                        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
                    ),
                    None => indicatif::ProgressBar::new_spinner().with_style(
                        indicatif::ProgressStyle::with_template(
                            "{msg} {spinner} {binary_bytes} {prefix}",
                        )
                        .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
                    ),
                };
                b.set_draw_target(indicatif::ProgressDrawTarget::stderr());
                b.set_message(label.clone());
                *bar = Some(b);
            }
            if let Some(b) = bar.as_ref() {
                // The average rate since the start (indicatif's own would count the bytes read
                // before the bar appeared as read in an instant).
                let secs = start.elapsed().as_secs_f64().max(0.001);
                b.set_prefix(format!("{:.0} MB/s", done as f64 / secs / 1e6));
                b.set_position(done);
                if total.is_some_and(|t| done >= t) {
                    b.finish_and_clear();
                }
            }
        },
    ))
}

fn exit_status(report: &chainsniff::Report, fail_on: Option<FailOn>) -> ExitCode {
    let worst = report.worst_severity();
    // A chain that could not be judged is no all-clear: it fails `--fail-on warning` and
    // `--fail-on not-judged`.
    let not_judged = report.summary.not_judged > 0;
    let fail = match fail_on {
        Some(FailOn::Error) => worst == Some(Severity::Error),
        Some(FailOn::Warning) => {
            matches!(worst, Some(Severity::Error | Severity::Warning)) || not_judged
        }
        Some(FailOn::NotJudged) => not_judged,
        None => false,
    };
    ExitCode::from(if fail { 1 } else { 0 })
}

/// `--format jsonl`: lines written (and flushed) as handshakes are decided.
fn jsonl(
    captures: &[String],
    opts: &Options,
    output: Option<&std::path::Path>,
    fail_on: Option<FailOn>,
) -> ExitCode {
    let mut out: Box<dyn Write> = match output {
        Some(p) => match std::fs::File::create(p) {
            Ok(f) => Box::new(std::io::BufWriter::new(f)),
            Err(e) => {
                eprintln!("chainsniff: cannot write {}: {e}", p.display());
                return ExitCode::from(2);
            }
        },
        None => Box::new(std::io::stdout()),
    };
    let mut broken = false;
    let report = chainsniff::run_streaming(captures, opts, |h| {
        if !broken {
            broken = render::json::write_handshake_line(h, &mut out)
                .and_then(|_| out.flush())
                .is_err();
        }
    });
    let report = match report {
        Ok(r) => r,
        Err(e) => {
            eprintln!("chainsniff: {e:#}");
            return ExitCode::from(2);
        }
    };
    let _ = render::json::write_summary_line(&report, &mut out).and_then(|_| out.flush());
    exit_status(&report, fail_on)
}
