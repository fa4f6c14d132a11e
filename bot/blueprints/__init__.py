"""The blueprints the bot ships, written as any user's would be (see bot.blueprint).

`SHIPPED` is what the bot loads when `BLUEPRINTS` is not set.
"""

from __future__ import annotations

SHIPPED = ("bot.blueprints.approval", "bot.blueprints.deploy", "bot.blueprints.access")
