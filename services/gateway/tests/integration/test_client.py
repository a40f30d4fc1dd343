"""The web client: its pages answer index.html with a CSP, its files are served with their
content types and revalidated, and everything else still goes through the route table."""

import re

import pytest

from gateway.app import CONTENT_SECURITY_POLICY, STATIC_DIR

INDEX = (STATIC_DIR / "index.html").read_text(encoding="utf-8")


@pytest.mark.parametrize("path", ["/", "/login", "/success?session_id=cs_1", "/cancel", "/c/abc"])
async def test_client_pages_answer_index_html_with_a_csp(gateway, services, path) -> None:
    response = await gateway.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert response.headers["cache-control"] == "no-cache"
    assert response.headers["x-request-id"]
    assert response.text == INDEX
    assert all(not fake.received for fake in services.values())


async def test_the_csp_allows_only_the_gateways_own_files(gateway) -> None:
    policy = (await gateway.get("/")).headers["content-security-policy"]
    directives = dict(d.strip().split(" ", 1) for d in policy.split(";"))
    assert directives["default-src"] == "'self'"
    assert directives["script-src"] == "'self'"
    assert directives["style-src"] == "'self'"
    assert directives["connect-src"] == "'self'"
    assert directives["img-src"] == "'self' data:"


@pytest.mark.parametrize(
    ("name", "content_type"),
    [
        ("app.js", "text/javascript"),
        ("markdown.js", "text/javascript"),
        ("highlight.js", "text/javascript"),
        ("app.css", "text/css"),
        ("favicon.svg", "image/svg+xml"),
    ],
)
async def test_static_files_have_their_content_type_and_are_revalidated(
    gateway, name, content_type
) -> None:
    response = await gateway.get(f"/static/{name}")
    assert response.status_code == 200
    assert response.headers["content-type"].split(";")[0] in {
        content_type,
        "application/javascript" if content_type == "text/javascript" else content_type,
    }
    assert response.headers["cache-control"] == "no-cache"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.content == (STATIC_DIR / name).read_bytes()
    again = await gateway.get(
        f"/static/{name}", headers={"If-None-Match": response.headers["etag"]}
    )
    assert again.status_code == 304
    assert again.headers["cache-control"] == "no-cache"


@pytest.mark.parametrize(
    "path", ["/static/missing.js", "/static/%2e%2e/app.py", "/static/..%2fapp.py", "/static"]
)
async def test_a_missing_static_file_is_a_json_404(gateway, path) -> None:
    response = await gateway.get(path)
    assert response.status_code == 404
    assert response.json()["status"] == "fail"
    assert response.headers["x-request-id"]


async def test_static_files_refuse_other_methods_in_the_envelope(gateway) -> None:
    response = await gateway.post("/static/app.js")
    assert response.status_code == 405
    assert response.json()["code"] == "method_not_allowed"


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/api/v1/nothing"), ("GET", "/nothing"), ("GET", "/c/a/b"), ("POST", "/")],
)
async def test_other_paths_stay_json_404s_of_the_route_table(gateway, method, path) -> None:
    response = await gateway.request(method, path)
    assert response.status_code == 404
    assert response.json()["message"] == f"Cannot find {method} {path}"


def test_every_file_the_page_loads_exists_and_nothing_runs_inline() -> None:
    assert not re.search(r"<style|\sstyle=|\son[a-z]+=|javascript:", INDEX, re.IGNORECASE)
    for tag in re.findall(r"<script\b[^>]*>", INDEX):
        assert 'src="/static/' in tag
    for ref in re.findall(r'(?:src|href)="/static/([^"]+)"', INDEX):
        assert (STATIC_DIR / ref).is_file(), ref


def test_the_client_never_parses_strings_as_html() -> None:
    for script in STATIC_DIR.glob("*.js"):
        code = script.read_text(encoding="utf-8")
        assert not re.search(
            r"\.(inner|outer)HTML\s*=|insertAdjacentHTML|document\.write|\beval\(|new Function",
            code,
        ), script.name
