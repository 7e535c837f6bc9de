"""Users to and from CSV: all or nothing, every bad row named, no formulas."""

import json
import os
import time

import pytest
from click.testing import CliRunner
from conftest import test_database_url

from ums_core import db
from ums_core.app import create_instance
from ums_core.cli import cli, users_csv_cmd
from ums_core.cli.users_cmd import users_group
from ums_core.errors import UmsError
from ums_core.numbers import SiteRules
from ums_core.users import add_user, disable_user, list_users
from ums_core.users_csv import (
    BadRowsError,
    defuse_cell,
    export_users,
    import_users,
    read_user_rows,
    restore_cell,
)

users_group.add_command(users_csv_cmd.import_command, "import")
users_group.add_command(users_csv_cmd.export_command, "export")

RULES = SiteRules(country="DE", area_code="89")
HEADER = "email,name,language,active,fax,voice,sms\n"
HOSTILE = "=cmd|' /C calc'!A0"


def write_csv(tmp_path, body: str, header: str = HEADER, encoding="utf-8") -> str:
    path = tmp_path / "users.csv"
    path.write_bytes((header + body).encode(encoding))
    return str(path)


def listed(run) -> list[dict]:
    result = run("users", "list", "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def comparable(users: list[dict]) -> list[dict]:
    """Return USERS with their numbers sorted (the file groups them by kind)."""
    for user in users:
        user["numbers"].sort(key=lambda n: (n["kind"], n["number"]))
    return users


def emails(run) -> list[str]:
    return [user["email"] for user in listed(run)]


@pytest.fixture
def other_run(tmp_path):
    """Return a CLI runner on a second, fresh instance with the same site rules."""
    home = str(tmp_path / "other")
    config = create_instance(home, test_database_url())
    config.set("site.area_code", "89")
    config.save()
    runner = CliRunner()
    return lambda *args: runner.invoke(cli, ["--home", home, *args])


def test_export_then_import_into_fresh_instance_gives_same_users(
    app, run, other_run, tmp_path
):
    add_user("alice@example.test", RULES, "Alice Ä", "de", {"fax": ["089 123456"]})
    numbers = {"sms": ["+491701234567"], "voice": ["089 1234570", "089 1234571"]}
    add_user("bob@example.test", RULES, HOSTILE, "en", numbers)
    add_user("carol@example.test", RULES, "-Carol", "en", {"fax": ["+4989123458"]})
    disable_user("carol@example.test")
    path = str(tmp_path / "out.csv")
    exported = run("users", "export", path)
    assert exported.exit_code == 0, exported.output
    assert "exported 3 users" in exported.stdout
    result = other_run("users", "import", path)
    assert result.exit_code == 0, result.output
    assert "imported 3 users (3 new, 0 updated), 0 skipped" in result.stdout
    assert comparable(json.loads(other_run("users", "list", "--json").stdout)) == (
        comparable(listed(run))
    )


def test_export_writes_no_password_and_an_owner_only_file(app, tmp_path):
    add_user("alice@example.test", RULES, "Alice", numbers={"fax": ["089 123456"]})
    db.User.update(password_hash="$argon2id$secret").execute()
    path = str(tmp_path / "out.csv")
    assert export_users(path) == 1
    text = open(path, encoding="utf-8").read()
    assert text.splitlines()[0] == HEADER.strip()
    assert "argon2" not in text and "password" not in text
    assert os.stat(path).st_mode & 0o777 == 0o600


def test_export_refuses_to_overwrite_without_force(app, run, tmp_path):
    path = tmp_path / "out.csv"
    path.write_text("keep me")
    refused = run("users", "export", str(path))
    assert refused.exit_code == 1 and "already exists" in refused.stderr
    assert "--force" in refused.stderr and path.read_text() == "keep me"
    assert run("users", "export", str(path), "--force").exit_code == 0
    assert path.read_text().startswith("email,")
    assert sorted(os.listdir(tmp_path)) == ["instance", "out.csv"]


def test_import_bad_row_among_good_ones_changes_nothing(run, tmp_path):
    path = write_csv(
        tmp_path,
        "alice@example.test,Alice,de,true,089 123456,,\n"
        "x,Nobody,en,true,,,\n"
        "bob@example.test,Bob,en,true,,,+491701234567\n",
    )
    result = run("users", "import", path)
    assert result.exit_code == 1
    assert "row 3: bad e-mail address 'x'" in result.stderr
    assert "Error: 1 bad row; nothing was imported" in result.stderr
    assert "--skip-bad" in result.stderr
    assert emails(run) == []


def test_import_reports_every_bad_row_at_once(run, tmp_path):
    path = write_csv(
        tmp_path,
        "bad-address,,en,true,,,\n"
        "alice@example.test,Alice,fr,true,,,\n"
        "bob@example.test,Bob,en,maybe,call me,,\n"
        "carol@example.test,Carol,en\n"
        "dave@example.test,Dave,en,true,,,,surplus\n"
        "erin@example.test,Erin,en,true,,,\n",
    )
    result = run("users", "import", path)
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert lines[0].startswith("row 2: bad e-mail address 'bad-address'")
    assert lines[1] == "row 3: unknown language 'fr' (expected en or de)"
    assert lines[2].startswith("row 4: active must be true or false, not 'maybe'; ")
    assert "fax 'call me' is not a usable phone number" in lines[2]
    assert lines[3] == "row 5: 3 cells, the header has 7"
    assert lines[4] == "row 6: 8 cells, the header has 7"
    assert lines[5] == "Error: 5 bad rows; nothing was imported"
    assert emails(run) == []


def test_import_skip_bad_imports_good_rows_and_lists_skipped(run, tmp_path):
    path = write_csv(
        tmp_path,
        "alice@example.test,Alice,de,true,089 123456,,\n"
        "x,Nobody,en,true,,,\n"
        "bob@example.test,Bob,,,,,+491701234567\n"
        "carol@example.test,Carol,en,true,089 123456,,\n",
    )
    result = run("users", "import", path, "--skip-bad")
    assert result.exit_code == 0, result.output
    assert "row 3: bad e-mail address 'x'" in result.stderr
    assert "row 5: +4989123456 is already in row 2" in result.stderr
    assert "imported 2 users (2 new, 0 updated), 2 skipped" in result.stdout
    users = listed(run)
    assert [u["email"] for u in users] == ["alice@example.test", "bob@example.test"]
    assert users[1]["language"] == "en" and users[1]["active"] is True


def test_import_dry_run_changes_nothing_and_reports_what_would_happen(
    app, run, tmp_path
):
    add_user("alice@example.test", RULES, "Alice", "de", {"fax": ["089 123456"]})
    path = write_csv(
        tmp_path,
        "alice@example.test,Alice Neu,en,true,089 123457,,\n"
        "bob@example.test,Bob,en,true,,,+491701234567\n",
    )
    before = listed(run)
    result = run("users", "import", path, "--dry-run", "--update")
    assert result.exit_code == 0, result.output
    assert "would add bob@example.test" in result.stdout
    assert "would update alice@example.test" in result.stdout
    assert "would import 2 users (1 new, 1 updated), 0 skipped" in result.stdout
    assert "nothing changed" in result.stdout
    assert listed(run) == before


def test_import_dry_run_with_bad_rows_fails_and_changes_nothing(run, tmp_path):
    path = write_csv(tmp_path, "x,,,,,,\nalice@example.test,,,,,,\n")
    result = run("users", "import", path, "--dry-run")
    assert result.exit_code == 1 and "row 2: bad e-mail address 'x'" in result.stderr
    assert emails(run) == []


def test_import_existing_user_is_a_bad_row_without_update(app, run, tmp_path):
    add_user("alice@example.test", RULES, "Alice", "de", {"fax": ["089 123456"]})
    path = write_csv(tmp_path, "Alice@Example.test,Alice Neu,en,false,,089 1234570,\n")
    result = run("users", "import", path)
    assert result.exit_code == 1
    assert "row 2: user alice@example.test already exists" in result.stderr
    assert listed(run)[0]["name"] == "Alice"


def test_import_update_replaces_user_and_keeps_password(app, run, tmp_path):
    add_user("alice@example.test", RULES, "Alice", "de", {"fax": ["089 123456"]})
    db.User.update(password_hash="kept").execute()
    path = write_csv(tmp_path, "alice@example.test,Alice Neu,en,false,,089 1234570,\n")
    result = run("users", "import", path, "--update")
    assert result.exit_code == 0, result.output
    assert "imported 1 user (0 new, 1 updated), 0 skipped" in result.stdout
    assert listed(run) == [
        {
            "email": "alice@example.test",
            "name": "Alice Neu",
            "language": "en",
            "active": False,
            "numbers": [{"kind": "voice", "number": "+49891234570"}],
        }
    ]
    assert db.User.get().password_hash == "kept"


def test_import_refuses_number_of_another_active_user(app, run, tmp_path):
    add_user("alice@example.test", RULES, "Alice", numbers={"fax": ["089 123456"]})
    path = write_csv(
        tmp_path,
        "bob@example.test,Bob,en,true,,+49 89 123456,\n"
        "carol@example.test,Carol,en,false,+4989123456,,\n",
    )
    result = run("users", "import", path)
    assert result.exit_code == 1
    assert (
        "row 2: +4989123456 already belongs to alice@example.test"
        in result.stderr.splitlines()
    )
    assert "row 3" not in result.stderr
    assert emails(run) == ["alice@example.test"]


def test_import_number_twice_in_the_file_and_email_twice(run, tmp_path):
    path = write_csv(
        tmp_path,
        "alice@example.test,Alice,en,true,089 123456,089 123456,\n"
        "bob@example.test,Bob,en,true,,,+4989123456\n"
        "ALICE@example.test,Alice again,en,true,,,\n",
    )
    result = run("users", "import", path)
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert lines[0] == "row 3: +4989123456 is already in row 2"
    assert lines[1] == "row 4: alice@example.test is already in row 2"


def test_import_update_may_move_a_number_between_users(app, run, tmp_path):
    add_user("alice@example.test", RULES, "Alice", numbers={"fax": ["089 123456"]})
    add_user("bob@example.test", RULES, "Bob", numbers={"fax": ["089 123457"]})
    path = write_csv(
        tmp_path,
        "bob@example.test,Bob,en,true,089 123456,,\n"
        "alice@example.test,Alice,en,true,089 123457,,\n",
    )
    result = run("users", "import", path, "--update")
    assert result.exit_code == 0, result.output
    owned = {u["email"]: u["numbers"][0]["number"] for u in listed(run)}
    assert owned == {
        "alice@example.test": "+4989123457",
        "bob@example.test": "+4989123456",
    }


def test_skip_bad_keeps_numbers_of_a_skipped_user(app, tmp_path):
    """A skipped update leaves the user's numbers, which no other row may take."""
    add_user("alice@example.test", RULES, "Alice", numbers={"fax": ["089 123456"]})
    add_user("carol@example.test", RULES, "Carol", numbers={"fax": ["089 123458"]})
    path = write_csv(
        tmp_path,
        "alice@example.test,Alice,en,true,089 123458,,\n"
        "bob@example.test,Bob,en,true,089 123456,,\n"
        "dave@example.test,Dave,en,true,089 123459,,\n",
    )
    table = read_user_rows(path, RULES)
    report = import_users(table, update=True, skip_bad=True)
    assert [str(e) for e in report.skipped] == [
        "row 2: +4989123458 already belongs to carol@example.test",
        "row 3: +4989123456 already belongs to alice@example.test",
    ]
    assert report.added == ("dave@example.test",) and report.updated == ()
    assert [u.email for u in list_users()] == [
        "alice@example.test",
        "carol@example.test",
        "dave@example.test",
    ]


def test_import_non_utf8_file_is_one_clear_error(run, tmp_path):
    path = write_csv(tmp_path, "jörg@example.test,Jörg,de,,,,\n", encoding="latin-1")
    result = run("users", "import", path)
    assert result.exit_code == 1
    assert result.stderr.splitlines()[0] == (
        f"Error: {path} is not UTF-8 (byte 0xf6 on line 2); nothing was imported"
    )
    assert result.stderr.splitlines()[1].startswith("Hint: save it as 'CSV UTF-8'")
    assert "Traceback" not in result.output and emails(run) == []


def test_import_accepts_bom_crlf_and_semicolons(run, tmp_path):
    path = tmp_path / "excel.csv"
    text = (
        "Email;Name;Language;Active;Fax;Voice;SMS\r\n"
        'joerg@example.test;"Jörg\r\nMüller";de;TRUE;"089 123456; 089 123457";;\r\n'
        ";;;;;;\r\n"
    )
    path.write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))
    result = run("users", "import", str(path))
    assert result.exit_code == 0, result.output
    assert listed(run) == [
        {
            "email": "joerg@example.test",
            "name": "Jörg Müller",
            "language": "de",
            "active": True,
            "numbers": [
                {"kind": "fax", "number": "+4989123456"},
                {"kind": "fax", "number": "+4989123457"},
            ],
        }
    ]


def test_import_wrong_header_names_the_columns(run, tmp_path):
    path = write_csv(tmp_path, "a@example.test,A,en\n", header="email,name,phone\n")
    result = run("users", "import", path)
    assert result.exit_code == 1
    line = result.stderr.splitlines()[0]
    assert "row 1 must name the columns email,name,language,active,fax,voice,sms" in (
        line
    )
    assert "missing: language, active, fax, voice, sms; unknown: phone" in line


def test_import_empty_file_is_an_error(run, tmp_path):
    path = write_csv(tmp_path, "", header="")
    result = run("users", "import", path)
    assert result.exit_code == 1 and "row 1 must name the columns" in result.stderr


def test_export_defuses_formulas_and_import_restores_them(app, run, tmp_path):
    add_user("alice@example.test", RULES, HOSTILE, numbers={"fax": ["089 123456"]})
    path = str(tmp_path / "out.csv")
    assert export_users(path) == 1
    row = open(path, encoding="utf-8", newline="").read().split("\r\n")[1]
    assert row == "alice@example.test,'=cmd|' /C calc'!A0,en,true,'+4989123456,,"
    table = read_user_rows(path, RULES)
    assert table.errors == () and table.rows[0].name == HOSTILE
    assert table.rows[0].numbers == (("fax", "+4989123456"),)


@pytest.mark.parametrize(
    "text", [HOSTILE, "+1", "-2", "@SUM(A1)", "'=x", "'quoted", "plain", "", "''"]
)
def test_defuse_cell_round_trips(text):
    defused = defuse_cell(text)
    assert not defused.startswith(("=", "+", "-", "@"))
    assert restore_cell(defused) == text


def test_import_hand_written_formula_cell_keeps_its_text(app, tmp_path):
    path = write_csv(tmp_path, '"a@example.test","=HYPERLINK(""x"")",,,,,\n')
    table = read_user_rows(path, RULES)
    assert table.rows[0].name == '=HYPERLINK("x")'


def test_import_thousand_rows_is_fast_and_one_transaction(app, tmp_path):
    body = "".join(
        f"user{i}@example.test,User {i},en,true,+4989{100000 + i},,\n"
        for i in range(1000)
    )
    path = write_csv(tmp_path, body)
    statements = []
    sqlite = not db.is_postgresql()
    if sqlite:  # sqlite3's trace callback counts the transactions
        db.database.obj.connection().set_trace_callback(statements.append)
    started = time.monotonic()
    report = import_users(read_user_rows(path, RULES))
    elapsed = time.monotonic() - started
    if sqlite:
        db.database.obj.connection().set_trace_callback(None)
        assert sum(s.upper().startswith("BEGIN") for s in statements) == 1
    assert len(report.added) == 1000 and elapsed < 10
    assert db.Number.select().count() == 1000


def test_import_users_raises_and_rolls_back_on_bad_rows(app, tmp_path):
    path = write_csv(
        tmp_path,
        "alice@example.test,Alice,en,true,089 123456,,\n"
        "bob@example.test,Bob,en,true,089 123456,,\n",
    )
    with pytest.raises(BadRowsError) as caught:
        import_users(read_user_rows(path, RULES))
    assert [str(e) for e in caught.value.errors] == [
        "row 3: +4989123456 is already in row 2"
    ]
    assert isinstance(caught.value, UmsError) and list_users() == []


def test_import_shows_progress_bar_on_a_terminal(run, tmp_path, monkeypatch):
    monkeypatch.setattr(users_csv_cmd, "stderr_is_terminal", lambda: True)
    path = write_csv(tmp_path, "alice@example.test,Alice,en,true,,,\n")
    result = run("users", "import", path)
    assert result.exit_code == 0, result.output
    assert "importing" in result.stderr
    assert "imported 1 user (1 new, 0 updated), 0 skipped" in result.stdout


def test_import_uses_configured_language_for_empty_cells(home, run, tmp_path):
    assert run("config", "set", "language", "de").exit_code == 0
    path = write_csv(tmp_path, "alice@example.test,Alice,,,,,\n")
    assert run("users", "import", path).exit_code == 0
    assert listed(run)[0]["language"] == "de"


def test_the_bad_byte_is_named_after_a_bom_too(run, tmp_path):
    path = tmp_path / "users.csv"
    body = (HEADER + "jörg@example.test,Jörg,de,,,,\n").encode("latin-1")
    path.write_bytes(b"\xef\xbb\xbf" + body)
    result = run("users", "import", str(path))
    assert result.exit_code == 1
    assert "(byte 0xf6 on line 2)" in result.stderr.splitlines()[0]
