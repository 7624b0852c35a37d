"""``llmcache.redact``: what ``llmcache inspect`` and the logs show never holds a secret, and
still shows token counts; redacting a large value stays fast."""

from __future__ import annotations

import pytest

from llmcache.redact import redact, redact_url, redact_value

SECRET = "S3CR3T-value-0042"


@pytest.mark.parametrize(
    "name",
    [
        "api_key",
        "apiKey",
        "x-api-key",
        "openai_api_key",
        "aws_secret_access_key",
        "aws_access_key_id",
        "private_key",
        "privateKey",
        "secret_key",
        "secretKey",
        "client_secret",
        "credentials",
        "vertex_credentials",
        "passphrase",
        "password",
        "db_passwd",
        "cookie",
        "Set-Cookie",
        "Authorization",
        "proxy-authorization",
        "token",
        "access_token",
        "refresh_token",
        "sessionToken",
        "azure_ad_token",
    ],
)
def test_a_field_named_like_a_secret_is_hidden(name: str) -> None:
    shown = redact_value({"outer": [{name: SECRET, "content": "kept"}]})
    assert shown == {"outer": [{name: "***", "content": "kept"}]}


@pytest.mark.parametrize(
    "name",
    [
        "max_tokens",
        "max_completion_tokens",
        "stop_token_ids",
        "allowed_token_ids",
        "prompt_tokens",
        "completion_tokens",
        "total_tokens",
        "input_tokens",
        "output_tokens",
        "token_count",
        "tokens",
        "key",
        "model",
    ],
)
def test_token_counts_and_ordinary_fields_stay_visible(name: str) -> None:
    assert redact_value({name: 128}) == {name: 128}
    assert redact(f"{name}=128 {name}: 64") == f"{name}=128 {name}: 64"


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        (f"aws_secret_access_key={SECRET}", "aws_secret_access_key=***"),
        (f"export AWS_SECRET_ACCESS_KEY={SECRET}", "export AWS_SECRET_ACCESS_KEY=***"),
        (f"Authorization: Bearer {SECRET}", "Authorization: Bearer ***"),
        (f"send the header 'Bearer {SECRET}' along", "send the header 'Bearer ***' along"),
        (f"authorization=Basic {SECRET}", "authorization=Basic ***"),
        (f'{{"client_secret": "{SECRET}", "n": 1}}', '{"client_secret": "***", "n": 1}'),
        (f'{{\\"private_key\\": \\"{SECRET}\\"}}', '{\\"private_key\\": \\"***\\"}'),
        (f"passphrase = 'open {SECRET}' then", "passphrase = '***' then"),
        (f'"Cookie": "sid={SECRET}; theme=dark"', '"Cookie": "***"'),
        (f"?access_token={SECRET}&page=2", "?access_token=***&page=2"),
        (f"sessionToken: {SECRET}", "sessionToken: ***"),
        (f"x=api_key={SECRET}", "x=api_key=***"),
        (f"credentials={SECRET}", "credentials=***"),
        (f"postgresql://app:{SECRET}@db/x", "postgresql://app:***@db/x"),
    ],
)
def test_secrets_inside_a_text_are_hidden(text: str, shown: str) -> None:
    assert redact(text) == shown
    assert redact_value({"content": text}) == {"content": shown}


def test_a_huge_value_without_spaces_is_redacted() -> None:
    # Every pattern is tried from the start of a word only: tried at every character, the
    # URL pattern took seconds for 12 KB of one word, and minutes for these (no timing is
    # asserted here: the suite itself would stall).
    for word in ("a" * 200_000, "secret" * 40_000, "token" * 40_000, "x:" * 100_000):
        assert redact_value({"content": word, "api_key": word}) == {
            "content": word,
            "api_key": "***",
        }
        assert redact_url(word) == word


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        # the sentinel URL's documented option, and a password given as a query option
        (
            f"redis+sentinel://h:7301/llmcache?sentinel_password={SECRET}&db=x",
            "redis+sentinel://h:7301/llmcache?sentinel_password=***&db=x",
        ),
        (f"redis://h:6379/0?password={SECRET}", "redis://h:6379/0?password=***"),
        # a base64 password holds '/': SQLAlchemy's parser takes it unescaped
        (f"mysql+pymysql://root:ab/{SECRET}@h:3306/db", "mysql+pymysql://root:***@h:3306/db"),
        # '@' inside the password: urllib reads the password up to the authority's last '@'
        (f"redis://:p@{SECRET}@h:6379/0", "redis://:***@h:6379/0"),
        ("redis://h:6379/0?db=1&max_connections=8", "redis://h:6379/0?db=1&max_connections=8"),
        ("postgresql://app@db/x?sslmode=require", "postgresql://app@db/x?sslmode=require"),
    ],
)
def test_every_password_of_a_url_is_hidden(url: str, shown: str) -> None:
    assert redact_url(url) == shown
    assert redact(f"bad option in {url!r}") == f"bad option in {shown!r}"


def test_a_config_error_never_shows_a_query_password() -> None:
    from llmcache import Cache, ConfigError

    url = f"redis+sentinel://127.0.0.1:1/llmcache?sentinel_password={SECRET}&db=x"
    with pytest.raises(ConfigError) as raised:
        Cache.from_urls([url])
    assert SECRET not in str(raised.value)
    assert "sentinel_password=***" in str(raised.value)


def test_an_error_quoting_an_api_key_is_described_without_it() -> None:
    from llmcache.redact import describe_error

    key = "sk-proj-" + "a1B2c3D4" * 6
    described = describe_error(RuntimeError(f"Incorrect API key provided: {key}."))
    assert described.startswith("RuntimeError: Incorrect API key provided: ")
    assert key not in described and key[:12] not in described
