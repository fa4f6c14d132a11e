"""The fast decoding of interactive payloads gives exactly what Bolt's own parsing gives."""

from __future__ import annotations

import json
import random
from urllib.parse import unquote_plus, urlencode

import pytest
from slack_bolt.request.async_request import AsyncBoltRequest

from bot.incoming import _DecodedRequest, interactive_payload, unquote_form_value

FORM = "application/x-www-form-urlencoded"
CLICK = {
    "type": "block_actions",
    "user": {"id": "U0ALICE", "username": "alice", "team_id": "T0SANDBOX"},
    "team": {"id": "T0SANDBOX", "domain": "sandbox"},
    "api_app_id": "A0SANDBOX",
    "channel": {"id": "D0ALICE", "name": "directmessage"},
    "message": {
        "ts": "1764160000.000100",
        "text": 'Rita asks: Deploy *api* v2.3 — «now» & then = 100% ✅ 😀\n> quoted\t"x"',
        "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "a+b=c; 50%"}}],
    },
    "response_url": "http://127.0.0.1:1/response/abc?x=1&y=2",
    "actions": [{"action_id": "approval_approve", "value": '{"w":"w1","t":"main","n":"d","p":1}'}],
}


def body_of(payload: object) -> str:
    return urlencode({"payload": json.dumps(payload)})


def test_values_decode_as_urllib_decodes_them() -> None:
    rng = random.Random(5)
    alphabet = [chr(c) for c in range(32, 127)] + list("\n\t\r éü€«»—✅😀\u2028\x00")
    for _ in range(3000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 80)))
        value = urlencode({"v": text})[2:]
        assert unquote_form_value(value) == unquote_plus(value) == text
    lower = "%7b%22a%22%3a+1%7d%e2%9c%85"  # other encoders write lowercase hex
    assert unquote_form_value(lower) == unquote_plus(lower) == '{"a": 1}✅'
    broken = "%ff%fe+x%c3"  # not UTF-8: replaced as urllib replaces it
    assert unquote_form_value(broken) == unquote_plus(broken)


@pytest.mark.parametrize(
    "value",
    ["a b", "100%", "%zz", "%4", "a=b", "a&b", "caf\u00e9", "line\nbreak", "%%41"],
)
def test_what_a_form_encoder_would_not_write_is_left_to_urllib(value: str) -> None:
    assert unquote_form_value(value) is None


def test_only_a_lone_json_payload_takes_the_fast_path() -> None:
    assert interactive_payload(body_of(CLICK), FORM) == CLICK
    assert interactive_payload(body_of(CLICK), "application/json") is None
    assert interactive_payload("command=%2Fapproval&text=hi", FORM) is None  # slash command
    assert interactive_payload(body_of(CLICK) + "&x=1", FORM) is None
    assert interactive_payload("payload=" + "%5B1%5D", FORM) is None  # JSON, not an object
    assert interactive_payload("payload=%7Bnot+json", FORM) is None


async def test_the_bolt_request_is_the_one_bolt_builds() -> None:
    raw = body_of(CLICK)
    headers = {
        "content-type": FORM,
        "x-slack-signature": "v0=abc",
        "x-slack-request-timestamp": "1",
    }
    ours = _DecodedRequest(raw_body=raw, body=CLICK, query="a=1", headers=headers)
    bolts = AsyncBoltRequest(body=raw, query="a=1", headers=headers)
    for attribute in ("raw_body", "body", "query", "headers", "content_type", "mode", "lazy_only"):
        assert getattr(ours, attribute) == getattr(bolts, attribute), attribute
    assert dict(ours.context) == dict(bolts.context)
