"""The `/refund` blueprint, tested with the blueprint test kit: no Slack, no waiting."""

from __future__ import annotations

from datetime import timedelta

import pytest
from mycompany.refund import Refund, blueprint

from bot.forms import FormErrors
from bot.testing import BlueprintKit


async def test_an_approved_refund_is_paid_once() -> None:
    async with BlueprintKit(blueprint) as kit:
        wid = await kit.launch("/refund", "customer=acme amount=120 approvers=<@U0ALICE>")
        assert kit.asked("U0ALICE") == ["Refund 120 EUR to acme"]
        kit.fail_next(1)  # the payments system stumbles once: the engine retries
        await kit.approve(wid, "U0ALICE")
        assert kit.delivered("refund") == []
        await kit.advance(timedelta(seconds=5))
        assert kit.delivered("refund") == [{"customer": "acme", "amount": "120"}]
        assert kit.told(kit.requester) == ["Refund 120 EUR to acme: approved"]
        assert (await kit.data(wid, Refund)).finance.approved_by == ["U0ALICE"]


async def test_a_denied_refund_is_not_paid() -> None:
    async with BlueprintKit(blueprint) as kit:
        wid = await kit.launch("/refund", "customer=acme amount=80 approvers=<@U0ALICE>")
        await kit.deny(wid, "U0ALICE", "Not our mistake")
        assert kit.delivered("refund") == []
        assert kit.told(kit.requester) == ["Refund 80 EUR to acme: denied"]


async def test_the_form_refuses_too_much() -> None:
    async with BlueprintKit(blueprint) as kit:
        with pytest.raises(FormErrors) as refused:
            await kit.launch("/refund", "customer=acme amount=900 approvers=<@U0ALICE>")
        assert refused.value.errors == {"amount": "Input should be less than or equal to 500"}
