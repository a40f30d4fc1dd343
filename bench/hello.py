"""The baseline for step 1: a bare FastAPI hello-world, served like the services are.

python -m uvicorn bench.hello:app --no-access-log --no-server-header --proxy-headers
"""

from __future__ import annotations

from fastapi import FastAPI

app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)


@app.get("/hello")
async def hello() -> dict[str, str]:
    return {"hello": "world"}
