"""The C modules: ``server._pbvalues`` (see server/_pbvalues.c) and ``store._pgcopy`` (see
store/_pgcopy.c).

The rest of the build is declared in pyproject.toml. The modules are optional: where they cannot
be compiled (no C compiler), the install goes on and the server uses its Python code instead
(``server.convert.values``' walk, psycopg's ``write_row``).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(name, [source], optional=True, extra_compile_args=["-O2"])
        for name, source in (("server._pbvalues", "server/_pbvalues.c"), ("store._pgcopy", "store/_pgcopy.c"))
    ]
)
