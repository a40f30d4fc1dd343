from asgi_correlation_id.context import correlation_id

from gateway.proxy import request_headers, response_headers


def scope(headers: list[tuple[bytes, bytes]]) -> dict:
    return {"headers": headers, "client": ("203.0.113.7", 5000), "scheme": "https"}


def test_request_headers_drop_hop_by_hop_and_spoofable_ones() -> None:
    token = correlation_id.set("req-1")
    try:
        headers = request_headers(
            scope(
                [
                    (b"host", b"api.example.com"),
                    (b"connection", b"keep-alive, x-secret-hop"),
                    (b"x-secret-hop", b"1"),
                    (b"keep-alive", b"timeout=5"),
                    (b"te", b"trailers"),
                    (b"upgrade", b"h2c"),
                    (b"proxy-authorization", b"Basic eA=="),
                    (b"content-length", b"3"),
                    (b"x-user-id", b"someone-else"),
                    (b"x-request-id", b"req-1"),
                    (b"x-forwarded-for", b"198.51.100.1"),
                    (b"x-forwarded-for", b"198.51.100.2, 198.51.100.3"),
                    (b"forwarded", b"for=198.51.100.4"),
                    (b"x-real-ip", b"198.51.100.5"),
                    (b"x-gateway-checked", b"1700000000.forged"),
                    (b"x-forwarded-proto", b"gopher"),
                    (b"authorization", b"Bearer abc"),
                    (b"stripe-signature", b"t=1,v1=x"),
                ]
            )
        )
    finally:
        correlation_id.reset(token)
    assert headers == [
        ("authorization", "Bearer abc"),
        ("stripe-signature", "t=1,v1=x"),
        # Only the address uvicorn resolved (FORWARDED_ALLOW_IPS): never the client's claims.
        ("x-forwarded-for", "203.0.113.7"),
        ("x-forwarded-proto", "https"),
        ("x-forwarded-host", "api.example.com"),
        ("x-request-id", "req-1"),
    ]


def test_response_headers_keep_repeated_headers_and_drop_what_the_gateway_sets() -> None:
    kept = response_headers(
        [
            (b"Content-Type", b"application/json"),
            (b"Content-Length", b"10"),
            (b"Transfer-Encoding", b"chunked"),
            (b"Connection", b"X-Hop"),
            (b"X-Hop", b"1"),
            (b"Proxy-Authenticate", b"Basic"),
            (b"X-Request-ID", b"upstream"),
            (b"Date", b"Thu, 01 Jan 1970 00:00:00 GMT"),
            (b"Access-Control-Allow-Origin", b"*"),
            (b"Set-Cookie", b"a=1"),
            (b"Set-Cookie", b"b=2"),
            (b"Retry-After", b"30"),
        ]
    )
    assert kept == [
        (b"content-type", b"application/json"),
        (b"set-cookie", b"a=1"),
        (b"set-cookie", b"b=2"),
        (b"retry-after", b"30"),
    ]
