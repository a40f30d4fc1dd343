"""The ai-worker: answers queued prompts with Google Gemini (DESIGN §5).

It consumes ``MessageQueued`` from ``chat.events``, streams the model's tokens to
``ai.reply.<reply_id>`` as they arrive, and publishes ``ReplyCompleted`` or
``ReplyFailed`` to ``ai.events``. It has no database: the token stream is also how a
second delivery of the same event knows the reply is already finished.
"""
