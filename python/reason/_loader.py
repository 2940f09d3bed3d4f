"""Finds and loads the libreason shared library.

Search order (the first library that loads wins):

1. ``$REASON_LIBRARY`` — the full path of a libreason shared library. When set it is the only
   candidate: a failure to load it is an error, never a silent fallback.
2. A copy bundled in the package: ``reason/_lib/libreason.so*`` (put there by ``pip install`` when
   a build existed; see ``python/setup.py``).
3. The repository's build folders, when the package runs from a source checkout (``python/reason``
   inside the repository, e.g. ``pip install -e ./python``): ``<repo>/build/`` first, then
   ``<repo>/build-*/`` newest library first. Builds with a sanitizer runtime (ASan, TSan, ...) are
   skipped, since they cannot be loaded into a plain Python process.
4. The system loader: ``ctypes.util.find_library("reason")`` (``LD_LIBRARY_PATH``, ldconfig).
"""

import ctypes
import ctypes.util
import glob
import os

ENV_VAR = "REASON_LIBRARY"

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
_REPO_DIR = os.path.dirname(os.path.dirname(_PACKAGE_DIR))
_SANITIZER_MARKS = (b"__asan_init", b"__tsan_init", b"__msan_init", b"libasan.so", b"libtsan.so")
_LIB_PATTERNS = ("libreason.so", "libreason.so.*", "libreason.dylib", "reason.dll")


def _libs_in(folder):
    """Shared libraries named like libreason in folder, shortest (least versioned) name first."""
    found = []
    for pattern in _LIB_PATTERNS:
        found += glob.glob(os.path.join(folder, pattern))
    return sorted(set(found), key=lambda p: (len(p), p))[:1]


def _has_sanitizer(path):
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return False
    return any(mark in data for mark in _SANITIZER_MARKS)


def repo_build_libraries(repo_dir=_REPO_DIR):
    """Libraries in <repo>/build and <repo>/build-* (newest first), sanitizer builds left out."""
    if not os.path.isfile(os.path.join(repo_dir, "include", "reason.h")):
        return []
    main = _libs_in(os.path.join(repo_dir, "build"))
    others = []
    for folder in glob.glob(os.path.join(repo_dir, "build-*")):
        others += _libs_in(folder)
    others.sort(key=lambda p: os.path.getmtime(os.path.realpath(p)), reverse=True)
    return [p for p in main + others if not _has_sanitizer(p)]


def candidates():
    """Every path the loader would try, in order (without $REASON_LIBRARY)."""
    paths = _libs_in(os.path.join(_PACKAGE_DIR, "_lib"))
    paths += repo_build_libraries()
    system = ctypes.util.find_library("reason")
    if system:
        paths.append(system)
    return paths


def load():
    """Returns the loaded ctypes.CDLL; ImportError naming every path tried when none loads."""
    env = os.environ.get(ENV_VAR)
    if env:
        try:
            return ctypes.CDLL(env)
        except OSError as e:
            raise ImportError(f"reason: cannot load ${ENV_VAR}={env!r}: {e}") from e
    tried = []
    for path in candidates():
        try:
            return ctypes.CDLL(path)
        except OSError as e:
            tried.append(f"{path} ({e})")
    searched = [
        os.path.join(_PACKAGE_DIR, "_lib", "libreason.so*"),
        os.path.join(_REPO_DIR, "build", "libreason.so*"),
        os.path.join(_REPO_DIR, "build-*", "libreason.so*"),
        'ctypes.util.find_library("reason")',
    ]
    raise ImportError(
        "reason: libreason shared library not found. Set $" + ENV_VAR + " to its full path "
        "(e.g. build/libreason.so) or build it with cmake.\n  searched: " + ", ".join(searched)
        + ("\n  failed to load: " + "; ".join(tried) if tried else "")
    )
