"""content_dir: content, mail files and plugin data in one folder all nodes share."""

from __future__ import annotations

import os

from conftest import reopen, use_mailserver

from ums_core import db
from ums_core.intake import receive_message
from ums_core.model import IncomingMessage
from ums_core.queue import run_due_jobs
from ums_core.samples import write_fax_tiff
from ums_core.users import add_user


def files_under(folder) -> list[str]:
    return [os.path.join(d, f) for d, _, names in os.walk(folder) for f in names]


def test_content_mail_and_store_go_to_content_dir(home, smtp_sink, tmp_path):
    shared = tmp_path / "shared"
    use_mailserver(home, smtp_sink, content_dir=str(shared), archiving="true")
    app = reopen(home)
    add_user("alice@example.test", app.site_rules, numbers={"fax": ["+4989123456"]})
    fax = tmp_path / "f.tif"
    write_fax_tiff(str(fax), "shared", pages=1)
    incoming = IncomingMessage(kind="fax", called="+4989123456", content_path=str(fax))
    row = db.Message.get_by_id(receive_message(app, incoming))
    run_due_jobs(app)

    assert db.Message.get_by_id(row.id).state == "delivered"
    assert len(smtp_sink.handler.messages) == 1
    assert os.path.isfile(shared / row.content_name)
    assert files_under(shared / "mail") and files_under(shared / "plugins")
    for area in ("content", "mail", "plugins"):
        assert files_under(os.path.join(home, area)) == [], area


def test_init_refuses_a_database_url_it_cannot_use(tmp_path):
    from click.testing import CliRunner

    from ums_core.cli import cli

    result = CliRunner().invoke(
        cli, ["--home", str(tmp_path / "x"), "init", "--database", "mysql://db/ums"]
    )
    assert result.exit_code == 1 and "--database" in result.stderr
    assert not os.path.exists(tmp_path / "x")
