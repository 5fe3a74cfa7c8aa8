"""Credentials in the endpoint URL: they work (as HTTP Basic auth) and never leak."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path
from urllib.parse import quote

import pytest

from sipipeline.model.config import ModelClientConfig
from sipipeline.model.keys import endpoint_id
from sipipeline.model.types import ModelAccessError
from sipipeline_tests.support.client_helpers import expected_texts, make_client, requests_for
from sipipeline_tests.support.fake_openai_server import FakeOpenAIServer

USER = "proxyuser"
PASSWORD = "Pa55:w/rd@hunter2-ultra"


def url_with(server: FakeOpenAIServer, password: str = PASSWORD) -> str:
    host_and_path = server.base_url.removeprefix("http://")
    return f"http://{USER}:{quote(password, safe='')}@{host_and_path}"


def secret_forms(password: str = PASSWORD) -> list[bytes]:
    return [password.encode(), quote(password, safe="").encode()]


def files_written(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file()]


def assert_secret_free(*texts: str, folder: Path | None = None) -> None:
    for text in texts:
        for form in secret_forms():
            assert form.decode() not in text
    for path in files_written(folder) if folder else []:
        data = path.read_bytes()
        assert not any(form in data for form in secret_forms()), path


def test_a_url_with_credentials_reaches_a_basic_auth_endpoint(tmp_path: Path,
                                                              transport: str) -> None:
    journal = tmp_path / "journal" / "j.sqlite"
    with FakeOpenAIServer(require_basic_auth=(USER, PASSWORD)) as server:
        with make_client(server, journal, base_url=url_with(server), api_key="",
                         http_transport=transport) as client:
            batch = requests_for(3)
            results = client.complete(batch, purpose="p")
            shown = [repr(client), repr(client.config), str(client.usage())]
        assert [[c.text for c in row] for row in results] == [expected_texts(r) for r in batch]
        assert {e["auth_scheme"] for e in server.completion_log()} == {"Basic"}
        assert_secret_free(*shown, folder=tmp_path)
        # The journal names the endpoint without credentials: scheme://host:port/path.
        with sqlite3.connect(journal) as db:
            endpoints = {row[0] for row in db.execute("SELECT endpoint FROM samples")}
        assert endpoints == {server.base_url}


def test_a_new_password_keeps_the_journal(tmp_path: Path) -> None:
    journal = tmp_path / "j.sqlite"
    with FakeOpenAIServer(require_basic_auth=(USER, PASSWORD)) as server:
        with make_client(server, journal, base_url=url_with(server)) as client:
            first = client.complete(requests_for(4), purpose="p")
        with make_client(server, journal, base_url=url_with(server, "rotated-pw-2")) as client:
            again = client.complete(requests_for(4), purpose="p")
        assert all(c.from_journal for row in again for c in row)
        assert [[c.text for c in r] for r in again] == [[c.text for c in r] for r in first]
        assert len(server.completion_log()) == 4


def test_errors_never_show_the_credentials(tmp_path: Path, transport: str,
                                           caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    messages = []
    with FakeOpenAIServer(require_basic_auth=(USER, "another-password")) as server:
        with make_client(server, tmp_path / "j.sqlite", base_url=url_with(server),
                         http_transport=transport) as client, \
                pytest.raises(ModelAccessError, match="HTTP 401") as refused:
            client.complete(requests_for(2), purpose="p")
        messages.append(str(refused.value))
        with make_client(server, tmp_path / "j.sqlite", base_url=url_with(server),
                         max_retries=1, http_transport=transport) as client:
            server.stop()
            with pytest.raises(ModelAccessError, match="1 retries") as unreachable:
                client.complete(requests_for(1), purpose="p")
        messages.append(str(unreachable.value))
    assert_secret_free(*messages, caplog.text, folder=tmp_path)
    assert "malformed" not in " ".join(messages)


def test_an_error_raised_before_sending_is_local_and_fails_at_once(tmp_path: Path,
                                                                   transport: str) -> None:
    with FakeOpenAIServer() as server, \
            make_client(server, tmp_path / "j.sqlite", base_url=url_with(server),
                        http_transport=transport) as client:

        async def refuse_locally(path: str, body: dict) -> None:
            raise ValueError(f"Cannot send to {url_with(server)} with these headers")

        client._transport.post = refuse_locally
        with pytest.raises(ModelAccessError, match="local error") as caught:
            client.complete(requests_for(3), purpose="p")
        message = str(caught.value)
        assert "malformed" not in message and not caught.value.retryable
        assert client.usage("p").retries == 0
        assert server.request_log == []
        assert_secret_free(message)


def test_an_unusable_url_is_refused_before_any_request(tmp_path: Path) -> None:
    with pytest.raises(ModelAccessError, match="not usable") as caught:
        ModelClientConfig(base_url=f"http://{USER}:{quote(PASSWORD, safe='')}@127.0.0.1:99999/v1",
                          model="m", journal_path=str(tmp_path / "j.sqlite"))
    assert_secret_free(str(caught.value))
    with pytest.raises(ModelAccessError, match="http:// or https://"):
        ModelClientConfig(base_url="127.0.0.1:8000/v1", model="m", journal_path="unused")


def test_endpoint_id_drops_credentials_query_and_trailing_slash() -> None:
    assert endpoint_id("https://u:p@Host.example:8443/v1/?key=x#f") == \
        "https://Host.example:8443/v1"
    assert endpoint_id("https://api.openai.com/v1/") == "https://api.openai.com/v1"
