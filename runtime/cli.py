"""The `sagaline` command line: up, worker, followers, api, migrate, projections, relay, doctor."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Callable, Coroutine, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from types import FrameType

    from pydantic import ValidationError

    from runtime.config import Settings

USAGE_ERROR = 2
FAILURE = 1


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the `sagaline` console script."""
    parser = _parser()
    args = parser.parse_args(argv)
    command: Callable[[Settings, argparse.Namespace], int] = args.command
    sys.exit(_run(lambda settings: command(settings, args)))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sagaline",
        description="Event-sourced CQRS service with durable sagas on Temporal.",
        epilog="Configuration comes from SAGALINE_* environment variables.",
    )
    commands = parser.add_subparsers(title="commands", required=True, metavar="COMMAND")
    for name, handler, summary in (
        ("up", _up, "run the whole stack locally (embedded Postgres, Temporal, Kafka)"),
        ("worker", _worker, "run the Temporal worker of the commands and sagas"),
        ("followers", _followers, "run the relay, projectors and pattern detector"),
        ("api", _api, "serve the GraphQL API"),
        ("migrate", _migrate, "apply database migrations"),
        ("schema", _schema, "print the GraphQL schema (SDL)"),
    ):
        commands.add_parser(name, help=summary, description=summary).set_defaults(command=handler)
    _add_projection_commands(commands)
    _add_relay_commands(commands)
    _add_doctor_command(commands)
    return parser


def _add_doctor_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    summary = "check a running deployment and say what is wrong (exit status 1 if anything is)"
    doctor = commands.add_parser("doctor", help=summary, description=summary)
    doctor.add_argument(
        "--within",
        type=_seconds,
        metavar="SECONDS",
        help="how long each check waits for an answer (default 5)",
    )
    doctor.set_defaults(command=_doctor)


def _seconds(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        seconds = 0.0
    if not seconds > 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number of seconds")
    return seconds


def _doctor(settings: Settings, args: argparse.Namespace) -> int:
    from runtime.doctor.examination import run_doctor

    return asyncio.run(run_doctor(settings, within=args.within))


def _add_relay_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    summary = "operate the relay that publishes stored events to Kafka"
    group = commands.add_parser("relay", help=summary, description=summary)
    actions = group.add_subparsers(title="actions", required=True, metavar="ACTION")
    text = "move the relay back to a position; it publishes every event from there again"
    rewind = actions.add_parser("rewind", help=text, description=text)
    rewind.add_argument("--to", type=int, required=True, metavar="N", help="a store position")
    rewind.add_argument(
        "--checkpoint", default="relay", metavar="NAME", help="the relay's checkpoint name"
    )
    rewind.set_defaults(command=_relay_rewind)


def _relay_rewind(settings: Settings, args: argparse.Namespace) -> int:
    from runtime.relay import rewind

    return asyncio.run(rewind(settings, args.to, args.checkpoint))


def _add_projection_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    summary = "inspect, rebuild, retry or skip projections"
    group = commands.add_parser("projections", help=summary, description=summary)
    actions = group.add_subparsers(title="actions", required=True, metavar="ACTION")
    actions.add_parser("status", help="position, lag and failure of every projection").set_defaults(
        command=_projections_status
    )
    for name, handler, text in (
        ("rebuild", _projections_rebuild, "replay into fresh tables, then swap them in"),
        ("retry", _projections_retry, "let a stopped projection try its failed event again"),
        ("skip", _projections_skip, "move a stopped projection past its failed event"),
    ):
        action = actions.add_parser(name, help=text, description=text)
        action.add_argument("name", help="the projection's name (see `projections status`)")
        action.set_defaults(command=handler)


def _run(command: Callable[[Settings], int]) -> int:
    """Run a subcommand; expected failures become one `sagaline: ...` line on stderr."""
    from pydantic import ValidationError

    from runtime.config import ConfigurationError
    from runtime.embedded.process import ComponentStartError
    from runtime.ports import PortUnavailable

    try:
        settings = _settings()
        _configure_logging(settings.log_level, settings.log_format)
        return command(settings)
    except (ConfigurationError, PortUnavailable) as error:
        return _fail(str(error), USAGE_ERROR)
    except ValidationError as error:
        return _fail(_describe_invalid_settings(error), USAGE_ERROR)
    except ComponentStartError as error:
        return _fail(str(error), FAILURE)
    except KeyboardInterrupt:
        return FAILURE


def _up(settings: Settings, args: argparse.Namespace) -> int:
    from runtime.stack import up

    return up(settings)


def _worker(settings: Settings, args: argparse.Namespace) -> int:
    from runtime.tracing import traced
    from runtime.worker import run_worker

    with traced(settings, "worker"):
        return _serve_until_signalled(lambda: run_worker(settings))


def _followers(settings: Settings, args: argparse.Namespace) -> int:
    from runtime.followers import run_followers
    from runtime.tracing import traced

    with traced(settings, "followers"):
        return _serve_until_signalled(lambda: run_followers(settings))


def _api(settings: Settings, args: argparse.Namespace) -> int:
    from runtime.api_server import serve_api
    from runtime.tracing import traced

    with traced(settings, "api"):
        return _serve_until_signalled(lambda: serve_api(settings))


def _schema(settings: Settings, args: argparse.Namespace) -> int:
    from api.schema import build_schema

    sys.stdout.write(build_schema().as_str() + "\n")
    return 0


def _migrate(settings: Settings, args: argparse.Namespace) -> int:
    from runtime.migrate import migrate

    migrate(settings.require_database_url())
    return 0


def _projections_status(settings: Settings, args: argparse.Namespace) -> int:
    from runtime.projections import print_status

    return asyncio.run(print_status(settings))


def _projections_rebuild(settings: Settings, args: argparse.Namespace) -> int:
    from runtime.projections import rebuild

    return asyncio.run(rebuild(settings, args.name))


def _projections_retry(settings: Settings, args: argparse.Namespace) -> int:
    from runtime.projections import retry

    return asyncio.run(retry(settings, args.name))


def _projections_skip(settings: Settings, args: argparse.Namespace) -> int:
    from runtime.projections import skip

    return asyncio.run(skip(settings, args.name))


def _serve_until_signalled(serve: Callable[[], Coroutine[Any, Any, None]]) -> int:
    """Run a long-lived service; SIGINT or SIGTERM cancels it so it shuts down cleanly."""

    async def supervise() -> None:
        loop = asyncio.get_running_loop()
        service = asyncio.create_task(serve())

        def cancel_service(signum: int, frame: FrameType | None) -> None:
            loop.call_soon_threadsafe(service.cancel)

        # signal.signal rather than loop.add_signal_handler: a server that installs its own
        # handlers while it runs (uvicorn does) then gets the signal alone, not both of us.
        previous = {
            signum: signal.signal(signum, cancel_service)
            for signum in (signal.SIGINT, signal.SIGTERM)
        }
        try:
            await service
        except asyncio.CancelledError:
            if not service.cancelled():
                raise
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    asyncio.run(supervise())
    return 0


def _settings() -> Settings:
    from runtime.config import Settings

    return Settings()


def _configure_logging(level: str, log_format: str) -> None:
    from runtime.config import ConfigurationError
    from runtime.log_format import log_handler

    name = level.upper()
    if not isinstance(logging.getLevelNamesMapping().get(name), int):
        raise ConfigurationError(f"SAGALINE_LOG_LEVEL={level!r} is not a log level")
    logging.basicConfig(level=name, handlers=[log_handler(log_format)])


def _describe_invalid_settings(error: ValidationError) -> str:
    problems = [
        f"SAGALINE_{str(issue['loc'][0]).upper()}: {issue['msg']}" if issue["loc"] else issue["msg"]
        for issue in error.errors()
    ]
    return "invalid configuration: " + "; ".join(problems)


def _fail(message: str, status: int) -> int:
    sys.stderr.write(f"sagaline: {message}\n")
    return status


if __name__ == "__main__":
    main()
