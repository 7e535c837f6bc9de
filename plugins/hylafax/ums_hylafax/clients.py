"""Run HylaFAX's client programs: ``sendfax`` to submit, ``faxstat`` to ask."""

from __future__ import annotations

import re
import subprocess

SENDFAX_TIMEOUT = 120
FAXSTAT_TIMEOUT = 60
REQUEST_ID = re.compile(r"request id is (\d+)")
MAX_OUTPUT = 300


class ClientError(Exception):
    """A client program could not be run or said no; ``reason`` says why.

    ``unsure`` is set when the program may have done its work anyway (it ran
    out of time), so repeating it could send a fax twice.
    """

    def __init__(self, reason: str, unsure: bool = False):
        super().__init__(reason)
        self.reason = reason
        self.unsure = unsure


def add_host_option(command: list[str], host: str) -> list[str]:
    """Return COMMAND with ``-h HOST`` after the program when HOST is set."""
    return [command[0], "-h", host, *command[1:]] if host else command


def build_sendfax_command(config, number: str, sender: str, document: str) -> list[str]:
    """Return the sendfax command line: no cover page, one PDF document."""
    command = [config.get("hylafax.sendfax"), "-n", "-d", number, "-f", sender]
    return add_host_option(command, config.get("hylafax.host")) + [document]


def build_faxstat_command(config) -> list[str]:
    """Return the faxstat command line for the send and done queues."""
    command = [config.get("hylafax.faxstat"), "-s", "-d"]
    return add_host_option(command, config.get("hylafax.host"))


def run_client(command: list[str], timeout: float) -> str:
    """Run COMMAND and return its output; raise ClientError when it fails."""
    try:
        done = subprocess.run(
            command,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=timeout,
        )
    except FileNotFoundError:
        raise ClientError(f"{command[0]} not found; install the HylaFAX client")
    except PermissionError:
        raise ClientError(f"{command[0]} cannot be run (permission denied)")
    except subprocess.TimeoutExpired:
        raise ClientError(f"{command[0]} gave no answer in {timeout:g} s", True)
    if done.returncode != 0:
        said = " ".join((done.stderr or done.stdout).split())[:MAX_OUTPUT]
        raise ClientError(f"{command[0]} failed ({done.returncode}): {said}")
    return done.stdout + done.stderr


def parse_request_id(output: str) -> str | None:
    """Return the job id in sendfax's 'request id is N (group id M) …' line."""
    found = REQUEST_ID.search(output)
    return found[1] if found else None
