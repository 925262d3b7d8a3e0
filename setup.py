"""The C half of the server package: ``server._pbvalues`` (see server/_pbvalues.c).

The rest of the build is declared in pyproject.toml. The module is optional: where it cannot be
compiled (no C compiler), the install goes on and ``server.convert.values`` uses its Python walk.
"""

from setuptools import Extension, setup

setup(ext_modules=[Extension("server._pbvalues", ["server/_pbvalues.c"], optional=True, extra_compile_args=["-O2"])])
