"""`socialcrm serve | demo | migrate | create-user | parse-webhook | poll-once`."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import os
import sys

from aiohttp import web

from socialcrm.config import Settings, normalize_database_url


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="socialcrm", description="Social-media customer-care inbox.")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the web server, webhooks and scheduler")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--migrate", action="store_true", help="apply migrations first")
    serve.add_argument("--workers", type=int, default=1, metavar="N",
                       help="N server processes on one port (PostgreSQL only; default 1)")
    serve.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)   # started by --workers
    serve.set_defaults(func=cmd_serve)
    sub.add_parser("migrate", help="create or upgrade the database schema").set_defaults(func=cmd_migrate)
    user = sub.add_parser("create-user", help="add a user (password from SOCIALCRM_PASSWORD, stdin or a prompt)")
    user.add_argument("username")
    user.add_argument("--role", choices=("agent", "lead", "admin"), default="agent")
    user.add_argument("--team", action="append", default=[], help="team name (repeatable)")
    user.add_argument("--display-name", default="")
    user.set_defaults(func=cmd_create_user)
    channel = sub.add_parser("add-channel", help="connect a platform account (secrets from env or a prompt)")
    channel.add_argument("connector")
    channel.add_argument("--name", required=True)
    channel.add_argument("--team", required=True, help="the team that answers this channel")
    channel.add_argument("--setting", action="append", default=[], metavar="KEY=VALUE",
                         help="a non-secret setting (repeatable); secrets: SOCIALCRM_SECRET_<KEY> or a prompt")
    channel.add_argument("--poll", action="store_true", help="also fetch events by polling")
    channel.set_defaults(func=cmd_add_channel)
    demo = sub.add_parser("demo", help="demo data, the server and a simulated platform that keeps writing")
    demo.add_argument("--port", type=int, default=8080)
    demo.add_argument("--platform-port", type=int, default=8090)
    demo.add_argument("--interval", type=float, default=3.0, help="seconds between simulated events")
    demo.set_defaults(func=cmd_demo)
    sub.add_parser("check", help="database, migrations, each channel's credentials and webhook; "
                   "exits 1 when something needs attention").set_defaults(func=cmd_check)
    sub.add_parser("rotate-key", help="re-encrypt channel secrets under a new key (stop the server first, "
                   "restart it after)").set_defaults(func=cmd_rotate_key)
    seed = sub.add_parser("seed", help="write a seeded synthetic month of conversations (dashboards, benchmarks)")
    seed.add_argument("--conversations", type=int, default=10_000)
    seed.add_argument("--days", type=int, default=30)
    seed.add_argument("--agents", type=int, default=12)
    seed.add_argument("--seed", type=int, default=5, help="same seed, same data")
    seed.add_argument("--channels", type=int, default=5, help="how many simulated channels (1-8)")
    seed.set_defaults(func=cmd_seed)
    from socialcrm.cli_tools import add_commands

    add_commands(sub)
    args = parser.parse_args(argv)
    return int(args.func(args) or 0)


def configure_logging(settings: Settings) -> None:
    """Plain text by default; SOCIALCRM_LOG_FORMAT=json for log shippers. Both are redacted."""
    from socialcrm.logs import configure_json_logging, configure_text_logging

    if settings.log_format.lower() == "json":
        configure_json_logging(settings.log_level)
    else:
        configure_text_logging(settings.log_level)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # request lines can carry tokens in URLs
    logging.getLogger("apscheduler").setLevel(logging.WARNING)


def cmd_migrate(args: argparse.Namespace) -> int:
    from socialcrm.migrate import upgrade

    upgrade(Settings().database_url)
    print("database is at the latest schema")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from socialcrm.web.app import create_app
    from socialcrm.workers import Supervisor, stop_when_orphaned, worker_argv

    settings = Settings()
    if args.host:
        settings.host = args.host
    if args.port:
        settings.port = args.port
    if refused := workers_refused(args.workers, settings.database_url):
        print(f"serve: {refused}", file=sys.stderr)
        return 2
    configure_logging(settings)
    if args.migrate:
        cmd_migrate(args)
    if args.workers > 1:   # migrations ran once, above; each worker opens its own connections
        return Supervisor(worker_argv(settings.host, settings.port), args.workers).run()
    app = create_app(settings)
    if args.worker:
        app.cleanup_ctx.append(stop_when_orphaned)
    web.run_app(app, host=settings.host, port=settings.port, print=None, shutdown_timeout=5,
                reuse_port=args.worker or None)
    return 0


def workers_refused(workers: int, database_url: str) -> str | None:
    """Why --workers cannot be used with this database, or None."""
    if workers < 1:
        return "--workers must be 1 or more"
    if workers > 1 and not normalize_database_url(database_url).startswith("postgresql"):
        return ("--workers above 1 needs PostgreSQL (SOCIALCRM_DATABASE_URL=postgresql://...): "
                "SQLite is the single-process default, one writer at a time")
    return None


def read_password() -> str:
    """Never from argv (it shows in `ps` and shell history): env, piped stdin, or a prompt."""
    if os.environ.get("SOCIALCRM_PASSWORD"):
        return os.environ["SOCIALCRM_PASSWORD"]
    if not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\n")
    return getpass.getpass("Password: ")


def cmd_create_user(args: argparse.Namespace) -> int:
    from socialcrm.db import make_engine
    from socialcrm.users import PasswordRejected, create_user

    async def run() -> None:
        engine = make_engine(Settings().database_url)
        try:
            await create_user(engine, args.username, read_password(), args.role, args.display_name, args.team)
        finally:
            await engine.dispose()

    try:
        asyncio.run(run())
    except PasswordRejected as exc:
        print(f"create-user: {exc}", file=sys.stderr)
        return 2
    print(f"created {args.role} {args.username}")
    return 0


def cmd_add_channel(args: argparse.Namespace) -> int:
    from socialcrm.channels import add_channel_from_cli

    try:
        channel_id, url = asyncio.run(add_channel_from_cli(Settings(), args.connector, args.name, args.team,
                                                           args.setting, args.poll))
    except ValueError as exc:
        print(f"add-channel: {exc}", file=sys.stderr)
        return 2
    print(f"channel {channel_id} connected; webhook URL: {url}")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    """One line per finding; exit 1 when any needs attention, so cron or a deploy can act on it."""
    from socialcrm.checks import check_from_settings, needs_attention

    findings = asyncio.run(check_from_settings(Settings()))
    for finding in findings:
        print(finding.line())
    return 1 if needs_attention(findings) else 0


def cmd_rotate_key(args: argparse.Namespace) -> int:
    """The new key is printed only when it lives in SOCIALCRM_SECRET_KEY (the operator must set it)."""
    from socialcrm.keys import rotate_from_settings

    def announce(new_key: str) -> None:
        print("Put this key FIRST in SOCIALCRM_SECRET_KEY, keeping the current keys after it "
              "(comma-separated), then restart the server:")
        print(new_key, flush=True)

    try:
        done = asyncio.run(rotate_from_settings(Settings(), announce))
    except FileNotFoundError as exc:
        print(f"rotate-key: {exc}", file=sys.stderr)
        return 2
    where = f"the key file {done.key_file} (old keys kept after it)" if done.key_file else "the printed key"
    print(f"re-encrypted the secrets of {done.channels} channel(s) with {where}; restart the server")
    return 0


def cmd_seed(args: argparse.Namespace) -> int:
    """Into the configured database (migrated first); a second run with another --seed adds more."""
    from socialcrm.db import make_engine
    from socialcrm.migrate import upgrade
    from socialcrm.registry import Registry
    from socialcrm.seed import Options, seed
    from socialcrm.vault import Vault

    settings = Settings()
    upgrade(settings.database_url)

    async def run() -> object:
        engine = make_engine(settings.database_url)
        try:
            return await seed(engine, Registry.from_entry_points(), Vault.from_settings(settings), Options(
                args.conversations, args.days, args.agents, args.seed, args.channels))
        finally:
            await engine.dispose()

    try:
        done = asyncio.run(run())
    except ValueError as exc:
        print(f"seed: {exc}", file=sys.stderr)
        return 2
    print(f"seeded {done.conversations} conversations, {done.messages} messages, {done.events} events "
          f"on {len(done.channels)} channels with {len(done.agents)} agents")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from socialcrm.demo import run_demo

    return run_demo(args)


if __name__ == "__main__":
    sys.exit(main())
