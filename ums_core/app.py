"""One open instance: its folder, configuration, database and plugins."""

from __future__ import annotations

import logging
import os
import uuid

import peewee as pw

from . import __version__, db
from .config import CONFIG_NAME, Config, load_config
from .errors import UmsError
from .nodes import NodeState
from .numbers import SiteRules
from .plugins import (
    LoadedPlugin,
    create_plugin_manager,
    decide_activation,
    discover_plugins,
    read_only_filter,
    register_plugin,
)

log = logging.getLogger(__name__)

HOME_ENV = "UMS_HOME"
SUBDIRS = (
    "content",
    "mail",
    "spool",
    "spool/tmp",
    "spool/new",
    "spool/bad",
    "templates",
)


# What a fresh file system or an interrupted ums init leaves in a folder
# that ums init may still use.
INIT_LEFTOVERS = {
    *(sub for sub in SUBDIRS if "/" not in sub),
    "lost+found",
    "ums.db",
    CONFIG_NAME + ".tmp",
}


def default_home(environ=os.environ) -> str:
    """Return the instance folder: $UMS_HOME, else $XDG_DATA_HOME/ums."""
    if environ.get(HOME_ENV):
        return environ[HOME_ENV]
    data = environ.get("XDG_DATA_HOME") or os.path.expanduser("~/.local/share")
    return os.path.join(data, "ums")


def create_instance(home: str, database: str = "") -> Config:
    """Create the instance folder on the embedded default; return its config.

    DATABASE is a PostgreSQL URL for an instance that shares its database
    with other nodes; empty means SQLite in the instance folder.
    """
    if os.path.exists(os.path.join(home, CONFIG_NAME)):
        raise UmsError(
            f"{home} already holds an ums instance",
            hint="use it as it is, or choose another --home",
        )
    if os.path.isdir(home) and set(os.listdir(home)) - INIT_LEFTOVERS:
        # init makes the folder owner-only: not something to do to $HOME by mistake
        raise UmsError(
            f"{home} is not empty and holds no ums instance; nothing was changed",
            hint="choose a new or empty folder for --home",
        )
    os.makedirs(home, mode=0o700, exist_ok=True)
    os.chmod(home, 0o700)
    for sub in SUBDIRS:
        os.makedirs(os.path.join(home, sub), mode=0o700, exist_ok=True)
    # SQLite gives its -wal and -shm files the mode of the database file
    os.close(os.open(os.path.join(home, "ums.db"), os.O_CREAT | os.O_WRONLY, 0o600))
    config = load_config(os.path.join(home, CONFIG_NAME))
    for name in ("mode", "info_mails", "archiving"):
        config.set(name, str(config.get(name)).lower())
    if database:
        config.set("database", database)
    config.save()
    return config


class App:
    """An open instance. Create it with :meth:`open`."""

    def __init__(self, home: str, config: Config):
        self.home = os.path.abspath(home)
        self.config = config
        self.database = None
        self.pm = None
        self.plugins: list[LoadedPlugin] = []
        self.instance_id = ""
        self.node = f"{os.uname().nodename}:{os.getpid()}"
        self.node_state = NodeState()
        # Where node-local hand-overs (spools) come from: stable over restarts.
        self.origin = f"{os.uname().nodename}:{self.home}"

    @classmethod
    def open(cls, home: str, load_plugins: bool = True) -> App:
        """Open the instance at HOME, migrating the schema if needed."""
        path = os.path.join(home, CONFIG_NAME)
        if not os.path.exists(path):
            raise UmsError(
                f"no ums instance at {home}",
                hint=f"create one with: ums --home {home} init",
            )
        app = cls(home, load_config(path))
        app.open_database()
        if load_plugins:
            app.load_plugins()
        return app

    def path(self, *parts: str) -> str:
        """Return a path inside the instance folder."""
        return os.path.join(self.home, *parts)

    @property
    def content_root(self) -> str:
        """Return the folder that holds content, mail files and plugin data.

        ``content_dir`` names it; on several nodes it is a folder every node
        mounts at the same path. Empty means the instance folder.
        """
        configured = self.config.get("content_dir")
        return os.path.join(self.home, configured) if configured else self.home

    def content_path(self, name: str) -> str:
        """Return the path of the content or mail file NAME."""
        return os.path.join(self.content_root, name)

    def open_database(self) -> None:
        """Open the database and bring its schema up to date."""
        url = self.config.get("database")
        try:
            self.database = db.connect(url, self.path("ums.db"))
            db.migrate(self.database)
        except pw.OperationalError as exc:
            raise UmsError(
                f"cannot open the database: {' '.join(str(exc).split())}",
                hint="check the database setting and that the server runs",
            ) from None
        self.instance_id = db.get_meta("instance_id") or ""
        if not self.instance_id:
            with db.write_transaction():  # a node starting at once may win
                self.instance_id = db.ensure_meta("instance_id", uuid.uuid4().hex[:12])

    def load_plugins(self) -> None:
        """Discover plugins, register the active ones, declare their config."""
        from .builtins import builtin_plugins

        self.pm = create_plugin_manager()
        self.plugins = builtin_plugins(__version__)
        self.plugins += discover_plugins(read_only_filter())
        for plugin in self.plugins:
            if plugin.obj is not None and decide_activation(plugin, self.config)[1]:
                register_plugin(self.pm, plugin)
        for keys in self.pm.hook.ums_declare_config():
            self.config.declare(keys or [])

    def fire(self, event: str, **kwargs) -> None:
        """Tell every active plugin of EVENT; one failing plugin stops no other.

        Events come after the commit they report, so a plugin's exception must
        not turn a committed message into a reported failure: it is logged.
        """
        self.collect(event, **kwargs)

    def listens(self, event: str) -> bool:
        """Return whether any active plugin implements EVENT.

        Lets a caller skip building an event's arguments nobody would read.
        """
        return bool(getattr(self.pm.hook, event).get_hookimpls())

    def collect(self, event: str, **kwargs) -> list:
        """Call EVENT on every active plugin, guarded, and return their answers."""
        answers = []
        caller = getattr(self.pm.hook, event)
        for impl in reversed(caller.get_hookimpls()):
            try:
                answers.append(impl.function(*[kwargs[n] for n in impl.argnames]))
            except UmsError as exc:
                log.error("plugin %s in %s: %s", impl.plugin_name, event, exc.message)
            except Exception:  # third-party code; a failure counts as no answer
                log.exception("plugin %s failed in %s", impl.plugin_name, event)
        return answers

    @property
    def hook(self):
        """Return the hook relay of the active plugins."""
        return self.pm.hook

    @property
    def site_rules(self) -> SiteRules:
        """Return the number rules of the site from the configuration."""
        get = self.config.get
        return SiteRules(
            country=get("site.country"),
            area_code=get("site.area_code"),
            base_number=get("site.base_number"),
            outside_prefix=get("site.outside_prefix"),
            extension_digits=get("site.extension_digits"),
        )

    def active_names(self) -> list[str]:
        """Return the names of the active plugins."""
        return [name for name, _ in self.pm.list_name_plugin()]

    def close(self) -> None:
        """Close the database connection of this thread."""
        if self.database is not None and not self.database.is_closed():
            self.database.close()
