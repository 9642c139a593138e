//! The `chainsniff` command: a thin CLI over the library.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::builder::RangedU64ValueParser;
use clap::{CommandFactory, Parser, Subcommand, ValueEnum};

use chainsniff::pki::Severity;
use chainsniff::{Limits, Options, render};

/// The allocator: mimalloc. chainsniff allocates per handshake on several threads (reading
/// lanes, judging threads, the grouping one), and much of it is freed on another thread than
/// the one that allocated it; with the system allocator (glibc) malloc, free and realloc were
/// about a sixth of the samples, the run took a quarter more CPU time, and the 8 GiB benchmark
/// took 38 s instead of 20 s (docs/performance.md). Version 2,
/// which gives freed memory back to the system after 10 ms (version 3 waits a second, which
/// raised the peak of the 8 GiB benchmark while the analysis is freed), built without
/// transparent huge pages (`no_thp`: each 2 MiB touched would count whole as resident).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "chainsniff",
    version,
    about = "Which client got which TLS certificate chain, and was it complete? (offline, from a capture)",
    long_about = "Which client got which TLS certificate chain, and was it complete? chainsniff reads \
                  packet captures offline (pcap, pcapng, Network Monitor 2.x or snoop; plain or \
                  compressed with gzip, zstd, lz4, xz or bzip2) and reports, server by server, the \
                  certificate chains sent in TLS handshakes, what is wrong with them and how to fix it, \
                  and how each client reacted. It sends nothing and fetches nothing.",
    override_usage = "chainsniff [analyze] [OPTIONS] <CAPTURE>...\n       chainsniff <COMMAND>",
    after_help = "`chainsniff CAPTURE... [OPTIONS]` is short for `chainsniff analyze CAPTURE... [OPTIONS]` \
                  (a capture named like a command: ./analyze). `chainsniff analyze --help` lists the options."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Analyze captures: the default command (`chainsniff CAPTURE...` is the same).
    ///
    /// Captures are pcap, pcapng, Network Monitor 2.x or snoop files, plain or compressed with
    /// gzip, zstd, lz4, xz or bzip2; `-` reads standard input.
    Analyze(Box<AnalyzeArgs>),
    /// Print a shell completion script to standard output.
    ///
    /// For example `chainsniff completions bash > ~/.local/share/bash-completion/completions/chainsniff`,
    /// or `chainsniff completions zsh > "${fpath[1]}/_chainsniff"`.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Merge partial analyses (`analyze --partial`) into the report of all their captures.
    ///
    /// `chainsniff merge A.part B.part C.part` writes the report `chainsniff analyze A B C`
    /// writes, byte for byte; `--partial OUT` writes the merge as a partial again.
    Merge(Box<MergeArgs>),
    /// Print the groups of captures to analyze each as one partial, one JSON array of paths a
    /// line: a ring buffer's files (or a TAP's two) are one group, every other file its own.
    Plan {
        /// Capture files, in the order they would be given to `analyze`.
        #[arg(required = true, value_name = "CAPTURE")]
        captures: Vec<String>,
    },
    /// Print the manual page (roff) to standard output: `chainsniff man > chainsniff.1`.
    Man,
}

/// The subcommands' names (and clap's `help`): any other first argument is a capture of the
/// short form `chainsniff CAPTURE...`.
const COMMANDS: &[&str] = &["analyze", "completions", "merge", "plan", "man", "help"];

/// The arguments with `analyze` inserted when they are the short form `chainsniff CAPTURE...`
/// (or `chainsniff --format json CAPTURE...`): the first argument is neither a command nor
/// `--help` / `--version`.
fn with_default_command(mut args: Vec<std::ffi::OsString>) -> Vec<std::ffi::OsString> {
    let insert = match args.get(1).and_then(|a| a.to_str()) {
        None if args.len() < 2 => false,
        None => true, // not UTF-8: a file name
        Some(a) => !COMMANDS.contains(&a) && !matches!(a, "-h" | "--help" | "-V" | "--version"),
    };
    if insert {
        args.insert(1, "analyze".into());
    }
    args
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
enum Details {
    /// The 20 servers with problems first in detail, 20 handshakes per chain, the rest as
    /// counts.
    Summary,
    /// Every server and every handshake.
    All,
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
    /// Capture files, analyzed together into one report: pcap, pcapng, Network Monitor 2.x or
    /// snoop, plain or compressed with gzip, zstd, lz4, xz or bzip2 (told by their first bytes,
    /// not by the file name); `-` reads standard input.
    #[arg(required = true, value_name = "CAPTURE")]
    captures: Vec<String>,
    #[command(flatten)]
    read: ReadArgs,
    /// Write a partial analysis of the captures to this file instead of a report, for
    /// `chainsniff merge` (a cluster's tasks, a site's files merged elsewhere). The report
    /// options then belong to the merge. An unreadable capture still gives a partial, which
    /// names it in the merged report (exit status 2 all the same).
    #[arg(long, value_name = "OUT")]
    partial: Option<PathBuf>,
    /// With --partial: the capture file before the first (a ring buffer's previous file), read
    /// first only to go on with the conversations still open at its end, so that a handshake
    /// crossing from it into this one is whole. Its own handshakes are its partial's.
    #[arg(long, value_name = "PREV", requires = "partial")]
    after: Option<String>,
    #[command(flatten)]
    report: ReportArgs,
}

/// The options that change what is read from the captures.
#[derive(clap::Args)]
struct ReadArgs {
    /// TLS key log (NSS format) to decrypt TLS 1.3 handshakes and TLS 1.2 renegotiations and
    /// see their certificates (repeatable; SSLKEYLOGFILE is read too when set). Key logs embedded in pcapng files are
    /// always used.
    #[arg(long, value_name = "FILE")]
    keylog: Vec<PathBuf>,
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
    /// Threads that follow the TCP connections of a capture file: 1 follows them on the thread
    /// that reads it; 0 (the default) uses every core (up to 4) for a file of 64 MiB or more.
    /// The report is the same either way.
    #[arg(long, value_name = "N", default_value_t = 0,
          value_parser = RangedU64ValueParser::<usize>::new().range(0..=64))]
    threads: usize,
}

/// The options of the report: `analyze` and `merge` share them.
#[derive(clap::Args)]
struct ReportArgs {
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
    /// Exit with status 1 when a finding of this severity (or worse) exists; `warning` and
    /// `not-judged` also when a chain could not be judged (truncated, TLS 1.3 without keys).
    #[arg(long, value_enum, value_name = "SEVERITY")]
    fail_on: Option<FailOn>,
    /// Write every certificate seen (PEM, named by SHA-256 prefix and subject), each chain as
    /// sent (chain-SERVER-VARIANT.pem) and the chain each server should send
    /// (bundle-SERVER.pem) into this directory.
    #[arg(long, value_name = "DIR")]
    export_certs: Option<PathBuf>,
    /// Also summarize the handshakes by client, server, TLS fingerprint or MAC vendor.
    #[arg(long, value_enum, value_name = "KEY")]
    group_by: Option<GroupBy>,
    /// How much of the text report is in detail: `summary` bounds it (the 20 servers with
    /// problems first, 20 handshakes per chain, the rest as counts), `all` lists everything.
    #[arg(long, value_enum, default_value = "summary", value_name = "HOW")]
    details: Details,
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

#[derive(clap::Args)]
struct MergeArgs {
    /// Partial analyses (from `analyze --partial` or `merge --partial`), in capture order: the
    /// report is the one `analyze` gives for all their captures in this order.
    #[arg(required = true, value_name = "PART")]
    parts: Vec<PathBuf>,
    /// Write the merge as a partial again instead of a report (a tree reduction: merging the
    /// merges gives the same report).
    #[arg(long, value_name = "OUT")]
    partial: Option<PathBuf>,
    #[command(flatten)]
    report: ReportArgs,
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse_from(with_default_command(std::env::args_os().collect())) {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    match cli.command {
        Command::Analyze(args) => analyze(*args),
        Command::Merge(args) => merge(*args),
        Command::Plan { captures } => plan(&captures),
        Command::Completions { shell } => {
            let mut out = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "chainsniff", &mut out);
            print_out(&out)
        }
        Command::Man => match man_page() {
            Ok(page) => print_out(&page),
            Err(e) => {
                eprintln!("chainsniff: cannot make the manual page: {e}");
                ExitCode::from(2)
            }
        },
    }
}

/// Writes generated text to standard output (a closed pipe is no error).
fn print_out(bytes: &[u8]) -> ExitCode {
    match std::io::stdout().lock().write_all(bytes) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("chainsniff: cannot write: {e}");
            ExitCode::from(2)
        }
    }
}

/// chainsniff(1): the name, synopsis and description of the command, the options of `analyze`
/// (the default command, so the page's OPTIONS), then the commands.
fn man_page() -> std::io::Result<Vec<u8>> {
    let cmd = Cli::command();
    let analyze = cmd
        .find_subcommand("analyze")
        .cloned()
        .ok_or_else(|| std::io::Error::other("no analyze command"))?;
    let top = clap_mangen::Man::new(cmd);
    let mut out = Vec::new();
    top.render_title(&mut out)?;
    top.render_name_section(&mut out)?;
    top.render_synopsis_section(&mut out)?;
    top.render_description_section(&mut out)?;
    clap_mangen::Man::new(analyze).render_options_section(&mut out)?;
    // The commands, each on this page (clap_mangen's own section points to a page per command).
    out.extend_from_slice(b".SH COMMANDS\n");
    for sub in Cli::command().get_subcommands() {
        let about = sub.get_long_about().or(sub.get_about());
        out.extend_from_slice(
            format!(
                ".TP\n\\fB{}\\fR\n{}\n",
                roff_text(sub.get_name()),
                roff_text(&about.map(|a| a.to_string()).unwrap_or_default())
            )
            .as_bytes(),
        );
    }
    if let Some(short) = Cli::command().get_after_help() {
        out.extend_from_slice(format!(".PP\n{}\n", roff_text(&short.to_string())).as_bytes());
    }
    top.render_version_section(&mut out)?;
    Ok(out)
}

/// Text for a roff paragraph: backslashes and dashes escaped, no line starting a request.
fn roff_text(text: &str) -> String {
    text.lines()
        .map(|line| {
            let line = line.replace('\\', "\\e").replace('-', "\\-");
            if line.starts_with(['.', '\'']) {
                format!("\\&{line}")
            } else {
                line
            }
        })
        .collect::<Vec<_>>()
        .join("\n.br\n")
}

/// The column the text report wraps at: `COLUMNS` when set (as clap, Python and GNU tools read
/// it), else the terminal's width when standard output is one, else 80 (a pipe, a file); kept
/// within 60..=200.
fn text_width(to_terminal: bool) -> usize {
    let from_terminal = || {
        terminal_size::terminal_size_of(std::io::stdout())
            .map(|(terminal_size::Width(w), _)| usize::from(w))
    };
    let from_env = || {
        std::env::var("COLUMNS")
            .ok()
            .and_then(|c| c.trim().parse::<usize>().ok())
            .filter(|&c| c > 0)
    };
    from_env()
        .or_else(|| to_terminal.then(from_terminal).flatten())
        .unwrap_or(80)
        .clamp(60, 200)
}

fn analyze(args: AnalyzeArgs) -> ExitCode {
    let AnalyzeArgs {
        captures,
        read,
        partial,
        after,
        report,
    } = args;
    let Some(opts) = options(&read, &report, &captures) else {
        return ExitCode::from(2);
    };
    if let Some(out) = partial {
        return write_partial(&captures, after.as_deref(), &opts, &out, report.quiet);
    }
    if let Format::Jsonl = report.format {
        return jsonl(&captures, &opts, report.output.as_deref(), report.fail_on);
    }
    let started = std::time::Instant::now();
    let analysis = match chainsniff::analyze(&captures, &opts) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("chainsniff: {}", error_line(&e));
            return ExitCode::from(2);
        }
    };
    write_report(analysis, &report, started)
}

/// The options of a run; `None` after an error line.
fn options(read: &ReadArgs, report: &ReportArgs, captures: &[String]) -> Option<Options> {
    // Checked before reading (which may take minutes), not after.
    if let Some(dir) = &report.export_certs
        && dir.exists()
        && !dir.is_dir()
    {
        eprintln!(
            "chainsniff: --export-certs {}: is a file, not a directory (name a new or existing directory)",
            dir.display()
        );
        return None;
    }
    let mut keylog = read.keylog.clone();
    if let Some(env) = std::env::var_os("SSLKEYLOGFILE").filter(|v| !v.is_empty()) {
        keylog.push(PathBuf::from(env));
    }
    let filter = match chainsniff::filter::Filter::new(&read.client, &read.server, &read.sni) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("chainsniff: {e:#}");
            return None;
        }
    };
    let progress = if report.quiet || !std::io::stderr().is_terminal() || captures.is_empty() {
        None
    } else {
        Some(progress_bar(captures))
    };
    Some(Options {
        filter,
        progress,
        trust: report.trust.clone(),
        no_default_trust: report.no_default_trust,
        trust_store: match report.trust_store {
            TrustStoreArg::Mozilla => chainsniff::pki::TrustSource::Mozilla,
            TrustStoreArg::System => chainsniff::pki::TrustSource::System,
            TrustStoreArg::None => chainsniff::pki::TrustSource::None,
        },
        trust_intermediates: report.trust_intermediates,
        keylog,
        limits: Limits {
            max_flows: read.max_flows,
            max_handshake_bytes: read.max_handshake_bytes,
        },
        threads: read.threads,
    })
}

/// `analyze --partial OUT`: the captures' partial analysis; when they cannot be read, a
/// partial that names them with the error (and exit status 2, as `analyze`).
fn write_partial(
    captures: &[String],
    after: Option<&str>,
    opts: &Options,
    out: &std::path::Path,
    quiet: bool,
) -> ExitCode {
    use chainsniff::partial;
    let reading = partial::reading(opts);
    let mut after = after;
    let mut read = chainsniff::analysis::read_partial(captures, after, opts);
    // A file before that cannot be read is its own partial's failure, not this one's: the
    // captures are read without it (as the start of a capture).
    if let (Err(chainsniff::Error::Capture(e)), Some(prev)) = (&read, after)
        && e.path == prev
    {
        if !quiet {
            eprintln!("chainsniff: warning: --after {e}: read without it");
        }
        after = None;
        read = chainsniff::analysis::read_partial(captures, None, opts);
    }
    let (part, status) = match read {
        Ok(part) => (part, ExitCode::SUCCESS),
        Err(e) => {
            let line = error_line(&e);
            eprintln!("chainsniff: {line}");
            (partial::failed(captures, &line, opts), ExitCode::from(2))
        }
    };
    match partial::write(&part, &reading, after, out) {
        Ok(()) => status,
        Err(e) => {
            eprintln!("chainsniff: {e}");
            ExitCode::from(2)
        }
    }
}

/// `chainsniff merge`: the partials combined, into a report or a partial again.
fn merge(args: MergeArgs) -> ExitCode {
    use chainsniff::partial;
    if let (Format::Jsonl, None) = (args.report.format, &args.partial) {
        eprintln!(
            "chainsniff: merge writes the whole report: --format json (jsonl lines stream while captures are read)"
        );
        return ExitCode::from(2);
    }
    let read = ReadArgs {
        keylog: Vec::new(),
        max_flows: Limits::default().max_flows,
        max_handshake_bytes: Limits::default().max_handshake_bytes,
        client: Vec::new(),
        server: Vec::new(),
        sni: Vec::new(),
        threads: 0,
    };
    let Some(opts) = options(&read, &args.report, &[]) else {
        return ExitCode::from(2);
    };
    let started = std::time::Instant::now();
    let merged = match partial::merge(&args.parts, args.partial.is_some()) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("chainsniff: {e}");
            return ExitCode::from(2);
        }
    };
    if let Some(out) = &args.partial {
        return match partial::write(&merged.part, &merged.reading, merged.after.as_deref(), out) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("chainsniff: {e}");
                ExitCode::from(2)
            }
        };
    }
    let analysis = match chainsniff::analysis::trust_store(&opts) {
        Ok(trust) => merged.part.into_analysis(trust),
        Err(e) => {
            eprintln!("chainsniff: {}", error_line(&e));
            return ExitCode::from(2);
        }
    };
    write_report(analysis, &args.report, started)
}

/// `chainsniff plan`: the groups of captures `analyze` reads each as one unit.
fn plan(captures: &[String]) -> ExitCode {
    let mut out = String::new();
    for g in chainsniff::analysis::groups(captures) {
        out.push_str(&serde_json::to_string(&captures[g]).expect("strings"));
        out.push('\n');
    }
    print_out(out.as_bytes())
}

/// The report of `analysis`, written as `args` say; the exit status `--fail-on` asks for.
fn write_report(
    analysis: chainsniff::analysis::Analysis,
    args: &ReportArgs,
    started: std::time::Instant,
) -> ExitCode {
    // CHAINSNIFF_TIMINGS=1 prints how long each phase took (for docs/performance.md).
    let timings = std::env::var_os("CHAINSNIFF_TIMINGS").is_some();
    let phase = |name: &str| {
        if timings {
            // Linux says the peak resident memory so far in /proc (VmHWM), and what is
            // resident now: the heap (RssAnon) and the pages of mapped files (RssFile, the
            // capture's among them); elsewhere nothing.
            let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
            let mb = |key: &str| {
                let line = status.lines().find(|l| l.starts_with(key))?;
                Some(line.split_whitespace().nth(1)?.parse::<u64>().ok()? / 1024)
            };
            let peak = match (mb("VmHWM:"), mb("RssAnon:"), mb("RssFile:")) {
                (Some(peak), Some(anon), Some(file)) => {
                    format!(", peak RSS {peak} MB (now heap {anon} MB, mapped files {file} MB)")
                }
                _ => String::new(),
            };
            eprintln!(
                "chainsniff: {name} done at {:.3} s{peak}",
                started.elapsed().as_secs_f64()
            );
        }
    };
    phase("reading");
    // A JSON report copies out the handshakes' JSON as the report made it; the others read
    // back what they print of them.
    let records = match args.format {
        Format::Json | Format::Jsonl => chainsniff::report::Records::Json,
        Format::Text | Format::Markdown | Format::Html => chainsniff::report::Records::Packed,
    };
    let mut report = match chainsniff::report::build_as(&analysis, records) {
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
                "chainsniff: wrote {}, {} and {} to {}",
                render::counted(x.certificates.len(), "certificate"),
                render::counted(x.chains.len(), "chain"),
                render::counted(x.bundles.len(), "bundle"),
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
                render::clean(&w.text)
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
        width: text_width(to_terminal),
        all_details: args.details == Details::All,
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

/// The one line an error is told in; one about the key log SSLKEYLOGFILE names says so (the
/// user may not know it is read).
fn error_line(e: &chainsniff::Error) -> String {
    let message = format!("{e:#}");
    match (e, std::env::var_os("SSLKEYLOGFILE")) {
        (chainsniff::Error::KeyLog(m), Some(env))
            if !env.is_empty() && m.contains(&*env.to_string_lossy()) =>
        {
            format!("{message} (named by SSLKEYLOGFILE)")
        }
        _ => message,
    }
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
    let (report, revised) = match report {
        Ok(r) => r,
        Err(e) => {
            eprintln!("chainsniff: {}", error_line(&e));
            return ExitCode::from(2);
        }
    };
    let _ = render::json::write_summary_line(&report, &revised, &mut out).and_then(|_| out.flush());
    exit_status(&report, fail_on)
}
