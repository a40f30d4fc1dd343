"""A local Gemini API simulator that the real google-genai SDK talks to.

Serve it with `python -m dev.gemini_sim --port 8765`, or in-process with `create_app(SimConfig())`,
and point the SDK at it: `genai.Client(api_key="any", http_options=types.HttpOptions(
base_url="http://127.0.0.1:8765"))`, or set GOOGLE_GEMINI_BASE_URL. It serves
`POST /{v1,v1beta}/models/{model}:generateContent` and `:streamGenerateContent?alt=sse`.

Markers in the last user turn (one fault, plus any modifiers):
  [sim:400] [sim:403] [sim:404] [sim:429] [sim:500] [sim:503] [sim:504]   that HTTP error
  [sim:429:2s]        a 429 whose RetryInfo.retryDelay is 2s (default 1s)
  [sim:503x2]         the first 2 requests with this exact last user turn fail, later ones succeed
  [sim:hang]          send nothing for hang_seconds, then reply (ends early if the client leaves)
  [sim:hang-mid]      stream 3 chunks, then stall for hang_seconds (non-streaming: like hang)
  [sim:safety]        prompt blocked: promptFeedback.blockReason SAFETY, no candidates
  [sim:safety-mid]    a third of the reply, then a last chunk with finishReason SAFETY and no text
  [sim:slow]          10x the token delay          [sim:long]  a 200-token reply
  [sim:echo]          the reply is the prompt as written, without its markers, a line a chunk
generationConfig.maxOutputTokens below the reply length truncates it with finishReason MAX_TOKENS.

Controls:
  POST /_sim/faults {"fault": "503", "count": 3}   the next 3 requests (any prompt) fail so;
                    no count: until {"fault": null}; fault is any marker body ("429:2s", "hang")
  GET  /_sim/faults, GET /_sim/config
  POST /_sim/config {"token_delay_ms": 100, "reply_tokens": 10, "hang_seconds": 5, ...}
  GET  /_sim/requests   the last 1000 generation requests (path, model, contents, fault, status)
  POST /_sim/reset      clear records, counters and faults; back to the startup config
  GET  /healthz
"""

from dev.gemini_sim.app import SimConfig, SimState, create_app

__all__ = ["SimConfig", "SimState", "create_app"]
