"""`/refund`: a refund approved by finance, then paid by the payments system's webhook."""

from __future__ import annotations

from decimal import Decimal

from pydantic import BaseModel, Field

from bot.blueprint import Blueprint, Invocation, Launch
from bot.forms import UserId
from bot.routines import APPROVED, Approval, approval, notify, webhook, webhook_url
from workflows import If, S, Workflow


class RefundForm(BaseModel):
    customer: str = Field(title="Customer", max_length=80)
    amount: Decimal = Field(title="Amount (EUR)", gt=0, le=500)
    approvers: list[UserId] = Field(title="Approvers")


class Refund(Workflow, RefundForm):
    requester: str
    url: str
    finance: Approval = Field(default_factory=Approval)

    def definition(self):
        what = f"Refund {self.amount} EUR to {self.customer}"
        order = {"customer": self.customer, "amount": str(self.amount)}
        return S(
            approval(
                self,
                "finance",
                self.finance,
                approvers=self.approvers,
                requester=self.requester,
                text=what,
            ),
            If(self.finance.outcome == APPROVED, webhook(self, "pay", url=self.url, payload=order)),
            notify(self, "tell", to=self.requester, text=f"{what}: {self.finance.outcome}"),
        )


def start(command: Invocation, form: RefundForm) -> Refund:
    url = webhook_url("", command.settings, "refund", "WEBHOOK_RECEIVER")
    return Refund(requester=command.user, url=url, **form.model_dump())


blueprint = Blueprint(
    workflows=[Refund],
    launches=[Launch("/refund", start, description="Refund a customer", form=RefundForm)],
)
