"""Helpers and fixtures shared by more than one test package, in one place.

- sandbox.py: the live sandbox as Convai (`sandbox`, `sandbox_url`, `sandbox_key`,
  `other_key`, `make_client`, `sandbox_without_counters`; registered for every test by
  tests/conftest.py) and `hits`, `wait_for_live_server`.
- secrets.py: leak checks (`assert_secret_absent`) and the audit log as text (`audit_text`).
- manage.py: `manage.py` in a child process with production settings (`run_manage`, `PROD_ENV`).
- forms.py: raw multipart posts of unreadable text.
- role_matrix.py: the role-by-view matrix (`World`, `build_world`, `Endpoint`,
  `matrix_params`, `check_access`) that every app's matrix test drives.

A helper used by one package stays in that package's support.py.
"""
