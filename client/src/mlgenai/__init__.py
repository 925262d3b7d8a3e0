"""mlgenai: the Python client of the mlgenai service.

``mlgenai.v1`` holds the generated protobuf/gRPC modules; ``mlgenai.client`` the small
hand-written layer (connect, retries, deadlines, paging, dict helpers, decoded errors).
"""
