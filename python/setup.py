"""Bundles a built libreason into the package at install time (see README.md).

The library copied is $REASON_LIBRARY when set, else the first plain build in the repository's
build/ or build-*/ folders (the same order the package searches at run time). With none found the
package installs without a bundled copy and looks for the library at run time instead.
"""

import importlib.util
import os
import shutil

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.dist import Distribution

HERE = os.path.dirname(os.path.abspath(__file__))


def _built_library():
    env = os.environ.get("REASON_LIBRARY")
    if env:
        return env
    path = os.path.join(HERE, "reason", "_loader.py")
    spec = importlib.util.spec_from_file_location("_loader", path)
    loader = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(loader)
    found = loader.repo_build_libraries(os.path.dirname(HERE))
    return found[0] if found else None


class BuildPyWithLibrary(build_py):
    def run(self):
        super().run()
        library = _built_library()
        if not library:
            print("reason: no built libreason found; installing without a bundled library")
            return
        target = os.path.join(self.build_lib, "reason", "_lib")
        os.makedirs(target, exist_ok=True)
        shutil.copyfile(os.path.realpath(library), os.path.join(target, "libreason.so"))
        print(f"reason: bundled {library}")


class PlatformDistribution(Distribution):
    """A bundled shared library makes the wheel platform-specific."""

    def has_ext_modules(self):
        return _built_library() is not None


setup(cmdclass={"build_py": BuildPyWithLibrary}, distclass=PlatformDistribution)
