"""The mail lane of ``ums serve``: a slow mail server holds up no intake."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
from conftest import SmtpSink, reopen, use_mailserver

from ums_core import db
from ums_core.intake import receive_message
from ums_core.model import IncomingMessage
from ums_core.queue import claim_jobs
from ums_core.serve import MailLane, Server

WAIT = 20.0


class GatedHandler:
    """Keep each mail, but hold the DATA reply of every mail until opened."""

    def __init__(self):
        self.gate = threading.Event()
        self.in_data = threading.Event()
        self.messages: list[bytes] = []

    async def handle_DATA(self, server, session, envelope):
        self.in_data.set()
        await asyncio.to_thread(self.gate.wait, WAIT)
        self.messages.append(envelope.content)
        return "250 OK kept"


@pytest.fixture
def gated_sink():
    sink = SmtpSink()
    sink.handler = GatedHandler()
    sink.start()
    try:
        yield sink
    finally:
        sink.handler.gate.set()
        sink.stop()


@pytest.fixture
def serving(home, gated_sink):
    use_mailserver(
        home,
        gated_sink,
        spool__poll="0.1",
        gateway__fax_domain="",
        gateway__sms_domain="",
        smtp__timeout="30",
    )
    app = reopen(home)
    server = Server(app)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        yield app, server, gated_sink.handler
    finally:
        gated_sink.handler.gate.set()
        server.stopping.set()
        thread.join(WAIT)
        app.close()
    assert not thread.is_alive()


def sms(app, text: str) -> int:
    incoming = IncomingMessage(
        kind="sms", called="+4989123456", sender="+4930555010", text=text
    )
    return receive_message(app, incoming, run_now=False)


def wait_for(condition, what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def state_of(message_id: int) -> str:
    return db.Message.get_by_id(message_id).state


def test_intake_and_composing_go_on_while_the_mail_server_holds_data(serving):
    app, _, handler = serving
    first = sms(app, "first")
    wait_for(handler.in_data.is_set, "the first mail to reach DATA")
    second = sms(app, "second")
    wait_for(lambda: state_of(second) == "queued", "the second e-mail composed")
    assert state_of(first) == "queued" and handler.messages == []
    handler.gate.set()
    wait_for(lambda: state_of(second) == "delivered", "both mails delivered")
    assert state_of(first) == "delivered" and len(handler.messages) == 2


def test_stopping_waits_for_the_mail_being_sent(serving):
    app, server, handler = serving
    message = sms(app, "sent while stopping")
    wait_for(handler.in_data.is_set, "the mail to reach DATA")
    server.stopping.set()
    time.sleep(0.3)
    handler.gate.set()
    wait_for(lambda: state_of(message) == "delivered", "the mail delivered")
    jobs = {job.kind: job.state for job in db.Job.select()}
    assert jobs == {"deliver_message": "done", "send_mail": "done"}
    assert len(handler.messages) == 1


def test_a_failed_lane_run_gives_back_only_its_own_mails(app, home, monkeypatch):
    sms(app, "composed")
    app_jobs = claim_jobs(app, 10)
    assert [job.kind for job in app_jobs] == ["deliver_message"]
    mail_job = db.Job.create(kind="send_mail", state="running", lease_owner=app.node)
    lane = MailLane(app, threading.Event(), poll=0.1)
    lane.holding_jobs = True
    monkeypatch.setattr("ums_core.serve.run_due_jobs", lambda *a, **k: None)
    lane.run_once()
    states = {job.kind: job.state for job in db.Job.select()}
    assert states == {"deliver_message": "running", "send_mail": "queued"}
    assert db.Job.get_by_id(mail_job.id).lease_owner is None


def test_a_failed_cycle_leaves_the_lanes_mails_alone(app):
    sms(app, "composed")
    claim_jobs(app, 10)
    db.Job.create(kind="send_mail", state="running", lease_owner=app.node)
    server = Server(app)
    server.lane = MailLane(app, server.stopping, poll=0.1)
    server.holding_jobs = True
    server.release_own_jobs()
    states = {job.kind: job.state for job in db.Job.select()}
    assert states == {"deliver_message": "queued", "send_mail": "running"}


def test_the_node_reports_what_each_lane_does():
    from ums_core.nodes import NodeState

    state = NodeState()
    started, finish = threading.Event(), threading.Event()

    def lane():
        state.begin(7, "send_mail")
        started.set()
        finish.wait(WAIT)
        state.end("done")

    thread = threading.Thread(target=lane)
    thread.start()
    started.wait(WAIT)
    state.begin(8, "deliver_message")
    both = state.snapshot()
    finish.set()
    thread.join(WAIT)
    state.end("retried")
    assert both["activity"] == "job 7 send_mail, job 8 deliver_message"
    assert (both["job"], both["job_kind"]) == (7, "send_mail")
    after = state.snapshot()
    assert after["activity"] == "idle" and after["job"] is None
    assert (after["jobs_done"], after["jobs_retried"]) == (1, 1)


def test_a_stop_that_runs_out_gives_back_the_mails_not_started(home, gated_sink):
    from ums_core.queue import SEND_MAIL, run_due_jobs

    use_mailserver(home, gated_sink, smtp__timeout="30", smtp__batch_size="10")
    app = reopen(home)
    try:
        first, second = sms(app, "first"), sms(app, "second")
        run_due_jobs(app, exclude=(SEND_MAIL,))
        stopping = threading.Event()
        lane = MailLane(app, stopping, poll=0.1)
        lane.start()
        wait_for(gated_sink.handler.in_data.is_set, "the first mail to reach DATA")
        stopping.set()
        lane.stop(timeout=0.5)
        jobs = {
            job.message_id: job
            for job in db.Job.select().where(db.Job.kind == SEND_MAIL)
        }
        assert jobs[first].state == "running" and jobs[first].lease_owner == app.node
        assert (jobs[second].state, jobs[second].lease_owner) == ("queued", None)
        gated_sink.handler.gate.set()
        lane.thread.join(WAIT)
        assert not lane.thread.is_alive()
        assert state_of(first) == "delivered" and state_of(second) == "queued"
        assert (
            db.Job.get(db.Job.message == second, db.Job.kind == SEND_MAIL).state
            == "queued"
        )
    finally:
        gated_sink.handler.gate.set()
        app.close()
