"""One job: set RecBole up for the plugin the moment RecBole is imported, and not before.

The setup is two steps: :func:`recbole_hiertcn.compat.apply` (workarounds that must be in place
before RecBole's modules run: numpy aliases, import hooks on RecBole's modules) and
:func:`recbole_hiertcn.registry.register` (the plugin's models, datasets, trainers and config
files made visible to RecBole's lookups, which needs RecBole and the plugin's RecBole-side
modules). ``import recbole_hiertcn`` calls :func:`install`:

* if ``recbole`` is imported already, both steps run at once;
* otherwise a finder on ``sys.meta_path`` waits for ``recbole``: ``compat.apply()`` runs right
  before RecBole's package code, ``register()`` right after it - or, when the import of
  ``recbole`` came from inside one of the plugin's own modules (say
  ``recbole_hiertcn.trainer``, which ``register()`` itself needs whole), right after the
  outermost plugin module being imported has finished. The finder watches the plugin's modules
  for that only; once the setup has run it leaves ``sys.meta_path``.

So ``import recbole_hiertcn.serving`` (RecBole-free) imports neither RecBole nor the modules that
patch it, while a user who imports ``recbole_hiertcn`` and then RecBole finds everything
registered. :func:`set_up` runs whatever is left of the setup now (the package's lazy
attributes ``HierTCN``, ``HRNN``, ``compat`` and ``registry`` call it). Only the standard
library is imported here.
"""

import importlib
import importlib.util
import sys
import threading

__all__ = ["check_recbole", "install", "set_up", "is_set_up"]

_RECBOLE = "recbole"
_PLUGIN_PREFIX = "recbole_hiertcn."

# Steps done so far; guarded by _lock (an RLock: the steps import modules, which may come back).
_lock = threading.RLock()
_applied = False  # compat.apply() has run
_registered = False  # registry.register() has run (or is running)
_waiting = False  # RecBole is imported, register() waits for plugin imports in progress
# Per thread: how many of the plugin's modules are being executed, one inside the other.
_depth = threading.local()


def check_recbole():
    """Refuse, naming the install step, to run where RecBole is not installed: from Python 3.12
    on the package cannot declare it (pip would also want RecBole's ``ray<=2.6.3``). Looks for
    RecBole without importing it."""
    try:
        found = importlib.util.find_spec(_RECBOLE) is not None
    except ImportError:
        found = False
    if not found:
        raise ImportError(
            "recbole_hiertcn: RecBole 1.2.1 is not installed. From Python 3.12 on pip cannot "
            "install it with its requirements (its pin ray<=2.6.3 has no wheels there); this "
            "package declares all it needs besides, so install RecBole alone: "
            "pip install --no-deps recbole==1.2.1"
        )


def is_set_up():
    """Whether both steps have run (or, in the thread running it, registration is under way)."""
    return _applied and _registered


def _apply_compat():
    global _applied
    with _lock:
        if _applied:
            return
        _applied = True  # set first: compat's own imports must not come back here
        try:
            importlib.import_module("recbole_hiertcn.compat").apply()
        except BaseException:
            _applied = False  # not done: the next try refuses again (pandas 3, ...)
            raise


def _register():
    global _registered, _waiting
    with _lock:
        if _registered:
            return
        _registered, _waiting = True, False  # set first: register() imports plugin modules
        try:
            importlib.import_module("recbole_hiertcn.registry").register()
        except BaseException:
            _registered = False  # not done: set_up() tries again (and raises again)
            raise
        finally:
            _uninstall()  # either way no later import re-runs it behind the user's back


def set_up():
    """Run what is left of the setup now (importing RecBole); safe to call any number of times."""
    _apply_compat()
    importlib.import_module(_RECBOLE)  # with the finder installed this may register already
    _register()


def install():
    """What ``import recbole_hiertcn`` does: the setup now if RecBole is imported, else the
    finder that runs it when RecBole is imported."""
    check_recbole()
    if _RECBOLE in sys.modules:
        set_up()
        return
    with _lock:
        if not _registered and not any(isinstance(f, _Finder) for f in sys.meta_path):
            sys.meta_path.insert(0, _Finder())


def _uninstall():
    for finder in [f for f in sys.meta_path if isinstance(f, _Finder)]:
        try:
            sys.meta_path.remove(finder)
        except ValueError:  # another thread removed it first
            pass


def _plugin_module_starts():
    _depth.value = getattr(_depth, "value", 0) + 1


def _plugin_module_ended(succeeded):
    _depth.value -= 1
    # register() needs whole plugin modules: it runs once the outermost one has finished (not
    # after a failed import, whose error would be hidden by the one register() then raises)
    if succeeded and _depth.value == 0 and _waiting:
        _register()


def _recbole_imported():
    global _waiting
    if getattr(_depth, "value", 0) == 0:
        _register()
    else:
        _waiting = True


class _Finder:
    """On ``sys.meta_path`` until the setup has run: finds nothing itself, but wraps how
    ``recbole`` and the plugin's modules are executed (see the module docstring)."""

    def find_spec(self, name, path=None, target=None):
        if name == _RECBOLE:
            before, after = _apply_compat, _recbole_imported
        elif name.startswith(_PLUGIN_PREFIX):
            before, after = _plugin_module_starts, None
        else:
            return None
        spec = self._spec_from_other_finders(name, path, target)
        loader = getattr(spec, "loader", None)
        # only a loader object of this one module (never a class, shared by many modules)
        if loader is None or isinstance(loader, type) or not hasattr(loader, "exec_module"):
            return spec
        exec_module = loader.exec_module

        def exec_with_setup(module):
            before()
            succeeded = False
            try:
                exec_module(module)
                succeeded = True
            finally:
                if after is None:
                    _plugin_module_ended(succeeded)
            if after is not None:
                after()

        loader.exec_module = exec_with_setup
        return spec

    def _spec_from_other_finders(self, name, path, target):
        """The spec the finders after this one give (what the import would get without it)."""
        finders = list(sys.meta_path)
        start = finders.index(self) + 1 if self in finders else 0
        for finder in finders[start:]:
            find_spec = getattr(finder, "find_spec", None)
            if find_spec is None or isinstance(finder, _Finder):
                continue
            spec = find_spec(name, path, target)
            if spec is not None:
                return spec
        return None
