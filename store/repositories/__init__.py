"""One repository per aggregate. Repositories take the unit of work's connection, return
``store.domain`` dataclasses, enforce the invariants the database must enforce, and never
commit."""
