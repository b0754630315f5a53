"""Who may use the web app: accounts, the login that guards the page and its API, and the refusal
to serve other machines without one."""

from __future__ import annotations

import http.cookiejar
import json
import urllib.error
import urllib.parse
import urllib.request

import pytest

from analogize.cli import main
from analogize.errors import AnalogizeError
from analogize.web.auth import check_exposure, is_loopback, password_check, read_credentials
from conftest import free_port

ACCOUNTS = {"ann": "correct horse", "bob": "battery:staple"}


def test_accounts_come_from_flags_and_a_file(tmp_path):
    accounts = tmp_path / "accounts"
    accounts.write_text("# who may sign in\n\nbob:battery:staple\n")
    assert read_credentials(["ann:correct horse"], accounts) == ACCOUNTS  # a password may hold colons
    assert read_credentials([], None) == {}


@pytest.mark.parametrize("flags, lines, message", [
    (["ann"], None, "--auth ann:…: write an account as user:password"),
    (["ann:"], None, "both non-empty"),
    (["ann:x", "ann:y"], None, "user 'ann' is given twice"),
    ([], "ann:x\nbob\n", "line 2: write an account as user:password"),
    ([], "# nobody\n", "holds no accounts"),
])
def test_bad_accounts_are_refused_in_one_line_naming_where(tmp_path, flags, lines, message):
    accounts = None
    if lines is not None:
        accounts = tmp_path / "accounts"
        accounts.write_text(lines)
    with pytest.raises(AnalogizeError, match=message) as refused:
        read_credentials(flags, accounts)
    assert "\n" not in str(refused.value) and "x" not in str(refused.value).split(":")[-1]  # no password echoed


def test_only_loopback_addresses_count_as_this_machine():
    assert all(map(is_loopback, ["127.0.0.1", "127.8.9.1", "::1", "localhost"]))
    assert not any(map(is_loopback, ["0.0.0.0", "::", "192.168.1.4", "example.org"]))
    assert check_exposure("0.0.0.0", ACCOUNTS, insecure=False) is None
    assert "NO password" in check_exposure("0.0.0.0", {}, insecure=True)


def test_serving_other_machines_without_a_password_refuses_to_start(capsys):
    assert main(["serve", "--host", "0.0.0.0", "--port", str(free_port())]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "--auth USER:PASSWORD" in error and "--insecure" in error


def test_passwords_are_checked_exactly():
    check = password_check(ACCOUNTS)
    assert check("ann", "correct horse") and check("bob", "battery:staple")
    assert not any([check("ann", "correct horse "), check("ann", "battery:staple"), check("eve", ""),
                    check("", "")])


def test_the_page_and_its_api_need_a_login(tmp_path):
    """Without the right password the server gives neither the page's contents (its config) nor
    any API call; with it, both."""
    from gradio_client import Client

    from analogize.web.app import serve

    server = serve(tmp_path / "work", "127.0.0.1", free_port(), 5, credentials=ACCOUNTS, block=False)
    url = server.url
    try:
        def fetch(opener, path: str, data: bytes | None = None, **headers) -> tuple[int, str]:
            try:
                with opener.open(urllib.request.Request(url + path, data=data, headers=headers)) as answer:
                    return answer.status, answer.read().decode()
            except urllib.error.HTTPError as error:
                return error.code, error.read().decode()

        def signed_in(user: str, password: str):
            opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
            status, _ = fetch(opener, "login", urllib.parse.urlencode({"username": user, "password": password}).encode())
            return status, opener

        anonymous = urllib.request.build_opener()
        status, page = fetch(anonymous, "")
        assert status == 200 and "Before images" not in page  # the login form's shell only
        api_call = json.dumps({"data": []}).encode()
        for opener in (anonymous, signed_in("ann", "wrong")[1], signed_in("eve", "correct horse")[1]):
            assert fetch(opener, "config")[0] == 401
            assert fetch(opener, "gradio_api/info")[0] == 401
            assert fetch(opener, "gradio_api/call/refresh_edits", api_call, **{"Content-Type": "application/json"})[0] == 401
        assert signed_in("ann", "wrong")[0] == 400

        status, ann = signed_in("ann", "correct horse")
        assert status == 200
        status, config = fetch(ann, "config")
        assert status == 200 and "Before images" in config
        with pytest.raises(ValueError, match="Could not login"):
            Client(url, auth=("bob", "wrong"), verbose=False)
        assert Client(url, auth=("bob", "battery:staple"), verbose=False).predict(api_name="/refresh_edits")
    finally:
        server.close()


def test_a_missing_models_dir_refuses_to_start(tmp_path, capsys):
    assert main(["serve", "--models-dir", str(tmp_path / "nowhere"), "--port", str(free_port())]) == 2
    assert "--models-dir" in capsys.readouterr().err
