"""The release: one version for the API and every package (CHANGELOG.md says what each changed).

It is written once, in the ``VERSION`` file beside this module. Every pyproject.toml reads that
file at build time (each service through its ``VERSION`` symlink into shared, which its image
copies too), and this module at run time, for ``/healthz`` and the OpenAPI documents.
"""

from pathlib import Path

__version__ = Path(__file__).with_name("VERSION").read_text(encoding="ascii").strip()
