"""``python -m asr_remediate`` — the same engine as the Function App, for operators' terminals and pipelines.

Exit codes: 0 no drift, 2 drift found, 1 error (one line on stderr, never a traceback for a user mistake).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from dataclasses import replace
from typing import NoReturn

from .config import PROFILES, RULE_STYLES, Settings, SettingsError, load_settings
from .drift import DRIFT
from .engine import scan
from .estate import EstateError, load_estate_file
from .planner import Plan
from .report import RENDERERS
from .servicetags import ServiceTagsError, load_service_tags_file

EXIT_OK, EXIT_ERROR, EXIT_DRIFT = 0, 1, 2


class UsageError(Exception):
    """A command-line mistake: reported in one line, exit code 1."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message}")


def _add_engine_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--format", choices=sorted(RENDERERS), default="table", help="output format (default table)")
    parser.add_argument("--profile", choices=PROFILES, help="requirement profile (default: ASR_PROFILE)")
    parser.add_argument("--rule-style", choices=RULE_STYLES, help="fix with service tags or explicit prefixes")
    parser.add_argument("--include-keyvault", action="store_true", default=None,
                        help="also require AzureKeyVault.<source> for ADE-encrypted VMs")
    parser.add_argument("--include-guest-management", action="store_true", default=None,
                        help="also require GuestAndHybridManagement (mobility agent auto-update)")
    parser.add_argument("--no-route-fixes", action="store_true", help="never plan routes")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="asr-remediate", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    scan_parser = commands.add_parser("scan", help="find network drift for replicated VMs and plan fixes")
    scan_parser.add_argument("--estate", help="JSON list of ARM resources (offline scan)")
    scan_parser.add_argument("--service-tags", help="ServiceTags_Public JSON file")
    scan_parser.add_argument("--subscription", nargs="+", metavar="ID", help="scan live subscriptions instead")
    _add_engine_options(scan_parser)
    return parser


def settings_from_args(args: argparse.Namespace, env: dict[str, str] | None = None) -> Settings:
    settings = load_settings(env)
    overrides: dict[str, object] = {}
    if getattr(args, "profile", None):
        overrides["profile"] = args.profile
    if getattr(args, "rule_style", None):
        overrides["rule_style"] = args.rule_style
    if getattr(args, "include_keyvault", None):
        overrides["include_key_vault"] = True
    if getattr(args, "include_guest_management", None):
        overrides["include_guest_management"] = True
    if getattr(args, "no_route_fixes", False):
        overrides["fix_routes"] = False
    return replace(settings, **overrides)  # type: ignore[arg-type]


def exit_code(plan: Plan) -> int:
    return EXIT_DRIFT if any(r.status == DRIFT for r in plan.reports) else EXIT_OK


def _scan_offline(args: argparse.Namespace, settings: Settings) -> int:
    if not args.estate or not args.service_tags:
        raise UsageError("scan: give --estate FILE and --service-tags FILE (or --subscription ID… for a live scan)")
    estate = load_estate_file(args.estate)
    tags = load_service_tags_file(args.service_tags)
    plan = scan(estate, tags, settings)
    print(RENDERERS[args.format](plan.reports, plan.changes))
    return exit_code(plan)


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        settings = settings_from_args(args, dict(os.environ))
        if args.command == "scan":
            return _scan_offline(args, settings)
        raise UsageError(f"unknown command {args.command}")
    except (UsageError, SettingsError, EstateError, ServiceTagsError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_ERROR
    except BrokenPipeError:
        return EXIT_ERROR
