"""LiteMaaS Model Sync: keep a LiteMaaS ``models`` table in step with a LiteLLM proxy.

This package is the whole product minus its faces: it never imports streamlit, so the CLI,
the scheduler, the HTTP routes and the dashboard all call the same functions.
"""

__version__ = "0.1.0"
