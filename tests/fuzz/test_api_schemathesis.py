"""Generated requests for every operation of the gateway's merged OpenAPI document.

Schemathesis reads ``/openapi.json`` from the running stack (``stack``, tests/conftest.py)
and sends a bounded number of generated requests to every operation, as a fresh user.
Each response must be no 5xx, have a documented status, and match the documented content
type and schema. Then sequences that follow the document's links (a room created, then
used by its id). Generation is derandomized, so a run is repeatable.
"""

from __future__ import annotations

import os

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

pytestmark = pytest.mark.e2e

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
# Per operation; FUZZ_MAX_EXAMPLES=400 digs deeper in a run of its own (about 2 minutes).
MAX_EXAMPLES = int(os.environ.get("FUZZ_MAX_EXAMPLES", "40"))


def test_the_merged_document_is_valid_openapi(api_schema: schemathesis.BaseSchema) -> None:
    api_schema.validate()
    raw = api_schema.raw_schema
    assert raw["x-unavailable-services"] == []
    operations = [op.ok() for op in api_schema.get_all_operations()]
    assert len(operations) > 20
    for operation in operations:
        assert operation.definition.raw.get("responses"), operation.label


FUZZ_SETTINGS = settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    # Shrinking re-sends requests for minutes; a failing case is reported as generated.
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


def cases(
    operation: schemathesis.APIOperation, known: dict[str, str]
) -> st.SearchStrategy[schemathesis.Case]:
    """Valid requests, requests the schema says are invalid (bad bodies, parameters), and
    valid requests to the fuzzed user's own chatroom and reply (else every id is a 404)."""
    strategies = [
        operation.as_strategy(GenerationMode.POSITIVE),
        operation.as_strategy(GenerationMode.NEGATIVE),
    ]
    names = {p.name for p in operation.path_parameters}
    if names and names <= set(known):
        fixed = {name: known[name] for name in names}
        strategies.append(operation.as_strategy(GenerationMode.POSITIVE, path_parameters=fixed))
    return st.one_of(strategies)


def test_every_operation_conforms(api_schema: schemathesis.BaseSchema, fuzz_user) -> None:
    """Every operation, one after another; the failures of all of them are reported."""
    failures: dict[str, BaseException] = {}
    operations = [op.ok() for op in api_schema.get_all_operations()]
    for operation in operations:

        @FUZZ_SETTINGS
        @given(case=cases(operation, fuzz_user.path_parameters(operation.method)))
        def fuzz(case: schemathesis.Case) -> None:
            case.call_and_validate(headers=fuzz_user.headers(), checks=CHECKS, timeout=15)

        try:
            fuzz()
        except (Exception, BaseExceptionGroup) as exc:  # schemathesis' FailureGroup
            failures[operation.label] = exc
    report = "\n\n".join(f"== {label}\n{exc}" for label, exc in failures.items())
    assert not failures, f"{len(failures)} of {len(operations)} operations failed:\n{report}"


# Scenarios, and steps in each, for the stateful test: about 100 requests.
STATEFUL_SETTINGS = settings(
    max_examples=int(os.environ.get("FUZZ_STATEFUL_EXAMPLES", "20")),
    stateful_step_count=5,
    deadline=None,
    derandomize=True,
    database=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)


def test_sequences_that_follow_the_links_conform(
    api_schema: schemathesis.BaseSchema, fuzz_user
) -> None:
    """Schemathesis' state machine over the document's links: a room created, then read,
    renamed, deleted or written to by the id its 201 returned; each response checked."""

    class Sequences(api_schema.as_state_machine()):
        def get_call_kwargs(self, case: schemathesis.Case) -> dict[str, object]:
            return {"headers": fuzz_user.headers(), "timeout": 15}

        def validate_response(self, response, case, additional_checks=None, **kwargs) -> None:
            case.validate_response(response, checks=CHECKS, transport_kwargs=kwargs)

    created = Sequences.schema.raw_schema["paths"]["/api/v1/chatroom"]["post"]["responses"]
    assert created["201"]["links"], "no links to follow"
    Sequences.run(settings=STATEFUL_SETTINGS)


def test_search_conforms_with_more_examples(api_schema: schemathesis.BaseSchema, fuzz_user) -> None:
    """GET /search on its own, deeper than the sweep above: any query text (a
    websearch_to_tsquery input, never a syntax error), limit and cursor the schema allows
    or forbids answers a documented status and body, never a 5xx."""
    operation = api_schema["/api/v1/search"]["GET"]

    @settings(FUZZ_SETTINGS, max_examples=MAX_EXAMPLES * 5)
    @given(case=cases(operation, {}))
    def fuzz(case: schemathesis.Case) -> None:
        case.call_and_validate(headers=fuzz_user.headers(), checks=CHECKS, timeout=15)

    fuzz()
