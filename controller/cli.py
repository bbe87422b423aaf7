"""The `rolekeeper` command: every subcommand's arguments, and the only module that prints.

Subcommands import what they need when they run (Kopf, boto3, the core), so `rolekeeper
version` and `rolekeeper crds` start in a fraction of the time `run` or `plan` take.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import logging
import os
import secrets
import sys
from collections.abc import Callable, Iterator, Sequence
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from controller import __version__
from controller.settings import DEFAULTS, READ_ONLY_AWS, AWSSettings, Limits

if TYPE_CHECKING:
    from controller.aws.clients import Clients
    from controller.kinds.snapshot import AccountSnapshot
    from controller.review.compute import Review, World
    from controller.review.manifests import Input

    SubParsers = argparse._SubParsersAction[argparse.ArgumentParser]
Command = Callable[[argparse.Namespace], int]
# Per-entity reads cost ~5 calls per object; one account snapshot costs a few pages for most
# accounts. Past this many objects the snapshot is the cheaper (and faster) read.
SNAPSHOT_THRESHOLD = 20


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="rolekeeper", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    _add_run(sub)
    sub.add_parser("crds", help="print the CustomResourceDefinitions as YAML")
    sub.add_parser("version", help="print the version")
    argv = list(sys.argv[1:] if argv is None else argv)
    for name, (add, _) in COMMANDS.items():
        if name == "lint":
            # lint's options come from controller.review.lint (findings, catalogue, YAML
            # positions): imported only when the command line may be a lint.
            _add_lint(sub, with_arguments="lint" in argv)
        else:
            add(sub)
    args = parser.parse_args(argv)
    if args.command == "run":
        return run(args)
    if args.command == "crds":
        sys.stdout.write(crds_yaml())
        return 0
    if args.command == "version":
        print(f"rolekeeper {__version__}")
        return 0
    return COMMANDS[args.command][1](args)


def _add_run(sub: SubParsers) -> None:
    run_parser = sub.add_parser("run", help="run the operator")
    scope = run_parser.add_mutually_exclusive_group()
    scope.add_argument(
        "-n",
        "--namespace",
        action="append",
        default=[],
        help="watch this namespace (repeatable; globs allowed)",
    )
    scope.add_argument(
        "-A",
        "--all-namespaces",
        action="store_true",
        help="watch every namespace (the default when no --namespace is given)",
    )
    run_parser.add_argument(
        "--drift-interval",
        type=float,
        default=DEFAULTS.drift.interval,
        metavar="SECONDS",
        help=f"how often each object is checked against AWS (default {DEFAULTS.drift.interval:g})",
    )
    run_parser.add_argument(
        "--workers",
        type=int,
        default=DEFAULTS.kopf.workers,
        help=f"concurrent AWS reconciles (threads; default {DEFAULTS.kopf.workers})",
    )
    run_parser.add_argument(
        "--principal-window",
        type=float,
        default=DEFAULTS.aws.principal_window,
        metavar="SECONDS",
        help="retry 'Invalid principal' this long before reporting it "
        f"(default {DEFAULTS.aws.principal_window:g})",
    )
    _add_budget_arguments(run_parser)
    run_parser.add_argument(
        "--standalone",
        action="store_true",
        help="no peering: assume this is the only operator instance",
    )
    run_parser.add_argument(
        "--peering",
        default=None,
        metavar="NAME",
        help="peering object name for HA (needs the KopfPeering CRDs)",
    )
    run_parser.add_argument(
        "--priority",
        type=_priority,
        default=0,
        help="peering priority; the highest live instance works, equal ones all pause. "
        "'random' draws one per process, so identical replicas get distinct priorities",
    )
    run_parser.add_argument(
        "--peering-lifetime",
        type=int,
        default=DEFAULTS.kopf.peering_lifetime,
        metavar="SECONDS",
        help="how long peers wait for a silent (killed) instance before taking over",
    )
    run_parser.add_argument(
        "--liveness",
        default=None,
        metavar="URL",
        help="serve a health probe, e.g. http://0.0.0.0:8080/healthz",
    )
    run_parser.add_argument(
        "--metrics-port", type=int, default=None, help="serve Prometheus /metrics on this port"
    )
    run_parser.add_argument(
        "--metrics-address",
        default=DEFAULTS.endpoints.metrics_address,
        metavar="ADDRESS",
        help="address /metrics binds to "
        f"(default {DEFAULTS.endpoints.metrics_address}; 127.0.0.1 keeps it off the network)",
    )
    run_parser.add_argument(
        "--cluster-id",
        default=DEFAULTS.cluster_id,
        metavar="ID",
        help="this cluster's identity in ownership tags (default: the kube-system namespace's "
        "uid); set it to keep ownership across a restore into a new cluster",
    )
    run_parser.add_argument(
        "--managed-policy-quota",
        type=int,
        default=DEFAULTS.limits.managed_policy_count,
        metavar="N",
        help="managed policies per role or user the account allows "
        f"(default {DEFAULTS.limits.managed_policy_count}, AWS's default; at most 20)",
    )
    _add_ignore_tags(run_parser)
    _add_oidc_issuer(run_parser, "(default: read from the API server at start)")
    webhook = run_parser.add_argument_group(
        "admission webhook", "validate objects at kubectl apply (docs/guardrails.md)"
    )
    webhook.add_argument("--webhook-port", type=int, default=None, help="serve it on this port")
    webhook.add_argument(
        "--webhook-address", default="0.0.0.0", metavar="ADDRESS", help="bind address"
    )
    webhook.add_argument(
        "--webhook-host", default=None, metavar="HOST", help="host name the API server calls"
    )
    webhook.add_argument("--webhook-cert", metavar="FILE", help="TLS certificate (PEM)")
    webhook.add_argument("--webhook-key", metavar="FILE", help="TLS private key (PEM)")
    webhook.add_argument(
        "--webhook-ca", metavar="FILE", help="CA bundle for the API server (default: the cert)"
    )
    webhook.add_argument(
        "--webhook-configuration",
        metavar="NAME",
        help="let the operator keep this ValidatingWebhookConfiguration up to date "
        "(else install manifests/webhook.yaml with your CA)",
    )
    webhook.add_argument(
        "--webhook-fail-closed",
        action="store_true",
        help="failurePolicy: Fail (default Ignore: the operator re-checks every object anyway)",
    )
    events = run_parser.add_argument_group(
        "event-driven drift",
        "check an entity as soon as CloudTrail reports a change to it (docs/drift.md)",
    )
    events.add_argument(
        "--events-queue-url",
        type=_queue_url,
        default=DEFAULTS.events.queue_url,
        metavar="URL",
        help="the SQS queue an EventBridge rule fills with IAM's CloudTrail events "
        "(default: none, the drift sweep alone)",
    )
    events.add_argument(
        "--events-dead-letter-queue-url",
        type=_queue_url,
        default=DEFAULTS.events.dead_letter_url,
        metavar="URL",
        help="forward unreadable messages there, then delete them (default: leave them to the "
        "queue's redrive policy)",
    )
    events.add_argument(
        "--events-region",
        default=DEFAULTS.events.region,
        metavar="REGION",
        help="the queue's region (default: from the queue URL, else us-east-1)",
    )
    run_parser.add_argument("--log-format", choices=("text", "json"), default="text")
    run_parser.add_argument("-v", "--verbose", action="store_true")
    run_parser.add_argument("--debug", action="store_true")


def _add_budget_arguments(
    parser: argparse.ArgumentParser, aws: AWSSettings = DEFAULTS.aws
) -> None:
    """The account-wide IAM call budget (AWSSettings.max_calls_per_second, docs/reliability.md);
    `aws` gives the defaults (the operator's, or READ_ONLY_AWS for plan, snapshot, import)."""
    parser.add_argument(
        "--aws-max-calls-per-second",
        type=_calls_per_second,
        default=aws.max_calls_per_second,
        metavar="N",
        help="IAM calls per second in each AWS account, retries included, shared by all threads "
        "(IAM's limits are per account and shared with everyone else who calls it; "
        f"default {aws.max_calls_per_second:g}; 0 = unlimited)",
    )
    parser.add_argument(
        "--aws-call-burst",
        type=_call_burst,
        default=aws.call_burst,
        metavar="N",
        help=f"IAM calls allowed at once before that rate applies (default {aws.call_burst})",
    )


def _aws_settings(args: argparse.Namespace) -> AWSSettings:
    """A read-only command's AWS settings, with its budget flags."""
    from dataclasses import replace  # noqa: PLC0415

    return replace(
        READ_ONLY_AWS,
        max_calls_per_second=args.aws_max_calls_per_second,
        call_burst=args.aws_call_burst,
    )


def _calls_per_second(value: str) -> float:
    try:
        rate = float(value)
    except ValueError:
        rate = -1.0
    if not (rate == 0 or 0.01 <= rate < float("inf")):
        raise argparse.ArgumentTypeError(
            f"must be 0 (unlimited) or a number of calls per second from 0.01, got {value!r}"
        )
    return rate


def _call_burst(value: str) -> int:
    try:
        burst = int(value)
    except ValueError:
        burst = 0
    if burst < 1:
        raise argparse.ArgumentTypeError(
            f"must be a whole number of calls, 1 or more, got {value!r}"
        )
    return burst


def _queue_url(value: str) -> str:
    # An SQS queue URL: https://sqs.<region>.amazonaws.com/<account>/<name> (http for a local
    # endpoint); anything else fails at startup with this message, not at the first poll.
    from controller.core.cloudtrail import queue_parts  # noqa: PLC0415

    if value and queue_parts(value) is None:
        raise argparse.ArgumentTypeError(
            f"expected an SQS queue URL (https://sqs.<region>.amazonaws.com/<account>/<queue>), "
            f"got {value!r}"
        )
    return value  # "" (the default): no queue


def run(args: argparse.Namespace) -> int:
    if args.events_dead_letter_queue_url and not args.events_queue_url:
        print("error: --events-dead-letter-queue-url needs --events-queue-url", file=sys.stderr)
        return 2
    # Imported here so `rolekeeper crds`/`plan` start fast and never load the operator.
    from controller.operator import memory  # noqa: PLC0415

    memory.limit_malloc_arenas()  # before any thread starts
    import kopf  # noqa: PLC0415

    from controller import settings as rk_settings  # noqa: PLC0415
    from controller.operator import handlers, metrics, webhook  # noqa: PLC0415

    kopf.configure(
        verbose=args.verbose,
        debug=args.debug,
        log_format=kopf.LogFormat.JSON if args.log_format == "json" else kopf.LogFormat.FULL,
    )
    # botocore logs request bodies (policy documents, keys) at DEBUG: keep it quiet regardless.
    for noisy in ("botocore", "boto3", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    if args.metrics_port:
        metrics.serve(args.metrics_port, args.metrics_address)
    config = rk_settings.Settings(
        drift=rk_settings.DriftSettings(interval=args.drift_interval),
        events=rk_settings.EventSettings(
            queue_url=args.events_queue_url,
            dead_letter_url=args.events_dead_letter_queue_url,
            region=args.events_region,
        ),
        aws=rk_settings.AWSSettings(
            principal_window=args.principal_window,
            max_calls_per_second=args.aws_max_calls_per_second,
            call_burst=args.aws_call_burst,
        ),
        kopf=rk_settings.KopfSettings(workers=args.workers, peering_lifetime=args.peering_lifetime),
        limits=rk_settings.Limits(
            managed_policy_count=args.managed_policy_quota,
            ignore_tags=tuple(dict.fromkeys(args.ignore_tags)),
        ),
        pod_identity=rk_settings.PodIdentitySettings(oidc_issuer=_issuer_for_run(args)),
        cluster_id=args.cluster_id,
    )
    handlers.register()
    settings = kopf.OperatorSettings()
    settings.peering.lifetime = config.kopf.peering_lifetime
    if args.webhook_port:
        webhook.register(fail_closed=args.webhook_fail_closed)
        ca = Path(args.webhook_ca or args.webhook_cert).read_bytes() if args.webhook_cert else None
        settings.admission.server = kopf.WebhookServer(
            addr=args.webhook_address,
            port=args.webhook_port,
            host=args.webhook_host,
            certfile=args.webhook_cert,
            pkeyfile=args.webhook_key,
            cadata=ca,
        )
        settings.admission.managed = args.webhook_configuration
    if args.peering:
        logging.getLogger(__name__).info("peering %r with priority %d", args.peering, args.priority)
    kopf.run(
        settings=settings,
        clusterwide=not args.namespace,
        namespaces=args.namespace,
        standalone=args.standalone,
        peering_name=args.peering,
        priority=args.priority,
        liveness_endpoint=args.liveness,
        memo=kopf.Memo(settings=config),
    )
    return 0


def _priority(value: str) -> int:
    # Kopf pauses every peer when two share the highest priority, so replicas of one
    # Deployment (same arguments) need a per-process draw; 2**31 makes a tie negligible.
    if value == "random":
        return secrets.randbelow(2**31 - 1) + 1
    return int(value)


def crds_yaml() -> str:
    """The CRDs shipped with this version (from the package, or the checkout's crds/)."""
    packaged = resources.files("controller").joinpath("crds")
    if packaged.is_dir():
        files = sorted(
            (p for p in packaged.iterdir() if p.name.endswith(".yaml")), key=lambda p: p.name
        )
        texts = [p.read_text() for p in files]
    else:
        checkout = Path(__file__).resolve().parent.parent / "crds"
        texts = [p.read_text() for p in sorted(checkout.glob("*.yaml"))]
    return "---\n".join(t if t.endswith("\n") else t + "\n" for t in texts)


def _add_plan(sub: SubParsers) -> None:
    parser = sub.add_parser(
        "plan",
        help="show what applying IAMRole/IAMUser manifests will do to AWS (read-only)",
        description=(
            "Read IAMRole/IAMUser manifests and list, per object, the exact IAM calls the "
            "operator will make once they are applied. Only reads AWS (Get*/List*)."
        ),
    )
    parser.add_argument(
        "paths",
        nargs="*",
        metavar="PATH",
        help="a manifest file, a directory (recursive *.yaml, *.yml, *.json) or - for stdin",
    )
    parser.add_argument(
        "-f", "--filename", action="append", default=[], metavar="PATH", help="same as PATH"
    )
    parser.add_argument(
        "-n",
        "--namespace",
        default="default",
        help="namespace of objects that name none, as kubectl apply -n (default: default)",
    )
    parser.add_argument("--format", choices=("text", "markdown", "json"), default="text")
    parser.add_argument(
        "--snapshot", metavar="FILE", help="plan against a `rolekeeper snapshot` file: no AWS call"
    )
    parser.add_argument(
        "--prune-scope",
        action="append",
        default=[],
        metavar="NAMESPACE",
        help="the input holds every object of this namespace: list entities owned by objects "
        "of it that are no longer declared as deletes (repeatable)",
    )
    parser.add_argument(
        "--detailed-exitcode",
        action="store_true",
        help="exit 0 when nothing changes, 2 when something does, 1 on error",
    )
    parser.add_argument(
        "--fail-on",
        choices=("critical", "high", "medium", "low", "info"),  # core.findings.Severity
        default=None,
        metavar="SEVERITY",
        help="exit 1 when an unsuppressed security finding is this severe or worse "
        "(critical, high, medium, low, info)",
    )
    parser.add_argument(
        "--show-foreign",
        action="store_true",
        help="also show the owner, settings and documents of existing entities that the "
        "input's objects neither own nor may adopt (trusted contexts only: by default a plan "
        "says only that such an entity exists)",
    )
    _add_ignore_tags(parser)
    _add_oidc_issuer(parser, "(needed by IAMRoles listing ServiceAccounts for IRSA)")
    _add_guardrail_arguments(parser)
    _add_budget_arguments(parser, READ_ONLY_AWS)


def _add_ignore_tags(parser: argparse.ArgumentParser) -> None:
    """--ignore-tags, the same for `run`, `plan` and `import` (default from the settings), so a
    plan leaves alone exactly the tags the operator leaves alone."""
    parser.add_argument(
        "--ignore-tags",
        type=_ignore_tags,
        action="extend",
        default=list(DEFAULTS.limits.ignore_tags),
        metavar="KEYS",
        help="tag keys others own on every entity, comma-separated; a key ending in * is a "
        "prefix, e.g. 'org:*,CostCenter' (repeatable; added to each object's spec.ignoreTags; "
        "never set, removed or reported as drift: docs/tags.md)",
    )


def _ignore_tags(value: str) -> list[str]:
    from controller.core.foreigntags import parse_patterns  # noqa: PLC0415

    try:
        return list(parse_patterns([value]))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def _limits(args: argparse.Namespace) -> Limits:
    """The parser's limits for a plan: the settings' defaults with --ignore-tags."""
    from dataclasses import replace  # noqa: PLC0415

    return replace(DEFAULTS.limits, ignore_tags=tuple(dict.fromkeys(args.ignore_tags)))


def _add_guardrail_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--guardrails",
        action="append",
        default=[],
        metavar="PATH",
        help="IAMGuardrail (and Namespace) manifests in force in the cluster: a file, a "
        "directory or - (repeatable); the input's own IAMGuardrail objects count too",
    )
    parser.add_argument(
        "--cluster-id",
        default="",
        metavar="ID",
        help="identity of the cluster that applies the objects (its operator's --cluster-id)",
    )
    _add_accounts_argument(parser)


def _add_oidc_issuer(parser: argparse.ArgumentParser, default: str) -> None:
    parser.add_argument(
        "--oidc-issuer",
        type=_oidc_issuer,
        default=DEFAULTS.pod_identity.oidc_issuer,
        metavar="URL",
        help="the cluster's service-account issuer, which the IRSA trust of spec.serviceAccounts "
        "names (EKS: the cluster's OpenID Connect provider URL; any cluster: "
        f"kubectl get --raw /.well-known/openid-configuration) {default}",
    )


def _oidc_issuer(value: str) -> str:
    from controller.core.podidentity import IssuerError, normalize_issuer  # noqa: PLC0415

    try:
        return normalize_issuer(value)
    except IssuerError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _issuer_for_run(args: argparse.Namespace) -> str | None:
    """--oidc-issuer, else the API server's (once, before Kopf starts; None when unknown)."""
    from controller.operator import serviceaccounts  # noqa: PLC0415

    log = logging.getLogger(__name__)
    if args.oidc_issuer:
        log.info("OIDC issuer for IRSA trust: %s (--oidc-issuer)", args.oidc_issuer)
        return str(args.oidc_issuer)
    issuer, why = serviceaccounts.discover_issuer()
    if issuer is None:
        log.warning("OIDC issuer unknown (%s): IAMRoles listing ServiceAccounts for IRSA report "
                    "InvalidSpec; set --oidc-issuer", why)  # fmt: skip
    else:
        log.info("OIDC issuer for IRSA trust: %s (from the API server)", issuer)
    return issuer


def _add_accounts_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--accounts",
        action="append",
        default=[],
        metavar="PATH",
        help="IAMAccount (and Namespace) manifests in force in the cluster: objects of the "
        "namespaces an IAMAccount serves are read in its account, through its role "
        "(docs/accounts.md); the input's own IAMAccount objects count too (repeatable)",
    )


def _add_snapshot(sub: SubParsers) -> None:
    parser = sub.add_parser(
        "snapshot",
        help="save the account's IAM roles and users for `plan --snapshot` (read-only)",
    )
    parser.add_argument("-o", "--output", metavar="FILE", help="write here instead of stdout")
    _add_budget_arguments(parser, READ_ONLY_AWS)


def _add_import(sub: SubParsers) -> None:
    parser = sub.add_parser(
        "import",
        help="write manifests for existing IAM entities (read-only)",
        description=(
            "Write a manifest for each existing IAM entity selected, as a person would have "
            "written it, with managementPolicy: Observe and adopt: true: planning them "
            "against the same account changes nothing (docs/onboarding.md). Entities match "
            "any --name/--name-pattern (all when neither is given), and every --path-prefix, "
            "--tag and --kind given. Only reads AWS."
        ),
    )
    parser.add_argument(
        "--snapshot", metavar="FILE", help="read a `rolekeeper snapshot` file instead of AWS"
    )
    parser.add_argument("-n", "--namespace", required=True, help="the namespace the objects go in")
    parser.add_argument(
        "--name", action="append", default=[], metavar="NAME", help="an AWS name (repeatable)"
    )
    parser.add_argument(
        "--name-pattern",
        action="append",
        default=[],
        metavar="GLOB",
        help="AWS names matching this glob, e.g. 'team-a-*' (repeatable)",
    )
    parser.add_argument(
        "--path-prefix", default="", metavar="PATH", help="only entities whose path starts so"
    )
    parser.add_argument(
        "--tag",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="only entities with this tag (KEY alone: any value; repeatable, all must match)",
    )
    parser.add_argument(
        "--kind",
        action="append",
        default=[],
        metavar="KIND",
        help="only this kind, e.g. IAMRole (repeatable; default every kind)",
    )
    parser.add_argument("-o", "--output", metavar="FILE", help="write here instead of stdout")
    _add_ignore_tags(parser)
    _add_accounts_argument(parser)
    _add_budget_arguments(parser, READ_ONLY_AWS)


def import_command(args: argparse.Namespace) -> int:
    from controller.aws import clients as aws  # noqa: PLC0415
    from controller.core.foreigntags import ForeignTags  # noqa: PLC0415
    from controller.kinds import snapshot as account  # noqa: PLC0415
    from controller.review import importer  # noqa: PLC0415

    try:
        selector = importer.Selector(
            names=tuple(args.name),
            patterns=tuple(args.name_pattern),
            path_prefix=args.path_prefix,
            tags=tuple(importer.parse_tag(t) for t in args.tag),
            kinds=tuple(args.kind),
        )
        with _aws_errors():
            if args.snapshot:
                snapshot, _, taken, _ = _load_snapshot(args.snapshot)
                print(f"note: reading the snapshot {args.snapshot} ({taken})", file=sys.stderr)
            else:
                clients = _account_clients(args.accounts, args.namespace, _aws_settings(args))
                aws.read_only(clients.iam)
                snapshot = account.take(clients.iam, names=None)
        others = ForeignTags(tuple(dict.fromkeys(args.ignore_tags)))
        result = importer.run(snapshot, selector, args.namespace, others)
    except (ValueError, _AWSUnavailable) as exc:
        print(f"rolekeeper import: {exc}", file=sys.stderr)
        return 1
    for note in result.notes:
        print(f"note: {note}", file=sys.stderr)
    text = result.yaml()
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
        print(f"wrote {len(result.objects)} object(s) to {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


def plan_command(args: argparse.Namespace) -> int:
    from controller.review import compute, manifests, render  # noqa: PLC0415

    if not args.paths and not args.filename:
        print("rolekeeper plan: give a PATH (file, directory or - for stdin)", file=sys.stderr)
        return 1
    found = manifests.load([*args.paths, *args.filename])
    _add_guardrails(found, args.guardrails)
    _add_guardrails(found, args.accounts)
    _note_ignored(found)
    try:
        with _aws_errors():
            if found.accounts:
                review = _plan_accounts(args, found)
            else:
                world = _world(args, found)
                world.show_foreign = args.show_foreign
                world.oidc_issuer = args.oidc_issuer
                review = compute.compute(
                    found,
                    world,
                    args.prune_scope,
                    args.namespace,
                    cluster_id=args.cluster_id,
                    limits=_limits(args),
                )
    except _AWSUnavailable as exc:
        print(f"rolekeeper plan: {exc}", file=sys.stderr)
        return 1
    for problem in review.problems:
        print(f"error: {problem}", file=sys.stderr)
    for change in review.changes:
        if change.action == "invalid":
            for line in change.message.splitlines():
                print(f"error: {change.source}: {line}", file=sys.stderr)
    if args.format == "json":
        output = render.json_text(review)
    elif args.format == "markdown":
        output = render.markdown(review)
    else:
        output = render.text(review, color=_color(sys.stdout))
    sys.stdout.write(output)
    if args.fail_on:
        failing = review.failing_findings(args.fail_on)
        if failing:
            print(
                f"error: {len(failing)} unsuppressed security finding(s) at or above "
                f"--fail-on {args.fail_on}",
                file=sys.stderr,
            )
    return review.exit_code(args.detailed_exitcode, args.fail_on)


def _add_lint(sub: SubParsers, with_arguments: bool = True) -> None:
    parser = sub.add_parser(
        "lint",
        help="security findings on IAMRole/IAMUser manifests, offline (text, json or sarif)",
        description=(
            "Judge IAMRole/IAMUser manifests against AWS's IAM guidance without calling AWS "
            "(docs/findings.md lists every finding). Exit 0 clean, 1 a finding at or above "
            "--fail-on, 2 input that could not be linted."
        ),
    )
    if with_arguments:
        from controller.review.lint import add_lint_arguments  # noqa: PLC0415

        add_lint_arguments(parser)


def lint_command(args: argparse.Namespace) -> int:
    from controller.review.lint import lint  # noqa: PLC0415

    code, report = lint(args.paths, args.fmt, args.fail_on, account_id=args.account_id)
    sys.stdout.write(report)
    return code


def snapshot_command(args: argparse.Namespace) -> int:
    from controller.aws import clients as aws  # noqa: PLC0415
    from controller.kinds import snapshot as account  # noqa: PLC0415

    try:
        with _aws_errors():
            clients = aws.connect(settings=_aws_settings(args))
            aws.read_only(clients.iam)
            snapshot = account.take(clients.iam, names=None)  # any policy may be planned later
    except _AWSUnavailable as exc:
        print(f"rolekeeper snapshot: {exc}", file=sys.stderr)
        return 1
    taken = datetime.datetime.now(datetime.UTC).replace(microsecond=0).isoformat()
    data = account.file_json(snapshot, clients.account_id, clients.partition, taken)
    text = json.dumps(data, indent=2, sort_keys=True)
    if args.output:
        Path(args.output).write_text(text + "\n", encoding="utf-8")
    else:
        sys.stdout.write(text + "\n")
    return 0


class _AWSUnavailable(Exception):
    """AWS (or the snapshot file) could not be read: the plan cannot be made."""


@contextlib.contextmanager
def _aws_errors() -> Iterator[None]:
    """Turn boto3/botocore failures into one readable line for the command's user."""
    from controller.core.errors import AWSError  # noqa: PLC0415

    try:
        yield
    except AWSError as exc:
        denied = exc.code == "AccessDenied"
        hint = " (docs/plan.md lists the read-only permissions plan needs)" if denied else ""
        raise _AWSUnavailable(f"cannot read AWS: {exc}{hint}") from exc


def _world(args: argparse.Namespace, found: Input) -> World:
    from controller.aws import clients as aws  # noqa: PLC0415
    from controller.kinds import snapshot as account  # noqa: PLC0415
    from controller.review import compute  # noqa: PLC0415
    from controller.review.compute import World  # noqa: PLC0415

    if args.snapshot:
        try:
            snapshot, partition, taken, account_id = _load_snapshot(args.snapshot)
        except ValueError as exc:
            raise _AWSUnavailable(str(exc)) from exc
        print(f"note: planning against the snapshot {args.snapshot} ({taken})", file=sys.stderr)
        return World(snapshot=snapshot, partition=partition, account_id=account_id)
    clients = aws.connect(settings=_aws_settings(args))
    aws.read_only(clients.iam)
    # Prunes need every entity's owner tag, which only the account listing gives.
    if args.prune_scope or len(found.manifests) > SNAPSHOT_THRESHOLD:
        # Policies' tags for the names planned; with prunes, for every policy (any may be ours).
        names = None if args.prune_scope else compute.aws_names(found)
        snapshot = account.take(clients.iam, names=names)
        return World(
            clients=clients,
            snapshot=snapshot,
            partition=clients.partition,
            account_id=clients.account_id,
        )
    return World(clients=clients, partition=clients.partition, account_id=clients.account_id)


def _load_snapshot(path: str) -> tuple[AccountSnapshot, str, str, str | None]:
    """Read a `rolekeeper snapshot` file: (snapshot, partition, description, account id or
    None); ValueError says what is wrong with it."""
    from controller.kinds import snapshot as account  # noqa: PLC0415

    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
        data = json.loads(text)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise ValueError(f"{path}: cannot read snapshot: {exc}") from exc
    snapshot, partition, taken = account.from_file_json(data, path)
    found = data.get("account") if isinstance(data, dict) else None
    account_id = found if isinstance(found, str) and found.isdigit() and len(found) == 12 else None
    return snapshot, partition, taken, account_id


def _note_ignored(found: Input) -> None:
    if not found.ignored:
        return
    shown = ", ".join(f"{what} ({where})" for where, what in found.ignored[:5])
    more = f" and {len(found.ignored) - 5} more" if len(found.ignored) > 5 else ""
    print(
        f"note: ignored {len(found.ignored)} object(s) that are not IAMRole/IAMUser: {shown}{more}",
        file=sys.stderr,
    )


def _color(stream: TextIO) -> bool:
    # https://no-color.org; a pipe or a CI log file gets plain text.
    return stream.isatty() and not os.environ.get("NO_COLOR") and os.environ.get("TERM") != "dumb"


def _add_guardrails(found: Input, paths: Sequence[str]) -> None:
    """Merge the IAMGuardrail and Namespace objects of `paths` into `found` (anything else in
    them is not planned: they describe the cluster, not the change)."""
    from controller.review import manifests  # noqa: PLC0415

    if not paths:
        return
    extra = manifests.load(paths)
    found.guardrails.extend(extra.guardrails)
    found.accounts.extend(extra.accounts)
    found.namespaces.update(extra.namespaces)
    found.problems.extend(extra.problems)


def _account_clients(
    paths: Sequence[str], namespace: str, settings: AWSSettings = READ_ONLY_AWS
) -> Clients:
    """Clients of the AWS account `namespace` uses: its IAMAccount's role (from `paths`), or
    the caller's own credentials when none serves it."""
    from controller.aws import accounts, clients  # noqa: PLC0415
    from controller.review import manifests  # noqa: PLC0415

    found = manifests.load(paths) if paths else manifests.Input()
    if found.problems:
        raise _AWSUnavailable("; ".join(str(p) for p in found.problems))
    try:
        mapping = [accounts.parse_account(m.obj) for m in found.accounts]
    except accounts.AccountError as exc:
        raise _AWSUnavailable(str(exc)) from exc
    choice = accounts.choose(mapping, namespace, found.namespaces.get(namespace, {}))
    if choice.problem:
        raise _AWSUnavailable(choice.problem)
    if choice.account is None:
        return clients.connect(settings=settings)
    print(
        f"note: namespace {namespace} uses IAMAccount {choice.account.name} "
        f"({choice.account.account_id}): assuming {choice.account.role_arn}",
        file=sys.stderr,
    )
    return accounts.from_environment(settings).clients(choice.account)


def _plan_accounts(args: argparse.Namespace, found: Input) -> Review:
    """A plan over several AWS accounts: the objects of each account's namespaces planned
    against that account (its role assumed, read-only), one review in account order."""
    from dataclasses import replace  # noqa: PLC0415

    from controller.aws import accounts  # noqa: PLC0415
    from controller.aws import clients as aws  # noqa: PLC0415
    from controller.review import compute, manifests  # noqa: PLC0415
    from controller.review.compute import World  # noqa: PLC0415

    problems: list[manifests.Problem] = []
    mapping = []
    for manifest in found.accounts:
        try:
            mapping.append(accounts.parse_account(manifest.obj))
        except accounts.AccountError as exc:
            problems.append(manifests.Problem(manifest.source, f"IAMAccount: {exc}"))
    groups: dict[str, list[manifests.Manifest]] = {}
    chosen: dict[str, accounts.Account | None] = {}
    for manifest in found.manifests:
        namespace = manifests.meta(manifest.obj, "namespace") or args.namespace
        choice = accounts.choose(
            mapping, namespace, found.namespaces.get(namespace, {}), [str(p) for p in problems]
        )
        if choice.problem:
            problems.append(manifests.Problem(manifest.source, choice.problem))
            continue
        groups.setdefault(choice.key, []).append(manifest)
        chosen[choice.key] = choice.account
    changes: list[compute.Change] = []
    notes: list[str] = []
    session = None
    for key, members in groups.items():
        part = replace(found, manifests=members, problems=[])
        account = chosen[key]
        scopes = [
            ns for ns in args.prune_scope
            if accounts.choose(mapping, ns, found.namespaces.get(ns, {})).key == key
        ]
        if account is None:
            world = _world(args, part)
        else:
            if args.snapshot:
                snapshot, partition, _, snapshot_account = _load_snapshot(args.snapshot)
                if snapshot_account != account.account_id:
                    raise _AWSUnavailable(
                        f"the snapshot {args.snapshot} is of account {snapshot_account}; "
                        f"IAMAccount {account.name} is account {account.account_id}"
                    )
                world = World(snapshot=snapshot, partition=partition, account_id=snapshot_account)
            else:
                from controller.kinds import snapshot as entities  # noqa: PLC0415

                session = session or accounts.from_environment(_aws_settings(args))
                clients = session.clients(account)
                aws.read_only(clients.iam)
                taken = None
                if scopes or len(members) > SNAPSHOT_THRESHOLD:  # as _world decides
                    names = None if scopes else compute.aws_names(part)
                    taken = entities.take(clients.iam, names=names)
                world = World(
                    clients=clients,
                    snapshot=taken,
                    partition=clients.partition,
                    account_id=clients.account_id,
                )
            print(
                f"note: {len(members)} object(s) planned in account {account.account_id} "
                f"(IAMAccount {account.name})",
                file=sys.stderr,
            )
        world.show_foreign = args.show_foreign
        world.oidc_issuer = args.oidc_issuer
        review = compute.compute(
            part, world, scopes, args.namespace, cluster_id=args.cluster_id, limits=_limits(args)
        )
        changes.extend(review.changes)
        problems.extend(review.problems)
        notes.extend(n for n in review.notes if n not in notes)
    return compute.Review(tuple(changes), (*found.problems, *problems), tuple(notes))


def _add_aws_policy(sub: SubParsers) -> None:
    parser = sub.add_parser(
        "aws-policy",
        help="print the operator's IAM policy, limited to what the guardrails allow",
        description=(
            "Generate the IAM identity policy for the operator's own AWS credentials from "
            "IAMGuardrail manifests, so AWS itself enforces the same limits (docs/guardrails.md)."
        ),
    )
    parser.add_argument(
        "--guardrails", action="append", default=[], metavar="PATH", help="IAMGuardrail manifests"
    )
    parser.add_argument("--account-id", default="*", metavar="ID", help="the AWS account id")
    parser.add_argument("--partition", default="aws")
    parser.add_argument(
        "--cluster-id", default=None, metavar="ID", help="the operator's cluster id"
    )
    parser.add_argument(
        "--accounts",
        action="append",
        default=[],
        metavar="PATH",
        help="IAMAccount manifests: grant sts:AssumeRole on exactly their roleArn",
    )
    parser.add_argument(
        "--events-queue-url",
        type=_queue_url,
        default="",
        metavar="URL",
        help="grant receiving and deleting IAM events from this SQS queue (docs/drift.md)",
    )
    parser.add_argument(
        "--events-dead-letter-queue-url",
        type=_queue_url,
        default="",
        metavar="URL",
        help="grant forwarding unreadable events to this SQS queue",
    )


def aws_policy_command(args: argparse.Namespace) -> int:
    from controller.aws.accounts import AccountError, parse_account  # noqa: PLC0415
    from controller.core import awspolicy  # noqa: PLC0415
    from controller.core.guardrails import GuardrailError, parse_guardrail  # noqa: PLC0415
    from controller.review import manifests  # noqa: PLC0415

    found = manifests.load(args.guardrails) if args.guardrails else manifests.Input()
    _add_guardrails(found, args.accounts)
    errors = [str(p) for p in found.problems]
    roles = []
    for manifest in found.accounts:
        try:
            roles.append(parse_account(manifest.obj).role_arn)
        except AccountError as exc:
            errors.append(f"{manifest.source}: {exc}")
    rules = []
    for manifest in found.guardrails:
        try:
            rules.append(parse_guardrail(manifest.obj))
        except GuardrailError as exc:
            errors.append(f"{manifest.source}: {exc}")
    if errors:
        for error in errors:
            print(f"error: {error}", file=sys.stderr)
        return 1
    document = awspolicy.operator_policy(
        rules,
        partition=args.partition,
        account_id=args.account_id,
        cluster_id=args.cluster_id,
        assume_roles=roles,
        event_queues=[awspolicy.queue_arn(args.events_queue_url, args.partition)]
        if args.events_queue_url
        else [],
        dead_letter_queues=[awspolicy.queue_arn(args.events_dead_letter_queue_url, args.partition)]
        if args.events_dead_letter_queue_url
        else [],
    )
    for problem in awspolicy.problems(document, partition=args.partition):
        print(f"warning: {problem}", file=sys.stderr)
    sys.stdout.write(json.dumps(document, indent=2) + "\n")
    return 0


COMMANDS: dict[str, tuple[Callable[[SubParsers], None], Command]] = {
    "aws-policy": (_add_aws_policy, aws_policy_command),
    "plan": (_add_plan, plan_command),
    "snapshot": (_add_snapshot, snapshot_command),
    "import": (_add_import, import_command),
    "lint": (_add_lint, lint_command),
}


if __name__ == "__main__":
    raise SystemExit(main())
