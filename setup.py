"""Build the Cython parsing core; without Cython or a C compiler, install the pure twin only.

``pip install .`` compiles ``refmail/_parse.pyx``.  If that fails, the package still installs
and ``refmail.parse`` falls back to ``refmail/_parse_py.py`` (IMPLEMENTATION == "python").
"""

from setuptools import setup
from setuptools.command.build_ext import build_ext


class OptionalBuildExt(build_ext):
    """Let a failed extension build fall back to the pure twin instead of failing install."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:  # noqa: BLE001 - any compiler failure means "use the twin"
            print(f"refmail: building the Cython core failed ({exc}); using the pure twin")

    def build_extension(self, ext) -> None:
        try:
            super().build_extension(ext)
        except Exception as exc:  # noqa: BLE001
            print(f"refmail: building {ext.name} failed ({exc}); using the pure twin")


def extensions():
    try:
        from Cython.Build import cythonize
    except ImportError:
        print("refmail: Cython is not installed; using the pure twin")
        return []
    return cythonize(
        ["refmail/_parse.pyx"],
        compiler_directives={"language_level": "3", "boundscheck": False, "wraparound": False},
    )


setup(ext_modules=extensions(), cmdclass={"build_ext": OptionalBuildExt})
