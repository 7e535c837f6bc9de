"""``ums queue``: the jobs waiting for the outside world."""

from __future__ import annotations

import sys

import click

from . import CliState, echo_json


@click.group("queue")
def queue_group():
    """List, run and retry jobs."""


@queue_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--all", "include_done", is_flag=True, help="Include done jobs.")
@click.pass_obj
def list_command(state: CliState, as_json, include_done):
    """List the jobs that are not done."""
    from ..queue import describe_job, list_jobs

    state.app(load_plugins=False)
    jobs = [describe_job(job) for job in list_jobs(include_done)]
    if as_json:
        echo_json(jobs)
        return
    for job in jobs:
        subject = f"msg {job['message']}" if job["message"] else f"mail {job['mail']}"
        click.echo(
            f"{job['id']:>6}  {job['kind']:<16} {subject:<10} {job['state']:<8} "
            f"attempts {job['attempts']}  due {job['due_at']}  {job['last_error']}"
        )


@queue_group.command("run")
@click.pass_obj
def run_command(state: CliState):
    """Run every job that is due, then exit (status 1 if any failed for good)."""
    from ..queue import run_due_jobs

    summary = run_due_jobs(state.app())
    click.echo(
        f"done {summary.done}, retry later {summary.retried}, failed {summary.failed}"
    )
    if summary.failed:
        sys.exit(1)


@queue_group.command("retry")
@click.argument("job_id", type=int)
@click.pass_obj
def retry_command(state: CliState, job_id):
    """Make job JOB_ID due now (a failed job starts over)."""
    from ..queue import retry_job

    state.app(load_plugins=False)
    job = retry_job(job_id)
    click.echo(f"job {job.id} queued again")
