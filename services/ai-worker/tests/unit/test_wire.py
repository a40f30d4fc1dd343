"""The reply's request and chunks in the REST API's JSON: the body is the one the SDK itself
would send for the same conversation, and the chunks read as the SDK's types read them."""

import pytest
from google import genai
from google.genai import _common, models, types

from ai_worker.generation import ReplyGenerator, build_contents, model_path, request_fields
from ai_worker.outcomes import Draft, text_of, usage_of
from ai_worker.settings import Settings
from shared.events import HistoryTurn, TokenUsage

HISTORY = [
    HistoryTurn(role="user", text="first?"),
    HistoryTurn(role="model", text="one"),
    HistoryTurn(role="user", text=""),  # an empty turn is left out
]


def settings(**overrides) -> Settings:
    return Settings(_env_file=None, app_env="test", google_gemini_api_key="k", **overrides)


def sdk_body(s: Settings, prompt: str, history: list[HistoryTurn]) -> dict:
    """What google-genai builds for generate_content_stream with the same arguments."""
    contents = [
        types.Content(role=t.role, parts=[types.Part(text=t.text)]) for t in history if t.text
    ]
    contents.append(types.Content(role="user", parts=[types.Part(text=prompt)]))
    config = types.GenerateContentConfig(
        max_output_tokens=s.gemini_max_output_tokens, system_instruction=s.system_instruction
    )
    params = types._GenerateContentParameters(
        model=s.gemini_model, contents=contents, config=config
    )
    client = genai.Client(api_key="k")
    body = models._GenerateContentParameters_to_mldev(client._api_client, params, None, params)
    url = body.pop("_url")
    body.pop("config", None)
    return {"url": url, "body": _common.convert_to_dict(body)}


@pytest.mark.parametrize(
    "overrides",
    [{}, {"system_instruction": ""}, {"gemini_max_output_tokens": 7, "gemini_model": "models/x"}],
)
def test_the_body_is_the_one_the_sdk_sends(overrides):
    s = settings(**overrides)
    ours = {"contents": build_contents("third?", HISTORY), **request_fields(s)}
    sdk = sdk_body(s, "third?", HISTORY)
    assert ours == sdk["body"]
    assert model_path(s.gemini_model) == sdk["url"]["model"]


CHUNKS = [
    {
        "candidates": [
            {
                "content": {
                    "role": "model",
                    "parts": [{"text": "thinking…", "thought": True}, {"text": "Hel"}],
                },
                "index": 0,
            }
        ],
        "modelVersion": "gemini-2.5-flash-001",
    },
    {
        "candidates": [{"content": {"parts": [{"text": "lo"}]}, "finishReason": "STOP"}],
        "usageMetadata": {
            "promptTokenCount": 9,
            "candidatesTokenCount": 2,
            "thoughtsTokenCount": 3,
            "totalTokenCount": 14,
        },
    },
]


@pytest.mark.parametrize("chunk", CHUNKS)
def test_chunks_read_as_the_sdk_reads_them(chunk):
    typed = types.GenerateContentResponse._from_response(response=chunk, kwargs={})
    candidate = typed.candidates[0]
    sdk_text = "".join(p.text for p in candidate.content.parts if p.text and not p.thought)
    assert text_of(chunk["candidates"][0]) == sdk_text
    if typed.usage_metadata is not None:
        u = typed.usage_metadata
        assert usage_of(chunk["usageMetadata"]) == TokenUsage(
            prompt_tokens=u.prompt_token_count,
            output_tokens=u.candidates_token_count + u.thoughts_token_count,
            total_tokens=u.total_token_count,
        )


class Written:
    """Stands in for the TokenWriter: records what _take hands it."""

    def __init__(self) -> None:
        self.texts: list[str] = []

    def add(self, text: str) -> None:
        self.texts.append(text)


async def test_take_fills_the_draft_and_skips_odd_shapes():
    generator = ReplyGenerator(genai.Client(api_key="k"), None, settings())  # type: ignore[arg-type]
    written, draft = Written(), Draft()
    for chunk in [*CHUNKS, {"candidates": "not a list"}, {"candidates": [{"content": 5}]}, {}]:
        generator._take(written, chunk, draft)  # type: ignore[arg-type]
    assert written.texts == ["Hel", "lo"]
    assert (draft.text, draft.finish_reason, draft.model) == (
        "Hello",
        "STOP",
        "gemini-2.5-flash-001",
    )
    assert draft.usage == TokenUsage(prompt_tokens=9, output_tokens=5, total_tokens=14)

    blocked = Draft()
    generator._take(written, {"promptFeedback": {"blockReason": "SAFETY"}}, blocked)  # type: ignore[arg-type]
    assert blocked.prompt_block == "SAFETY" and not blocked.parts
