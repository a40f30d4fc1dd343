"""The Postman collection in postman/ (written by dev/postman.py): what its generator
writes, a request for every operation of the stack's OpenAPI document, and not one failed
assertion when newman runs it against the stack. newman comes from `make newman` (part of
`make test`), pinned in the Makefile."""

from __future__ import annotations

import json
import re
import subprocess

import httpx
import pytest

from dev import postman
from dev.stack import REPO_ROOT, Stack

pytestmark = pytest.mark.e2e

NEWMAN = REPO_ROOT / ".tools" / "node_modules" / ".bin" / "newman"
METHODS = {"get", "post", "put", "patch", "delete"}
# The one request that is not to the API: the Pay button of the Stripe simulator's page.
NOT_THE_API = {("POST", "{{checkoutUrl}}/pay")}


def operation(method: str, path: str) -> tuple[str, str]:
    """``GET /api/v1/chatroom/{}``, from ``{chatroom_id}`` and ``{{chatroomId}}`` alike."""
    return method.upper(), re.sub(r"\{\{[^}]*\}\}|\{[^}]*\}", "{}", path)


def test_the_committed_files_are_what_dev_postman_writes():
    for path, text in postman.files().items():
        committed = path.read_text(encoding="utf-8") if path.exists() else ""
        assert committed == text, f"{path.name} is out of date: run `python -m dev.postman`"


def test_every_operation_in_the_openapi_document_has_a_request(stack: Stack):
    document = httpx.get(stack.url("gateway") + "/openapi.json", timeout=15).json()
    documented = {
        operation(method, path)
        for path, operations in document["paths"].items()
        for method in operations
        if method in METHODS
    }
    collection = json.loads(postman.COLLECTION_FILE.read_text(encoding="utf-8"))
    requested, elsewhere = set(), set()
    for item in postman.requests(collection):
        method, url = item["request"]["method"], item["request"]["url"]["raw"].split("?")[0]
        if url.startswith("{{baseUrl}}/"):
            requested.add(operation(method, url.removeprefix("{{baseUrl}}")))
        else:
            elsewhere.add((method, url))
    assert not documented - requested, "operations without a request in the collection"
    assert not requested - documented, "requests for routes that the OpenAPI document lacks"
    assert elsewhere == NOT_THE_API


def test_newman_runs_the_collection_against_the_stack_without_a_failure(stack: Stack):
    if not NEWMAN.exists():
        pytest.fail(
            f"newman is not installed ({NEWMAN.relative_to(REPO_ROOT)}):"
            " `make newman` installs it (`make test` does too)",
            pytrace=False,
        )
    run = subprocess.run(
        [
            str(NEWMAN),
            "run",
            str(postman.COLLECTION_FILE),
            "--environment",
            str(postman.ENVIRONMENT_FILE),
            "--env-var",
            f"baseUrl={stack.url('gateway')}",
            "--color",
            "off",
            "--disable-unicode",
            "--timeout-request",
            "30000",
            "--timeout",
            "80000",
        ],
        capture_output=True,
        text=True,
        timeout=100,
        cwd=REPO_ROOT,
    )
    output = re.sub(r"\x1b\[[0-9;]*m", "", run.stdout + run.stderr)  # colours despite --color off
    log = (stack.log_dir or REPO_ROOT / "test-artifacts") / "newman.log"
    log.write_text(output, encoding="utf-8")
    if run.returncode != 0:
        # newman's summary ends with a table of every failed assertion and its request.
        failures = re.search(r"^\s*#\s+failure\s+detail.*", output, re.MULTILINE | re.DOTALL)
        summary = failures[0] if failures else output[-8000:]
        pytest.fail(f"newman failed (the whole run: {log}):\n{summary}", pytrace=False)
