"""Persistence for mlgenai: SQLAlchemy models, repositories and the unit of work.

Never imports ``grpc`` or ``mlgenai.v1``: the server layer converts protos to the frozen
dataclasses of ``store.domain`` and back.
"""
