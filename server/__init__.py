"""The mlgenai gRPC server: the adapter between the contract (``mlgenai.v1``) and the store.

Never imports sqlalchemy: persistence is ``store``'s job.
"""
