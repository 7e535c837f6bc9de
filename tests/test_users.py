"""Users, their numbers, and who a called number belongs to."""

import json

import pytest

from ums_core.errors import UmsError
from ums_core.numbers import SiteRules
from ums_core.users import add_user, disable_user, enable_user, find_active_owner

RULES = SiteRules(country="DE", area_code="89", base_number="+498912")

SAME_NUMBER = [
    "+49 89 123456",
    "0049 89 123456",
    "089 123456",
    "+49 (0)89 123-456",
    "123456",
    "3456",
]


@pytest.mark.parametrize("form", SAME_NUMBER)
def test_find_active_owner_every_written_form(app, form):
    from ums_core.numbers import normalize_number

    add_user("alice@example.test", RULES, "Alice", "de", {"fax": ["+4989123456"]})
    owner = find_active_owner(normalize_number(form, RULES))
    assert owner is not None and owner.email == "alice@example.test"


def test_add_user_refuses_number_of_another_active_user(app):
    add_user("alice@example.test", RULES, numbers={"fax": ["+4989123456"]})
    with pytest.raises(UmsError, match="already belongs to alice@example.test"):
        add_user("bob@example.test", RULES, numbers={"sms": ["089 123456"]})


def test_enable_user_refuses_when_number_was_taken(app):
    add_user("alice@example.test", RULES, numbers={"fax": ["+4989123456"]})
    disable_user("alice@example.test")
    add_user("bob@example.test", RULES, numbers={"fax": ["+4989123456"]})
    with pytest.raises(UmsError, match="already belongs to bob"):
        enable_user("alice@example.test")


def test_disabled_user_owns_nothing(app):
    add_user("alice@example.test", RULES, numbers={"fax": ["+4989123456"]})
    disable_user("alice@example.test")
    assert find_active_owner("+4989123456") is None


def test_users_cli_add_list_disable_enable_remove(run):
    result = run(
        "users",
        "add",
        "Alice@Example.test",
        "--name",
        "Alice",
        "--fax",
        "+4989123456",
        "--voice",
        "089 123457",
        "--lang",
        "de",
    )
    assert result.exit_code == 0, result.output
    users = json.loads(run("users", "list", "--json").stdout)
    assert users == [
        {
            "email": "alice@example.test",
            "name": "Alice",
            "language": "de",
            "active": True,
            "numbers": [
                {"kind": "fax", "number": "+4989123456"},
                {"kind": "voice", "number": "+4989123457"},
            ],
        }
    ]
    assert run("users", "disable", "alice@example.test").exit_code == 0
    assert json.loads(run("users", "list", "--json").stdout)[0]["active"] is False
    assert run("users", "enable", "alice@example.test").exit_code == 0
    assert run("users", "remove", "alice@example.test", "--yes").exit_code == 0
    assert json.loads(run("users", "list", "--json").stdout) == []


def test_users_cli_bad_input_is_one_line(run):
    result = run("users", "add", "alice@example.test", "--fax", "call me maybe")
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: ")
    assert "Traceback" not in result.output
    bad_mail = run("users", "add", "not-an-address")
    assert bad_mail.exit_code == 1 and "bad e-mail address" in bad_mail.stderr
    assert run("users", "disable", "nobody@example.test").exit_code == 1
