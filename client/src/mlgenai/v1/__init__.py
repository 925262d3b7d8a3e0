"""Generated from proto/mlgenai/v1 by client/scripts/generate.py. Do not edit."""
