"""Sequential features: numba kernels (udfs/kernels) and their DuckDB Arrow registrations (register.py)."""
