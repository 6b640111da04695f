"""The command line. It parses options, calls the runner and the reporters, and maps
outcomes to exit codes (0 clean, 1 findings at or above --fail-on, 2 usage, config or
internal error). No analysis lives here."""
from __future__ import annotations

import os
import sys
from collections import Counter
from pathlib import Path
from typing import Optional

import click

from . import __version__
from .config import FAIL_LEVELS, ConfigError, load_settings
from .diagnostic import Severity
from .cache import cache_folder
from .discover import discover
from .fastparse import parse_alone
from .progress import progress_bar
from .registry import RuleError, load_rules
from .report import FORMATS, ReportContext, render
from .report.statistics import statistics_table
from .runner import RunOptions, RunResult, run_bytes, run_paths

EXIT_CLEAN, EXIT_FINDINGS, EXIT_ERROR = 0, 1, 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report Ctrl-C


def _codes(values) -> Optional[list[str]]:
    if not values:
        return None
    return [c for v in values for c in v.replace(",", " ").split() if c]


def _fail(message: str) -> None:
    click.echo(f"evallint: error: {message}", err=True)
    sys.exit(EXIT_ERROR)


def _rules():
    try:
        return load_rules()
    except RuleError as exc:
        _fail(str(exc))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="evallint")
def main() -> None:
    """evallint finds, fixes and replays silent bugs in the evaluation and metric code of
    deep-learning training scripts."""


def _check_options(f):
    opts = [
        click.argument("paths", nargs=-1, type=click.Path()),
        click.option("--select", multiple=True, help="Rule codes, prefixes or names to enable (replaces the config)."),
        click.option("--ignore", multiple=True, help="Rule codes, prefixes or names to disable."),
        click.option("--extend-select", multiple=True, help="Rule codes to enable on top of the selection."),
        click.option("--format", "fmt", type=click.Choice(FORMATS), default=None,
                     help="Output format (default: full on a terminal, concise otherwise)."),
        click.option("--fix", is_flag=True, help="Apply safe fixes."),
        click.option("--unsafe-fixes", is_flag=True, default=None, help="Also apply (and offer) unsafe fixes."),
        click.option("--diff", is_flag=True, help="Show the fixes as a unified diff; write nothing."),
        click.option("--exit-zero", is_flag=True, help="Exit 0 even when findings are reported."),
        click.option("--config", "config_file", type=click.Path(dir_okay=False), help="Use this config file."),
        click.option("--jobs", "-j", type=click.IntRange(min=0), default=0, help="Worker processes (0: all cores)."),
        click.option("--no-cache", is_flag=True, help="Do not read or write the result cache."),
        click.option("--statistics", is_flag=True,
                     help="Print the number of findings per rule instead of the findings."),
        click.option("--show-findings", is_flag=True, help="With --statistics: list the findings too."),
        click.option("--baseline", type=click.Path(dir_okay=False), help="Report only findings not in this baseline."),
        click.option("--write-baseline", type=click.Path(dir_okay=False), help="Record today's findings as the baseline."),
        click.option("--stdin-filename", help="Read the source from stdin and name it this."),
        click.option("--force-exclude", is_flag=True, default=None,
                     help="Apply excludes to files named on the command line too (for pre-commit)."),
        click.option("--fail-on", type=click.Choice(FAIL_LEVELS), default=None,
                     help="Lowest severity that fails the run (default: warning)."),
        click.option("--color/--no-color", default=None, help="Force colours on or off."),
        click.option("--cache-dir", type=click.Path(file_okay=False),
                     help="Cache folder (default: .evallint_cache in the project root; env EVALLINT_CACHE_DIR)."),
        click.option("--shard", default=None, metavar="K/N",
                     help="Report only shard K of N (a stable split of the files by path, for CI runners; "
                          "merge the outputs with `evallint merge`)."),
        click.option("--verbose", "-v", is_flag=True,
                     help="Say on stderr how many files were analysed and how many answered from the cache."),
    ]
    for opt in reversed(opts):
        f = opt(f)
    return f


@main.command()
@_check_options
def check(**kw) -> None:
    """Check files and folders (default: the current folder)."""
    _run_check(**kw)


@main.command()
@_check_options
def fix(**kw) -> None:
    """Apply fixes: the same as `check --fix`."""
    kw["fix"] = True
    _run_check(**kw)


def _run_check(**kw) -> None:
    try:
        _check(**kw)
    except KeyboardInterrupt:
        # Ctrl-C: stop now. os._exit skips joining the analysis thread and the worker
        # pool (they would finish their files first); writes are atomic, so every file
        # is either old or new.
        _interrupted()


def _interrupted() -> None:
    try:
        sys.stdout.flush()
    except (OSError, ValueError):
        pass
    try:
        sys.stderr.write("\nevallint: interrupted\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass
    os._exit(EXIT_INTERRUPTED)


def _write_stdout_bytes(data: bytes) -> None:
    sys.stdout.flush()
    sys.stdout.buffer.write(data)
    sys.stdout.buffer.flush()


def _warn(message: str) -> None:
    click.echo(f"evallint: warning: {message}", err=True)


def _check(paths, select, ignore, extend_select, fmt, fix, unsafe_fixes, diff, exit_zero, config_file,
           jobs, no_cache, statistics, show_findings, baseline, write_baseline, stdin_filename, force_exclude,
           fail_on, color, cache_dir, shard=None, verbose=False) -> None:
    # A check process builds libcst nodes on its analysis thread only.
    parse_alone()
    rules = _rules()
    if shard is not None:
        from .shard import ShardError, parse_shard
        try:
            shard = parse_shard(shard)
        except ShardError as exc:
            _fail(str(exc))
        if fix or diff or stdin_filename or "-" in paths:
            _fail("--shard splits a check of files over CI runners: it does not combine with fixes, "
                  "--diff or stdin")
    paths = tuple(paths)
    if "-" in paths:  # `evallint check -` reads stdin, as ruff does
        if len(paths) > 1:
            _fail("'-' reads the source from stdin: give no other paths with it")
        paths, stdin_filename = (), stdin_filename or "-"
    if stdin_filename and paths:
        _fail("--stdin-filename reads the source from stdin: give no paths with it")
    start = Path(stdin_filename).parent if stdin_filename else Path(paths[0] if paths else ".")
    try:
        settings = load_settings(start if start.exists() else Path("."),
                                 Path(config_file) if config_file else None, rules=rules,
                                 select=_codes(select), ignore=_codes(ignore),
                                 extend_select=_codes(extend_select), unsafe_fixes=unsafe_fixes,
                                 fail_on=fail_on, force_exclude=force_exclude)
    except ConfigError as exc:
        _fail(str(exc))
    base = None
    if baseline:
        from .baseline import BaselineError, load_baseline
        try:
            base = load_baseline(Path(baseline))
        except BaselineError as exc:
            _fail(str(exc))
    fmt = fmt or ("full" if sys.stdout.isatty() else "concise")
    use_color = color if color is not None else (sys.stdout.isatty() and "NO_COLOR" not in os.environ)
    given = list(paths or (".",))
    options = RunOptions(fix=fix, unsafe_fixes=settings.unsafe_fixes, diff=diff, jobs=jobs,
                         use_cache=not no_cache, keep_sources=fmt in ("full", "lsp"),
                         cache_dir=str(cache_folder(given, cache_dir)))
    if stdin_filename:
        data = click.get_binary_stream("stdin").read()
        result = run_bytes(data, stdin_filename, settings, options)
        files = [stdin_filename]
    else:
        missing = [p for p in given if not os.path.lexists(p)]
        if missing:
            _fail(f"no such file or folder: {', '.join(missing)}")
        files = list(discover(given, settings, warn=_warn))
        if not files:
            _warn("no Python files found (no .py or .ipynb file in "
                  f"{', '.join(given)}, or all of them are excluded)")
            sys.exit(EXIT_CLEAN)
        own = None
        if shard is not None:
            from .shard import split
            files, own = split(files, settings, shard)
        with progress_bar(enabled=fmt in ("full", "concise") and not diff and sys.stderr.isatty(),
                          color=color) as on_progress:
            result = run_paths(files, settings, options, progress=on_progress) if files else RunResult([])
        if own is not None:
            # Files of other shards were analysed only for what they tell ours.
            result = RunResult([f for f in result.files if f.path in own])
            files = [f for f in files if f in own]
    for warning in result.warnings:
        _warn(warning)
    if verbose:
        cached = result.from_cache
        checked = len(result.files) - cached
        click.echo(f"evallint: checked {checked} of {len(result.files)} file{'s' if len(result.files) != 1 else ''}, "
                   f"{cached} from the cache", err=True)
    diagnostics = result.diagnostics
    if write_baseline:
        from .baseline import BaselineError, write_baseline as _write
        try:
            count = _write(Path(write_baseline), diagnostics)
        except BaselineError as exc:
            _fail(str(exc))
        click.echo(f"Wrote {count} finding{'s' if count != 1 else ''} to the baseline {write_baseline}.", err=True)
    if base is not None:
        diagnostics, hidden = base.filter(diagnostics)
        if hidden:
            click.echo(f"{hidden} finding{'s' if hidden != 1 else ''} hidden by the baseline.", err=True)
    ctx = ReportContext(rules=rules, fixed=result.fixed, sources=result.sources, files_checked=files,
                        color=use_color, unsafe_fixes=settings.unsafe_fixes,
                        fixed_codes=[c for f in result.files for c in f.fixed_codes],
                        fix_requested=fix, diff=diff)
    fixed_stdin = stdin_filename and fix and not diff
    human = fmt in ("full", "concise")
    if diff:
        diff_text = "".join(f.diff for f in result.files)
        click.echo(diff_text if diff_text.endswith("\n") or not diff_text else diff_text + "\n", nl=False)
        if human:
            shown = diagnostics if not statistics or show_findings else []
            click.echo(render("concise", shown, ctx), err=True, nl=False)
    elif statistics and human and not show_findings:
        # --statistics alone: the table (and the summary line), not the list.
        if fixed_stdin:
            _write_stdout_bytes(result.files[0].new_bytes or b"")
    else:
        if fixed_stdin:
            _write_stdout_bytes(result.files[0].new_bytes or b"")
        # click strips ANSI codes from non-terminals unless told the colours are wanted.
        click.echo(render(fmt, diagnostics, ctx), nl=False, err=bool(fixed_stdin), color=use_color)
    if statistics:
        to_stderr = not human or bool(fixed_stdin) or diff
        click.echo(statistics_table(diagnostics, ctx), err=to_stderr, nl=False)
    for err in result.errors:
        click.echo(f"evallint: error: {err}", err=True)
    if result.errors:
        sys.exit(EXIT_ERROR)
    if write_baseline:
        sys.exit(EXIT_CLEAN)  # today's findings are recorded: they are accepted
    threshold = Severity(settings.fail_on).rank
    failing = [d for d in diagnostics if d.severity.rank >= threshold]
    if diff and any(f.diff for f in result.files) and not exit_zero:
        sys.exit(EXIT_FINDINGS)
    sys.exit(EXIT_FINDINGS if failing and not exit_zero else EXIT_CLEAN)


@main.command("merge")
@click.argument("reports", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--output", "-o", type=click.Path(dir_okay=False), help="Write here instead of stdout.")
def merge_cmd(reports, output) -> None:
    """Merge the JSON or SARIF reports of `check --shard K/N` runs into one."""
    from .merge import MergeError, merge_reports
    try:
        _, text = merge_reports([Path(r).read_text(encoding="utf-8") for r in reports])
    except (MergeError, OSError) as exc:
        _fail(str(exc))
    if output:
        Path(output).write_text(text, encoding="utf-8")
    else:
        click.echo(text, nl=False)


@main.command("rules")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table")
def rules_cmd(fmt: str) -> None:
    """List every rule: code, name, severity, fix, summary."""
    rules = _rules()
    if fmt == "json":
        import json
        click.echo(json.dumps([{"code": r.code, "name": r.name, "severity": r.severity.value,
                                "fix": r.fixable.value if r.fixable else None, "replay": bool(r.replayable),
                                "summary": r.summary} for r in rules.everything()], indent=2, ensure_ascii=False))
        return
    from rich.console import Console  # rich is imported only by the commands that print with it
    from rich.table import Table

    table = Table(show_lines=False, box=None, pad_edge=False)
    for col in ("Code", "Name", "Severity", "Fix", "Replay", "Summary"):
        table.add_column(col, overflow="fold")
    for r in rules.everything():
        table.add_row(r.code, r.name, r.severity.value, r.fixable.value if r.fixable else "-",
                      "yes" if r.replayable else "-", r.summary)
    Console(width=160, soft_wrap=False).print(table)


@main.command()
@click.argument("code")
def explain(code: str) -> None:
    """Print a rule's documentation (by code or name)."""
    rules = _rules()
    rule = rules.get(code)
    if rule is None:
        from .catalogue import catalogued
        planned = catalogued(code)
        if planned is not None:
            click.echo(f"{planned[0]} {planned[1]} is in evallint's rule catalogue but not built yet: it is "
                       "planned, and its code is reserved (a `# noqa` naming it is not an error).")
            return
        _fail(f"unknown rule '{code}' (run `evallint rules` for the list)")
    fix = rule.fixable.value if rule.fixable else "none"
    text = f"# {rule.code} {rule.name}\n\n*{rule.summary}*\n\nSeverity: {rule.severity.value} · Fix: {fix}\n\n" \
           f"{rule.documentation()}\n"
    if sys.stdout.isatty():
        from rich.console import Console
        from rich.markdown import Markdown

        Console().print(Markdown(text))
    else:
        click.echo(text, nl=False)


@main.command()
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@click.option("--select", multiple=True, help="Only replay findings of these rules.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto")
@click.option("--seed", type=int, default=0, help="Seed of the synthetic data.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
@click.option("--config", "config_file", type=click.Path(dir_okay=False))
def replay(path, select, device, seed, fmt, config_file) -> None:
    """Run the flagged evaluation code on synthetic tensors, as written and fixed."""
    from .runtime._torch import INSTALL_HINT, torch_available
    if not torch_available():
        _fail(f"replay runs code with PyTorch, which is not installed; {INSTALL_HINT}")
    from .replay import cli_replay
    rules = _rules()
    try:
        # The selection is read as `check` reads it: unknown codes are errors (exit 2).
        settings = load_settings(Path(path), Path(config_file) if config_file else None, rules=rules,
                                 select=_codes(select))
    except ConfigError as exc:
        _fail(str(exc))
    sys.exit(cli_replay(path, None, device, seed, fmt, settings, rules))


@main.command()
def lsp() -> None:
    """Run the language server on stdin/stdout."""
    from .lsp import missing_dependencies, serve
    missing = missing_dependencies()
    if missing:
        _fail(f"the language server needs {' and '.join(missing)}, which "
              f"{'is' if len(missing) == 1 else 'are'} not installed: pip install 'evallint[lsp]'")
    serve()
