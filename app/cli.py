"""The `rapport` command: serve, api, worker, migrate, create-org, import, export, openapi."""

from __future__ import annotations

import asyncio
import getpass
import json
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError as PydanticValidationError
from rich.console import Console

from app.core.errors import DomainError, ValidationFailed
from app.core.settings import get_settings

cli = typer.Typer(help="Rapport, a headless CRM.", no_args_is_help=True, add_completion=False)
console = Console(stderr=True)


def _fail(message: str, code: int = 1) -> typer.Exit:
    console.print(f"[red]{message}[/]", highlight=False)
    return typer.Exit(code)


def _problem(error: DomainError) -> str:
    """A refusal as a person at a terminal reads it: field names without the API's `body.`."""
    if isinstance(error, ValidationFailed):
        return "; ".join(
            f"{'.'.join(str(part) for part in e.loc if part != 'body') or 'input'}: {e.msg}" for e in error.errors
        )
    return error.detail


def _invalid_options(error: PydanticValidationError) -> str:
    return "; ".join(f"--{'.'.join(str(part) for part in e['loc'])}: {e['msg']}" for e in error.errors())


def _writable_target(path: Path, option: str) -> None:
    """Refused before any work: a file that cannot be written would be found out after it."""
    if not path.parent.is_dir():
        raise _fail(f"{option}: the folder {path.parent} does not exist", 2)
    if path.is_dir():
        raise _fail(f"{option}: {path} is a folder", 2)


RESTART_BACKOFF_SECONDS = (1, 2, 5, 10, 30)

HostOption = Annotated[str | None, typer.Option(help="Interface to listen on (RAPPORT_API_HOST)")]
PortOption = Annotated[int | None, typer.Option(help="Port to listen on (RAPPORT_API_PORT)")]


@cli.command()
def serve(host: HostOption = None, port: PortOption = None) -> None:
    """Everything in one command: database, Redis, migrations, API and worker.

    With RAPPORT_DATABASE_URL / RAPPORT_REDIS_URL unset, embedded servers start under
    RAPPORT_DATA_DIR (./.rapport); with them set, those servers are used and nothing else starts.
    """
    from app.core.db import ensure_database
    from app.core.embedded import EmbeddedServers
    from app.core.migrations import upgrade

    settings = get_settings()
    host, port = host or settings.api_host, port or settings.api_port
    env = dict(os.environ)
    embedded: EmbeddedServers | None = None
    warnings.filterwarnings("ignore", module="platformdirs")
    try:
        if not settings.database_url or not settings.redis_url:
            console.print(f"Starting embedded servers under [bold]{settings.data_dir}[/]…")
            embedded = EmbeddedServers(settings.data_dir)
        if embedded is not None and not settings.database_url:
            database_url = embedded.start_postgres()
            asyncio.run(ensure_database(database_url))
            env["RAPPORT_DATABASE_URL"] = database_url
        if embedded is not None and not settings.redis_url:
            env["RAPPORT_REDIS_URL"] = embedded.start_redis()
        env["RAPPORT_SECRET_KEY"] = settings.jwt_secret()
        console.print("Applying migrations…")
        upgrade(env["RAPPORT_DATABASE_URL"])
        _supervise(env, host, port)
    finally:
        if embedded is not None:
            console.print("Stopping embedded servers…")
            embedded.stop()


def _supervise(env: dict[str, str], host: str, port: int) -> None:
    """Runs the API and the worker as child processes, restarting either if it dies."""
    commands = {
        "api": [
            sys.executable,
            "-m",
            "app.cli",
            "api",
            "--host",
            host,
            "--port",
            str(port),
        ],
        "worker": [sys.executable, "-m", "app.cli", "worker"],
    }
    children = {name: subprocess.Popen(cmd, env=env) for name, cmd in commands.items()}
    restarts = dict.fromkeys(commands, 0)
    stopping = False

    def stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    base = f"http://{host}:{port}"
    console.print(
        f"\n[bold green]Rapport is running[/]\n"
        f"  API      {base}/api/v1\n"
        f"  Docs     {base}/docs\n"
        f"  Sign up  curl -X POST {base}/api/v1/auth/signup -H 'Content-Type: application/json' \\\n"
        f'             -d \'{{"organization_name": "Acme", "email": "you@example.com", '
        f'"password": "a long passphrase", "full_name": "You"}}\'\n'
        f"  Stop     Ctrl-C\n",
        soft_wrap=True,
    )
    try:
        while not stopping:
            time.sleep(0.5)
            for name, child in list(children.items()):
                if child.poll() is None or stopping:
                    continue
                delay = RESTART_BACKOFF_SECONDS[min(restarts[name], len(RESTART_BACKOFF_SECONDS) - 1)]
                console.print(f"[yellow]{name} exited with {child.returncode}; restarting in {delay} s[/]")
                time.sleep(delay)
                restarts[name] += 1
                children[name] = subprocess.Popen(commands[name], env=env)
    finally:
        for child in children.values():
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 15
        for child in children.values():
            try:
                child.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.kill()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@cli.command()
def api(
    host: HostOption = None,
    port: PortOption = None,
    workers: Annotated[int | None, typer.Option(help="Processes (RAPPORT_API_WORKERS)")] = None,
) -> None:
    """The HTTP API (uvicorn), against RAPPORT_DATABASE_URL and RAPPORT_REDIS_URL."""
    import uvicorn

    settings = get_settings()
    os.environ.setdefault("RAPPORT_SECRET_KEY", settings.jwt_secret())
    uvicorn.run(
        "app.main:create_app",
        factory=True,
        host=host or settings.api_host,
        port=port or settings.api_port,
        workers=workers or settings.api_workers,
        log_config=None,
        access_log=False,
        proxy_headers=True,
        server_header=False,
    )


@cli.command()
def worker() -> None:
    """The background worker (arq): jobs and cron schedules."""
    from arq import run_worker

    from app.jobs.worker import WorkerSettings, worker_options

    run_worker(WorkerSettings, **worker_options())  # type: ignore[arg-type]


@cli.command()
def migrate(
    revision: Annotated[str, typer.Argument(help="Target revision")] = "head",
) -> None:
    """Apply database migrations up to REVISION."""
    from app.core.migrations import upgrade

    upgrade(revision=revision)
    console.print(f"Database migrated to {revision}.")


@cli.command("create-org")
def create_org(
    name: Annotated[str, typer.Option(help="Organisation name")],
    email: Annotated[str, typer.Option(help="The owner's e-mail")],
    full_name: Annotated[str, typer.Option(help="The owner's name")],
    password: Annotated[
        str | None,
        typer.Option(
            help="The owner's password (asked for when omitted)",
            envvar="RAPPORT_OWNER_PASSWORD",
        ),
    ] = None,
) -> None:
    """Create an organisation and its owner (when sign-up is switched off)."""
    from app.core.normalize import normalize_email
    from app.services.organizations import found_organization

    secret = password or getpass.getpass("Owner password: ")

    async def create() -> tuple[str, str]:
        from app.core.db import create_engine, create_session_factory

        engine = create_engine(get_settings(), pool_size=1)
        try:
            async with create_session_factory(engine)() as session, session.begin():
                founded = await found_organization(
                    session,
                    organization_name=name,
                    email=normalize_email(email),
                    password=secret,
                    full_name=full_name,
                )
                return str(founded.organization.id), str(founded.owner.id)
        finally:
            await engine.dispose()

    try:
        organization_id, user_id = asyncio.run(create())
    except DomainError as error:
        raise _fail(_problem(error)) from error
    typer.echo(json.dumps({"organization_id": organization_id, "user_id": user_id}))


@cli.command(name="import")
def import_file(
    file: Annotated[Path, typer.Argument(help="A CSV (UTF-8, GB18030/GBK) or XLSX file", exists=True, dir_okay=False)],
    entity: Annotated[str, typer.Option(help="contacts, companies or deals")],
    mode: Annotated[str, typer.Option(help="create, upsert or skip_duplicates")] = "create",
    mapping: Annotated[
        Path | None, typer.Option(help='A JSON file {"column header": "field"}; automatic when omitted', exists=True)
    ] = None,
    org: Annotated[str | None, typer.Option(help="The organisation's id (needed when there are several)")] = None,
    errors: Annotated[Path | None, typer.Option(help="Write the failed and skipped rows to this CSV file")] = None,
) -> None:
    """Import a file here and now, as the organisation's first owner, with a progress bar and a
    summary: the same checks, chunks and audit as `POST /api/v1/imports`, without a worker."""
    import uuid

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table

    from app.core import collector
    from app.core.db import create_engine, create_session_factory
    from app.models.data_import import DataImport
    from app.schemas.data_import import ImportCreate
    from app.services import imports, organizations

    try:
        mapped = json.loads(mapping.read_text()) if mapping else None
    except (ValueError, UnicodeDecodeError) as error:
        raise _fail(f"--mapping: {mapping} is not a JSON object ({error})", 2) from error
    try:
        data = ImportCreate.model_validate({"entity": entity, "mode": mode, "mapping": mapped})
    except PydanticValidationError as error:
        raise _fail(_invalid_options(error), 2) from error
    try:
        organization_id = uuid.UUID(org) if org else None
    except ValueError as error:
        raise _fail(f"--org: {org!r} is not an organisation id", 2) from error
    if errors is not None:
        _writable_target(errors, "--errors")

    async def run() -> tuple[DataImport, int]:
        collector.tune_for_bulk_work()
        engine = create_engine(get_settings(), pool_size=2)
        sessions = create_session_factory(engine)
        try:
            async with sessions() as session, session.begin():
                principal = await organizations.operator_principal(
                    session, organization_id or await organizations.sole_organization_id(session)
                )
                with file.open("rb") as handle:
                    created = await imports.create_import(
                        session, principal, data=data, file=handle, file_name=file.name
                    )
            job = asyncio.create_task(imports.run_import(sessions, created.organization_id, created.id))
            columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
            with Progress(*columns, console=console) as progress:
                bar = progress.add_task(f"Importing {file.name}", total=None)
                while True:
                    done = job.done()
                    async with sessions() as session:
                        state = await imports.get_import(session, principal, created.id)
                    progress.update(bar, total=state.total, completed=state.processed)
                    if done:
                        break
                    await asyncio.wait({job}, timeout=0.5)
            job.result()
            written = 0
            if errors is not None:
                try:
                    async with sessions() as session:
                        lines = await imports.issues_csv(session, principal, created.id, sessions)
                        with errors.open("w", encoding="utf-8", newline="") as output:
                            async for line in lines:
                                output.write(line)
                                written += 1
                except OSError as error:
                    # The rows are written: say so, rather than invite a second run.
                    console.print(
                        f"[red]The import is {state.status}, but {errors} could not be written ({error}); "
                        f"the rows are at GET /api/v1/imports/{state.id}/errors[/]"
                    )
                    written = 0
            return state, max(written - 1, 0)
        finally:
            await engine.dispose()

    try:
        state, error_rows = asyncio.run(run())
    except DomainError as error:
        raise _fail(_problem(error)) from error
    summary = Table(title=f"{file.name}: {state.status}")
    counts = ("total", "created", "updated", "unchanged", "skipped", "failed", "companies_created")
    for name in counts:
        summary.add_column(name.replace("_", " "), justify="right")
    summary.add_row(*(str(getattr(state, name) or 0) for name in counts))
    console.print(summary)
    if state.error:
        console.print(f"[red]{state.error}[/]")
    if errors is not None:
        console.print(f"Wrote {error_rows} failed or skipped rows to {errors}")
    typer.echo(json.dumps({"import_id": str(state.id), "status": state.status}))
    if state.status != "done":
        raise typer.Exit(1)


@cli.command()
def export(
    entity: Annotated[str, typer.Option(help="contacts or companies")],
    org: Annotated[str, typer.Option(help="The organisation's id")],
    output: Annotated[Path, typer.Option(help="The CSV file to write")],
    filter_json: Annotated[
        str | None,
        typer.Option("--filter", help='A filter DSL tree as JSON, e.g. \'{"field":"city","op":"eq","value":"上海"}\''),
    ] = None,
    q: Annotated[str | None, typer.Option(help="Substring search, as ?q=")] = None,
    archived: Annotated[bool, typer.Option(help="Archived records instead of active ones")] = False,
) -> None:
    """Write every matching record to a CSV file (UTF-8 with BOM, formula-safe cells), as the
    organisation's first owner sees them, page by page."""
    import uuid

    from app.core import csv_export
    from app.core.db import create_engine, create_session_factory
    from app.services import companies, contacts, organizations, records

    kinds: dict[str, records.RecordType[Any]] = {"contacts": contacts.CONTACTS, "companies": companies.COMPANIES}
    if entity not in kinds:
        raise _fail(f"--entity must be one of {', '.join(kinds)}", 2)
    try:
        organization_id = uuid.UUID(org)
    except ValueError as error:
        raise _fail(f"--org: {org!r} is not an organisation id", 2) from error
    try:
        query = records.FindQuery(filter=json.loads(filter_json) if filter_json else None, q=q, archived=archived)
    except ValueError as error:
        raise _fail(f"--filter: not JSON ({error})", 2) from error
    _writable_target(output, "--output")
    partial = output.with_name(output.name + ".partial")

    async def run() -> int:
        engine = create_engine(get_settings(), pool_size=1)
        written = 0
        try:
            async with create_session_factory(engine)() as session:
                principal = await organizations.operator_principal(session, organization_id)
                columns, rows = await records.export_rows(session, principal, kinds[entity], query)
                # Written aside and renamed at the end: a refused filter leaves no half file.
                with partial.open("w", encoding="utf-8", newline="") as file:
                    file.write(csv_export.header(columns))
                    async for row in rows:
                        file.write(csv_export.line(row.get(column) for column in columns))
                        written += 1
                partial.replace(output)
        finally:
            partial.unlink(missing_ok=True)
            await engine.dispose()
        return written

    try:
        written = asyncio.run(run())
    except DomainError as error:
        raise _fail(_problem(error)) from error
    console.print(f"Wrote {written} {entity} to {output}")


@cli.command()
def openapi(
    output: Annotated[Path, typer.Option(help="Where to write the document")] = Path("openapi/openapi.json"),
) -> None:
    """Write the OpenAPI document the app serves (commit it; a test compares the two)."""
    from app.openapi import render_openapi

    output.write_text(render_openapi())
    console.print(f"Wrote {output}")


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
