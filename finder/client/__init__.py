"""The Kiwoom REST client: one public class behind small private modules.

``_api`` (the class and the wire), ``_token`` (one shared token per app key),
``_ratelimit`` (cross-process pacing), ``_parse`` (strings to numbers),
``_secrets`` (redaction), ``_stats`` (what this process sent).
"""

from ._api import DailyWalk, KiwoomAPI, parse_markets
from ._reply import Reply

__all__ = ["KiwoomAPI", "DailyWalk", "Reply", "parse_markets"]
