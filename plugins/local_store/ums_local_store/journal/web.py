"""The journal's web application (WSGI, Flask) and its routes.

Every message route looks the row up by id *and* owner in one query, so
another user's id answers 404 exactly like a missing one. Every POST checks
the session's CSRF token. Pages carry no script and no inline style, which
lets the Content-Security-Policy forbid both.
"""

from __future__ import annotations

import datetime as dt
import hmac
import io
import logging
from types import SimpleNamespace
from urllib.parse import urlsplit

import flask
import peewee as pw
from werkzeug.exceptions import HTTPException

from ums_core import db, users
from ums_core.context import PluginContext
from ums_core.helpers import header_text

from . import auth, files, listing
from .i18n import LANGUAGES, translator

log = logging.getLogger(__name__)

COOKIE = "ums_session"
LOGIN_COOKIE = "ums_login"
MIN_PASSWORD = 10
PAGE_CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self'; media-src 'self'; "
    "object-src 'self'; frame-src 'self'; form-action 'self'; base-uri 'none'; "
    "frame-ancestors 'none'"
)
ID = "int(max=9223372036854775807)"  # what both databases hold
FILE_CSP = "default-src 'none'; frame-ancestors 'self'"


def create_journal(ctx: PluginContext) -> flask.Flask:
    """Return the journal's WSGI application for the instance of CTX."""
    web = flask.Flask(__name__, static_folder="static", template_folder="templates")
    web.config.update(MAX_CONTENT_LENGTH=64 * 1024, TEMPLATES_AUTO_RELOAD=False)
    web.extensions["ums"] = ctx
    auth.create_tables()
    web.before_request(_check_connection)
    web.before_request(_load_session)
    web.after_request(_add_headers)
    web.teardown_request(_close_connection)
    web.register_error_handler(HTTPException, _show_error)
    web.jinja_env.globals.update(csrf_field=_csrf_value)
    _add_routes(web)
    return web


# Request life -----------------------------------------------------------------


def _ums() -> PluginContext:
    return flask.current_app.extensions["ums"]


def _check_connection() -> None:
    """Drop this thread's kept PostgreSQL connection if the server has ended it.

    Request threads keep their connection; after a PostgreSQL restart each
    kept one is dead, and a request would fail on it with 500. One round trip
    (SELECT 1) before the request finds that out before anything is done, so
    no request, read or change, has to be run twice. SQLite needs no check.
    """
    database = db.database.obj
    if database.is_closed() or not db.is_postgresql(database):
        return
    try:
        database.execute_sql("SELECT 1")
    except (pw.InterfaceError, pw.DatabaseError) as exc:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        log.warning("journal: database connection lost (%s), opening a new one", reason)
        db.reset_connection()


def _load_session() -> None:
    idle = dt.timedelta(seconds=_ums().config.get("journal.idle_timeout"))
    session = auth.find_session(flask.request.cookies.get(COOKIE), idle)
    language = None
    if session is not None:
        user = auth.active_user(session.email)
        if user is None or auth.user_key(user) != session.user_key:
            log.info("journal: session of %s ended (user changed)", session.email)
            auth.end_session(session.token)
            session = None
        elif user.language in LANGUAGES:
            language = user.language
    flask.g.session = session
    flask.g.language = (
        language or flask.request.accept_languages.best_match(LANGUAGES) or "en"
    )
    flask.g.t = translator(flask.g.language)


def _add_headers(response: flask.Response) -> flask.Response:
    headers = response.headers
    if flask.g.get("file_response"):
        headers["Content-Security-Policy"] = FILE_CSP
        headers["X-Frame-Options"] = "SAMEORIGIN"
    else:
        headers["Content-Security-Policy"] = PAGE_CSP
        headers["X-Frame-Options"] = "DENY"
    headers["X-Content-Type-Options"] = "nosniff"
    headers["Referrer-Policy"] = "same-origin"
    headers["Cache-Control"] = "no-store"
    headers["Cross-Origin-Opener-Policy"] = "same-origin"
    return response


def _close_connection(exc) -> None:
    """Close this thread's connection after a failed request, else keep it.

    Opening an SQLite connection costs more than the list page's query; a
    connection that failed (a restarted PostgreSQL) is not used again.
    """
    if exc is not None:
        db.reset_connection()


def _show_error(exc: HTTPException):
    # The request may have failed before its session and language were read.
    flask.g.setdefault("session", None)
    flask.g.setdefault("language", "en")
    t = flask.g.t = flask.g.get("t") or translator(flask.g.language)
    text = {400: t("bad_request"), 404: t("not_found")}.get(exc.code, exc.name)
    return flask.render_template("error.html", code=exc.code, text=text), exc.code


def _csrf_value() -> str:
    session = flask.g.get("session")
    return session.csrf if session else ""


def _secure() -> bool:
    return flask.request.is_secure or _ums().config.get("journal.https")


def _set_cookie(response, name: str, value: str, path: str = "/") -> None:
    response.set_cookie(
        name,
        value,
        httponly=True,
        samesite="Lax",
        secure=_secure(),
        path=path,
    )


def _client() -> str:
    return flask.request.remote_addr or "?"


def _require_csrf() -> None:
    if not auth.check_csrf(flask.g.session, flask.request.form.get("csrf")):
        log.warning(
            "journal: POST %s without a valid CSRF token from %s",
            flask.request.path,
            _client(),
        )
        flask.abort(400)


def _login_redirect():
    target = flask.request.full_path.rstrip("?")
    return flask.redirect(flask.url_for("login", next=target))


def _safe_next(target: str | None) -> str:
    if not target or not target.startswith("/") or target.startswith("//"):
        return flask.url_for("message_list")
    if not target.isprintable() or len(target) > 2000:
        return flask.url_for("message_list")
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or "\\" in target:
        return flask.url_for("message_list")
    return target


def _is_default_recipient(email: str) -> bool:
    return (_ums().config.get("default_recipient") or "").lower() == email


def _visible():
    email = flask.g.session.email
    return listing.visible_to(email, _is_default_recipient(email))


def _page_id(name: str) -> int | None:
    value = flask.request.args.get(name, type=int)
    return value if value is not None and 0 <= value < 2**63 else None


def _owned_row(message_id: int) -> db.Message:
    row = db.Message.get_or_none((db.Message.id == message_id) & _visible())
    if row is None:
        flask.abort(404)
    return row


# Routes -----------------------------------------------------------------------


def _add_routes(web: flask.Flask) -> None:
    web.add_url_rule("/", "index", lambda: flask.redirect(flask.url_for("login")))
    web.add_url_rule("/favicon.ico", "favicon", lambda: ("", 204))
    web.add_url_rule("/login", "login", login, methods=["GET", "POST"])
    web.add_url_rule("/logout", "logout", logout, methods=["POST"])
    web.add_url_rule("/password", "password", password, methods=["GET", "POST"])
    web.add_url_rule("/messages", "message_list", message_list)
    web.add_url_rule(f"/messages/<{ID}:message_id>", "message_show", message_show)
    web.add_url_rule(
        f"/messages/<{ID}:message_id>/file/<kind>", "message_file", message_file
    )
    web.add_url_rule(
        f"/messages/<{ID}:message_id>/page/<int(max=999):number>.png",
        "message_page",
        page_png,
    )
    web.add_url_rule(
        f"/messages/<{ID}:message_id>/delete",
        "message_delete",
        message_delete,
        methods=["GET", "POST"],
    )


def login():
    """Show the login form; on POST check the password and start a session."""
    import secrets

    t = flask.g.t
    if flask.request.method != "POST":
        if flask.g.session is not None:
            return flask.redirect(flask.url_for("message_list"))
        token = secrets.token_urlsafe(24)
        page = flask.render_template(
            "login.html", token=token, next=flask.request.args.get("next", "")
        )
        response = flask.make_response(page)
        _set_cookie(response, LOGIN_COOKIE, token, path="/login")
        return response
    _check_login_origin()
    email = (flask.request.form.get("email") or "").strip().lower()[:254]
    secret = flask.request.form.get("password") or ""
    shown = header_text(email, 254)
    again = {"next": flask.request.form.get("next", "")}
    with auth.account_lock(email):
        if auth.throttled(email, _client()):
            log.warning("journal: login throttled for %s from %s", shown, _client())
            page = flask.render_template("login.html", error=t("throttled"), **again)
            return page, 429
        user = users.check_password(email, secret) if email and secret else None
        if user is None:
            auth.record_failure(email, _client())
            log.warning("journal: login failed for %s from %s", shown, _client())
            page = flask.render_template("login.html", error=t("login_failed"), **again)
            return page, 401
    auth.clear_failures(user.email)
    old = flask.request.cookies.get(COOKIE)
    row = db.User.get(db.User.email == user.email)
    session = auth.start_session(row, _client(), replaces=old)
    log.info("journal: login ok for %s from %s", user.email, _client())
    response = flask.redirect(_safe_next(flask.request.form.get("next")))
    _set_cookie(response, COOKIE, session.token)
    response.delete_cookie(LOGIN_COOKIE, path="/login")
    return response


def _check_login_origin() -> None:
    """Refuse a cross-site login post (login CSRF).

    A browser form carries the token of its login cookie; a browser always
    sends Origin on a cross-site POST. A script that posts only ``email`` and
    ``password`` sends neither and is let through.
    """
    origin = flask.request.headers.get("Origin") or flask.request.referrer
    if origin == "null" or (origin and urlsplit(origin).netloc != flask.request.host):
        log.warning("journal: cross-site login post from %s", _client())
        flask.abort(400)
    form_token = flask.request.form.get("csrf")
    if form_token:
        cookie_token = flask.request.cookies.get(LOGIN_COOKIE) or ""
        if not hmac.compare_digest(form_token.encode(), cookie_token.encode()):
            flask.abort(400)


def logout():
    """End the session."""
    session = flask.g.session
    if session is None:
        return flask.redirect(flask.url_for("login"))
    _require_csrf()
    auth.end_session(session.token)
    log.info("journal: logout of %s", session.email)
    response = flask.redirect(flask.url_for("login"))
    response.delete_cookie(COOKIE, path="/")
    return response


def password():
    """Let the user change their own password."""
    session = flask.g.session
    if session is None:
        return _login_redirect()
    if flask.request.method != "POST":
        return flask.render_template("password.html")
    _require_csrf()
    form = flask.request.form
    error = _password_problem(
        session.email, form.get("current", ""), form.get("new", ""), form.get("repeat")
    )
    if error:
        return flask.render_template("password.html", error=error), 400
    from ums_core.secrets import hash_secret

    hashed = hash_secret(form["new"])
    # One transaction: a failure part way leaves the old password and sessions.
    with db.write_transaction():
        users.store_password_hash(session.email, hashed)
        ended = auth.end_sessions_of(session.email)
        user = db.User.get(db.User.email == session.email)
        fresh = auth.start_session(user, _client())
    log.info(
        "journal: password changed by %s (%d sessions ended)", session.email, ended
    )
    response = flask.make_response(
        flask.render_template("password.html", done=flask.g.t("password_changed"))
    )
    flask.g.session = fresh
    _set_cookie(response, COOKIE, fresh.token)
    return response


def _password_problem(email, current, new, repeat) -> str:
    t = flask.g.t
    with auth.account_lock(email):
        if auth.throttled(email, _client()):
            return t("throttled")
        if users.check_password(email, current) is None:
            auth.record_failure(email, _client())
            log.warning("journal: wrong current password for %s", email)
            return t("password_wrong")
    if new != repeat:
        return t("password_mismatch")
    if len(new) < MIN_PASSWORD or len("".join(new.split())) < MIN_PASSWORD:
        return t("password_short", n=MIN_PASSWORD)
    if new == current:
        return t("password_same")
    return ""


def message_list():
    """Show one page of the user's messages, newest first."""
    if flask.g.session is None:
        return _login_redirect()
    from .present import present_row

    config = _ums().config
    filters = listing.read_filters(flask.request.args)
    condition = listing.filter_condition(
        filters, config.get("timezone"), _ums().site_rules
    )
    email = flask.g.session.email
    page = listing.list_page(
        email,
        _is_default_recipient(email),
        condition,
        before=_page_id("before"),
        after=_page_id("after"),
    )
    ctx = _ums()
    # As attributes: the template reads each field the first way Jinja tries.
    rows = [
        SimpleNamespace(**present_row(row, ctx, flask.g.t, flask.g.language))
        for row in page.rows
    ]
    return flask.render_template(
        "list.html",
        rows=rows,
        page=page,
        filters=filters,
        args=filters.as_args(),
        base=flask.url_for("message_list"),
        done=flask.request.args.get("done") == "deleted",
        is_default=_is_default_recipient(flask.g.session.email),
    )


def message_show(message_id: int):
    """Show one message; opening it marks it read."""
    if flask.g.session is None:
        return _login_redirect()
    from .present import present_detail

    row = _owned_row(message_id)
    opened = flask.request.method == "GET"  # a HEAD (a link checker) reads nothing
    if opened and row.read_at is None and row.direction == "inbound":
        with db.write_transaction():
            db.Message.update(read_at=db.utcnow()).where(
                (db.Message.id == row.id) & db.Message.read_at.is_null()
            ).execute()
        row.read_at = db.utcnow()
        log.info("msg %d: opened in the journal by %s", row.id, flask.g.session.email)
    detail = present_detail(row, _ums(), flask.g.t, flask.g.language)
    return flask.render_template("message.html", m=detail)


FILE_KINDS = ("pdf", "tiff", "wav", "play", "txt")


def message_file(message_id: int, kind: str):
    """Send a file of the message: inline for viewing, or as a download."""
    if flask.g.session is None:
        return _login_redirect()
    if kind not in FILE_KINDS:
        flask.abort(404)
    from .present import file_for

    row = _owned_row(message_id)
    found = file_for(row, kind, _ums().content_folder, _ums(), flask.g.t)
    if found is None:
        flask.abort(404)
    download = flask.request.args.get("download") == "1"
    flask.g.file_response = True
    if download:
        log.info("msg %d: %s downloaded by %s", row.id, kind, flask.g.session.email)
    return flask.send_file(
        found.path if found.text is None else io.BytesIO(found.text.encode()),
        mimetype=found.mimetype,
        as_attachment=download,
        download_name=found.name,
        conditional=True,
        etag=True,
        max_age=0,
    )


def page_png(message_id: int, number: int):
    """Send the preview image of one fax page."""
    if flask.g.session is None:
        return _login_redirect()
    row = _owned_row(message_id)
    path = files.page_preview(_ums().content_folder, row, number)
    if path is None:
        flask.abort(404)
    flask.g.file_response = True
    return flask.send_file(path, mimetype="image/png", max_age=0)


def message_delete(message_id: int):
    """Ask before deleting (GET); delete (POST)."""
    if flask.g.session is None:
        return _login_redirect()
    from ..retention import MessageBusy, delete_message
    from .present import present_detail

    row = _owned_row(message_id)
    if flask.request.method != "POST":
        detail = present_detail(row, _ums(), flask.g.t, flask.g.language)
        return flask.render_template("delete.html", m=detail)
    _require_csrf()
    try:
        delete_message(
            _ums().content_folder, row.id, f"{flask.g.session.email} (journal)"
        )
    except MessageBusy:
        detail = present_detail(row, _ums(), flask.g.t, flask.g.language)
        return flask.render_template("delete.html", m=detail, busy=True), 409
    return flask.redirect(flask.url_for("message_list", done="deleted"))
