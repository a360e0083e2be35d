"""``python -m asr_remediate`` — the same engine as the Function App, for operators' terminals and pipelines.

Exit codes: 0 every VM compliant or skipped, 2 drift found, 3 no drift but some VMs unknown, 1 error (one line on
stderr, never a traceback for a user mistake — a filter that matches nothing is one too).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import timedelta
from typing import NoReturn

from .audit import RECONCILE_AFTER, AuditError, cli_actor, make_sink
from .config import (
    PROFILES,
    RULE_STYLES,
    SOURCE_SCOPES,
    Settings,
    SettingsError,
    check_scope_allowlist,
    is_subscription_id,
    load_settings,
)
from .drift import DRIFT, UNKNOWN, evaluate_item
from .engine import PreflightError, check_preflight, check_region, preflight_item, scan
from .errors import AZURE_FAILURES, one_line
from .estate import EstateError, build_estate, load_estate_file, with_reads
from .events import EventError
from .model import Estate
from .planner import Plan, make_plan
from .report import RENDERERS
from .runtime import Runtime, RuntimeConfigError, Scope, restrict
from .service import APPLIED, DEFERRED, FAILED, SKIPPED, UNCHANGED, ChangeOutcome
from .servicetags import ServiceTagsError, load_service_tags_file

EXIT_OK, EXIT_ERROR, EXIT_DRIFT, EXIT_UNKNOWN = 0, 1, 2, 3
ERROR_LIMIT = 1000  # characters of an error line: a message never echoes a huge argument or input back


class UsageError(Exception):
    """A command-line mistake: reported in one line, exit code 1."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message}")


def _add_engine_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--format", choices=sorted(RENDERERS), default="table", help="output format (default table)")
    parser.add_argument("--profile", choices=PROFILES, help="requirement profile (default: ASR_PROFILE)")
    parser.add_argument("--rule-style", choices=RULE_STYLES, help="fix with service tags or explicit prefixes")
    parser.add_argument("--source-scope", choices=SOURCE_SCOPES,
                        help="a planned rule's source: the senders' subnets (default), their NIC IPs (vm), or the "
                             "VirtualNetwork tag (default: ASR_SOURCE_SCOPE)")
    parser.add_argument("--include-keyvault", action="store_true", default=None,
                        help="also require AzureKeyVault.<source> for ADE-encrypted VMs")
    parser.add_argument("--include-guest-management", action="store_true", default=None,
                        help="also require GuestAndHybridManagement (mobility agent auto-update)")
    parser.add_argument("--no-route-fixes", action="store_true", help="never plan routes")


def _add_scope_options(parser: argparse.ArgumentParser, *, required: bool) -> None:
    parser.add_argument("--subscription", nargs="+", metavar="ID", required=required,
                        help="subscriptions to read live through Resource Graph (default: ASR_SUBSCRIPTIONS)")
    parser.add_argument("--resource-group", nargs="+", default=[], metavar="NAME", help="only VMs in these groups")
    parser.add_argument("--vm", nargs="+", default=[], metavar="ID_OR_NAME", help="only these VMs")


def _add_write_scope_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--scope-allowlist", nargs="+", metavar="ID_PREFIX",
                        help="resource id prefixes writes may touch (default: ASR_SCOPE_ALLOWLIST; empty: none)")


def _minutes(text: str) -> timedelta:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of minutes") from None
    if not 0 <= value <= 60 * 24 * 366:
        raise argparse.ArgumentTypeError("minutes must be between 0 and a year")
    return timedelta(minutes=value)


def _add_older_than_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--older-than", type=_minutes, default=RECONCILE_AFTER, metavar="MINUTES",
                        help="reconcile only intents at least this old (default "
                             f"{int(RECONCILE_AFTER.total_seconds() // 60)}: a younger one may belong to a run that "
                             "is still writing; 0 when you know none is)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="asr-remediate", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    scan_parser = commands.add_parser("scan", help="find network drift for replicated VMs and plan fixes")
    scan_parser.add_argument("--estate", help="JSON list of ARM resources (offline scan)")
    scan_parser.add_argument("--service-tags", help="ServiceTags_Public JSON file (offline, or live fallback)")
    _add_scope_options(scan_parser, required=False)
    _add_engine_options(scan_parser)

    export_parser = commands.add_parser("export", help="write the live estate as JSON usable by scan --estate")
    _add_scope_options(export_parser, required=False)
    export_parser.add_argument("--output", "-o", help="file to write (default: stdout)")

    apply_parser = commands.add_parser("apply", help="scan live and fix (report-only unless --apply or ASR_APPLY)")
    _add_scope_options(apply_parser, required=False)
    apply_parser.add_argument("--apply", action="store_true", help="really write the planned rules and routes")
    apply_parser.add_argument("--apply-firewall", action="store_true",
                              help="with --apply, also write the asr-remediate rule collection group of a Firewall "
                                   "Policy (ASR_APPLY_FIREWALL)")
    _add_write_scope_option(apply_parser)
    apply_parser.add_argument("--service-tags", help="Service Tags file used if the discovery API fails")
    apply_parser.add_argument("--max-changes", type=int, help="override ASR_MAX_CHANGES for this run")
    _add_engine_options(apply_parser)

    audit_parser = commands.add_parser("audit", help="list audit runs, or the records of one run")
    audit_parser.add_argument("--run", metavar="ID", help="show this run's records")
    audit_parser.add_argument("--format", choices=("table", "json"), default="table")
    audit_parser.add_argument("--reconcile", action="store_true",
                              help="read ARM for every intent without a known outcome and record what landed")
    _add_older_than_option(audit_parser)

    rollback_parser = commands.add_parser("rollback", help="remove what a run created, if unchanged since "
                                                           "(report-only unless --apply)")
    rollback_parser.add_argument("--run", metavar="ID", required=True)
    rollback_parser.add_argument("--apply", action="store_true", help="really delete (default: report-only)")
    rollback_parser.add_argument("--apply-firewall", action="store_true",
                                 help="with --apply, also delete the run's asr-remediate rule collection groups "
                                      "(ASR_APPLY_FIREWALL)")
    rollback_parser.add_argument("--max-changes", type=int, help="override ASR_MAX_CHANGES for this run")
    _add_write_scope_option(rollback_parser)
    _add_older_than_option(rollback_parser)

    preflight_parser = commands.add_parser("preflight", help="check a VM before enabling replication")
    preflight_parser.add_argument("--vm", required=True, metavar="ID", help="the VM's resource id")
    preflight_parser.add_argument("--target-region", required=True, metavar="REGION", help="e.g. centralus")
    preflight_parser.add_argument("--recovery-vnet", default="", metavar="ID", help="recovery VNet (optional)")
    preflight_parser.add_argument("--recovery-subnet", default="", metavar="NAME", help="recovery subnet name")
    preflight_parser.add_argument("--estate", help="JSON list of ARM resources (offline)")
    preflight_parser.add_argument("--service-tags", help="ServiceTags_Public JSON file")
    preflight_parser.add_argument("--subscription", nargs="+", metavar="ID", help="read live instead")
    _add_engine_options(preflight_parser)
    return parser


def settings_from_args(args: argparse.Namespace, env: dict[str, str] | None = None) -> Settings:
    settings = load_settings(env)
    overrides: dict[str, object] = {}
    if getattr(args, "profile", None):
        overrides["profile"] = args.profile
    if getattr(args, "rule_style", None):
        overrides["rule_style"] = args.rule_style
    if getattr(args, "source_scope", None):
        overrides["source_scope"] = args.source_scope
    if getattr(args, "include_keyvault", None):
        overrides["include_key_vault"] = True
    if getattr(args, "include_guest_management", None):
        overrides["include_guest_management"] = True
    if getattr(args, "no_route_fixes", False):
        overrides["fix_routes"] = False
    if getattr(args, "apply_firewall", False):
        overrides["apply_firewall"] = True
    if getattr(args, "scope_allowlist", None):
        overrides["scope_allowlist"] = check_scope_allowlist(args.scope_allowlist, "--scope-allowlist")
    if getattr(args, "max_changes", None) is not None:
        if args.max_changes < 0:
            raise UsageError(f"{args.command}: --max-changes must be 0 or more")
        overrides["max_changes"] = args.max_changes
    for sub in getattr(args, "subscription", None) or ():
        if not is_subscription_id(sub):
            raise UsageError(f"{args.command}: --subscription {one_line(sub, 60)!r} is not a subscription id (a GUID)")
    return replace(settings, **overrides)  # type: ignore[arg-type]


def exit_code(plan: Plan) -> int:
    """2 drift, else 3 when some VM could not be evaluated, else 0 (every VM compliant or skipped)."""
    statuses = {r.status for r in plan.reports}
    if DRIFT in statuses:
        return EXIT_DRIFT
    return EXIT_UNKNOWN if UNKNOWN in statuses else EXIT_OK


def _require_matches(plan: Plan, scope: Scope, command: str) -> None:
    """A --vm / --resource-group filter that selects no replicated VM is a mistake, not a clean bill of health."""
    if plan.reports or not (scope.vms or scope.resource_groups):
        return
    wanted = [f"--vm {' '.join(scope.vms)}" if scope.vms else "",
              f"--resource-group {' '.join(scope.resource_groups)}" if scope.resource_groups else ""]
    raise UsageError(f"{command}: no replicated VM matches {one_line(' '.join(w for w in wanted if w), 200)}")


def _scan_offline(args: argparse.Namespace, settings: Settings) -> int:
    if not args.estate or not args.service_tags:
        raise UsageError("scan: give --estate FILE and --service-tags FILE (or --subscription ID… for a live scan)")
    scope = _scope(args, settings, required=False)
    estate = restrict(_load_estate(args.estate), scope)
    tags = load_service_tags_file(args.service_tags)
    plan = scan(estate, tags, settings)
    _require_matches(plan, scope, "scan")
    print(RENDERERS[args.format](plan.reports, plan.changes))
    return exit_code(plan)


def _load_estate(path: str) -> Estate:
    """An estate file; resources in it that cannot be read are noted on stderr (one line): the VMs that use them are
    reported unknown (exit 3 unless there is drift), as a live scan reports them."""
    estate = load_estate_file(path)
    if estate.unreadable:
        first = next(iter(estate.unreadable.values()))
        _stderr_progress(one_line(f"warning: {len(estate.unreadable)} resource(s) in {path} cannot be read; the VMs "
                                  f"that use them are unknown. First: {first.id}: {first.reason}", ERROR_LIMIT))
    return estate


def _scope(args: argparse.Namespace, settings: Settings, *, required: bool = True) -> Scope:
    subscriptions = tuple(args.subscription or settings.subscriptions)
    if required and not subscriptions:
        raise UsageError(f"{args.command}: give --subscription ID… or set ASR_SUBSCRIPTIONS")
    return Scope(subscriptions, tuple(args.resource_group), tuple(args.vm))


def _stderr_progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _runtime(settings: Settings) -> Runtime:
    return Runtime(settings, RUNTIME_CREDENTIAL, progress=_stderr_progress)


# Tests point the live commands at the local ARM emulator by setting this to a fake credential.
RUNTIME_CREDENTIAL: object | None = None


def _scan_live(args: argparse.Namespace, settings: Settings) -> int:
    if args.service_tags:
        settings = replace(settings, service_tags_file=args.service_tags)
    scope = _scope(args, settings)
    result = _runtime(settings).run(scope, trigger="cli", actor=cli_actor(), apply=False)
    _require_matches(result.plan, scope, "scan")
    print(RENDERERS[args.format](result.plan.reports, result.plan.changes))
    return exit_code(result.plan)


def _export(args: argparse.Namespace, settings: Settings) -> int:
    resources = _runtime(settings).collect(_scope(args, settings))
    text = json.dumps(resources, indent=1)
    if args.output:
        try:
            with open(args.output, "w", encoding="utf-8") as handle:
                handle.write(text + "\n")
        except OSError as error:
            raise UsageError(f"cannot write {args.output}: {error.strerror}") from None
        _stderr_progress(f"wrote {len(resources)} resources to {args.output}")
    else:
        print(text)
    return EXIT_OK


def _print_outcomes(outcomes: Iterable[ChangeOutcome]) -> None:
    for outcome in outcomes:
        detail = f" ({outcome.detail})" if outcome.detail else ""
        print(f"{outcome.result:<9} {outcome.change.action} {outcome.change.name} on {outcome.change.resource_id}"
              f"{detail}")


def _apply(args: argparse.Namespace, settings: Settings) -> int:
    if args.service_tags:
        settings = replace(settings, service_tags_file=args.service_tags)
    scope = _scope(args, settings)
    result = _runtime(settings).run(scope, trigger="cli", actor=cli_actor(), apply=args.apply or settings.apply)
    _require_matches(result.plan, scope, "apply")
    print(RENDERERS[args.format](result.plan.reports, result.plan.changes))
    if result.applied is None:
        _stderr_progress(f"no writes: {result.note}" + ("; pass --apply to write" if not args.apply else ""))
        return exit_code(result.plan)
    _print_outcomes(result.applied.outcomes)
    counts = ", ".join(f"{result.applied.count(r)} {r}" for r in (APPLIED, UNCHANGED, SKIPPED, DEFERRED, FAILED))
    print(f"run {result.run_id}: {counts}")
    return EXIT_ERROR if result.applied.count(FAILED) else exit_code(result.plan)


def _audit(args: argparse.Namespace, settings: Settings) -> int:
    if args.reconcile:
        outcomes = _runtime(settings).reconcile("cli", cli_actor(), args.run, older_than=args.older_than)
        _print_outcomes(outcomes)
        print(f"reconciled {len(outcomes)} intent(s) without a known outcome")
        return EXIT_ERROR if any(o.result == FAILED for o in outcomes) else EXIT_OK
    sink = make_sink(settings)
    if not args.run:
        runs = sink.runs()
        print(json.dumps(runs, indent=1) if args.format == "json" else "\n".join(runs) or "(no runs)")
        return EXIT_OK
    records = sink.records(args.run)
    if not records:
        raise UsageError(f"audit: no records for run {args.run}")
    if args.format == "json":
        print(json.dumps([r.to_dict() for r in records], indent=1))
    else:
        for r in records:
            print(f"{r.sequence:>4} {r.phase:<9} {r.result:<10} {r.action:<21} {r.name} on {r.resource_id}"
                  + (f" — {r.error}" if r.error else ""))
    return EXIT_OK


def _rollback(args: argparse.Namespace, settings: Settings) -> int:
    apply = args.apply or settings.apply
    run_id, outcomes = _runtime(settings).rollback(args.run, actor=cli_actor(), apply=apply,
                                                   older_than=args.older_than)
    _print_outcomes(outcomes)
    mode = "" if apply else " (report-only: pass --apply to delete)"
    print(f"rollback of run {args.run} (audited as {run_id}): {len(outcomes)} created item(s) considered{mode}")
    return EXIT_ERROR if any(o.result == FAILED for o in outcomes) else EXIT_OK


def _preflight(args: argparse.Namespace, settings: Settings) -> int:
    try:
        needed = check_preflight(args.vm, args.target_region, args.recovery_vnet, args.recovery_subnet)
    except PreflightError as error:
        raise UsageError(f"preflight: {error}") from None
    if args.estate:
        if not args.service_tags:
            raise UsageError("preflight: --estate needs --service-tags")
        estate = _load_estate(args.estate)
        tags = load_service_tags_file(args.service_tags)
    else:
        if args.service_tags:
            settings = replace(settings, service_tags_file=args.service_tags)
        allowed = {sub.lower() for sub in settings.subscriptions}
        outside = sorted(sub for sub in needed if allowed and sub.lower() not in allowed)
        if outside and not args.subscription:
            raise UsageError(f"preflight: subscription {outside[0]} is outside ASR_SUBSCRIPTIONS (pass --subscription "
                             "to read it anyway)")
        wanted = [*needed, *(args.subscription or settings.subscriptions)]
        scope = Scope(tuple(dict.fromkeys(sub.lower() for sub in wanted)))
        runtime = _runtime(settings)
        raw = runtime.collect(scope, admin_rules=False)
        estate = build_estate(raw)
        tags = runtime.service_tags(scope.subscriptions[0])
    try:
        check_region(tags, args.target_region.lower())
        item = preflight_item(estate, args.vm, args.target_region, args.recovery_vnet, args.recovery_subnet)
    except ValueError as error:
        raise UsageError(f"preflight: {error}") from None
    if not args.estate:
        # The VM is not replicated yet: its VNets' security admin rules are read for it, not the estate's.
        estate = with_reads(estate, runtime.admin_rules(estate, [item]))
    plan = make_plan(estate, [evaluate_item(item, estate, tags, settings)], tags, settings, items=[item])
    print(RENDERERS[args.format](plan.reports, plan.changes))
    return exit_code(plan)


COMMANDS = {"export": _export, "apply": _apply, "audit": _audit, "rollback": _rollback, "preflight": _preflight}


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        settings = settings_from_args(args, dict(os.environ))
        if args.command == "scan":
            live = bool(args.subscription) or (not args.estate and bool(settings.subscriptions))
            return _scan_live(args, settings) if live else _scan_offline(args, settings)
        return COMMANDS[args.command](args, settings)
    except (UsageError, SettingsError, EstateError, ServiceTagsError, RuntimeConfigError, AuditError,
            EventError) as error:
        print(f"error: {one_line(error, ERROR_LIMIT)}", file=sys.stderr)
        return EXIT_ERROR
    except AZURE_FAILURES as error:
        print(f"error: {one_line(error, 400)}", file=sys.stderr)
        return EXIT_ERROR
    except BrokenPipeError:
        return EXIT_ERROR
